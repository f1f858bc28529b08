//! The WebSocket handshake's own response header parse against httparse,
//! the parser it replaced, on generated responses: status lines and field
//! lines valid and not, line ends of every kind, more fields than the
//! bound, one byte overwritten, prefixes cut in a line. The relation
//! checked is the `handshake` fuzz target's (`fuzz/handshake_checks.rs`):
//! whatever httparse refuses is refused, whatever is taken is taken the
//! same way, and no prefix of an accepted header is anything but
//! incomplete.

#[path = "../fuzz/handshake_checks.rs"]
mod handshake_checks;

use proptest::strategy::Strategy;

/// Status lines for the differential test against httparse.
const STATUS_LINES: [&[u8]; 14] = [
    b"HTTP/1.1 101 Switching Protocols",
    b"HTTP/1.1 101 ",
    b"HTTP/1.1 101",
    b"HTTP/1.0 200 OK",
    b"HTTP/1.1 429 Too\tMany \x80Requests",
    b"HTTP/1.1 1010 X",
    b"HTTP/1.1  101 X",
    b"HTTP/1.1 10",
    b"HTTP/1.2 101 X",
    b"HTTP/1.1 101 X\x00",
    b"HTTP/1.1 101 X\r",
    b"\r\nHTTP/1.1 101 X",
    b"\nHTTP/1.1 101 X",
    b"",
];

/// Field lines (valid and not) for the differential test.
const FIELD_LINES: [&[u8]; 22] = [
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
    b"X-Empty:",
    b"X-Spaces: \t ",
    b"X:a",
    b"X: \t a \t b \t",
    b"X: caf\xc3\xa9\xff",
    b"!#$%&'*+-.^_`|~09AZaz: v",
    b" folded",
    b"\tfolded: x",
    b"Name : v",
    b"Name\t: v",
    b": v",
    b"NoColon",
    b"Na(me: v",
    b"X: a\x00b",
    b"X: a\x7f",
    b"X: a\rb",
    b"X: a\x0cb",
    b"",
    b"\r",
];

proptest::proptest! {
    /// Against httparse (the parser this one replaced): whatever it
    /// refuses is refused, whatever is taken it takes the same way (same
    /// length, version, code and fields). The only bytes httparse took
    /// and this refuses are empty lines before the status line.
    #[test]
    fn at_least_as_strict_as_httparse(
        status in proptest::sample::select(STATUS_LINES.to_vec()),
        lines in proptest::collection::vec(
            (
                proptest::prop_oneof![
                    4 => proptest::sample::select(FIELD_LINES.to_vec()).prop_map(<[u8]>::to_vec),
                    1 => proptest::collection::vec(proptest::num::u8::ANY, 0..8),
                ],
                proptest::sample::select(vec![&b"\r\n"[..], b"\r\n", b"\r\n", b"\n", b"\r", b""]),
            ),
            0..12,
        ),
        repeat in proptest::prop_oneof![4 => proptest::strategy::Just(0usize), 1 => 55usize..70],
        flip in proptest::option::of((proptest::num::usize::ANY, proptest::num::u8::ANY)),
    ) {
        let mut bytes = status.to_vec();
        bytes.extend_from_slice(b"\r\n");
        for _ in 0..repeat {
            bytes.extend_from_slice(b"X-Many: a\r\n");
        }
        for (line, end) in &lines {
            bytes.extend_from_slice(line);
            bytes.extend_from_slice(end);
        }
        bytes.extend_from_slice(b"\r\n");
        if let Some((at, byte)) = flip {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        // The whole, and a prefix cut in a line.
        for end in [bytes.len(), bytes.len() / 2, bytes.len() * 3 / 4] {
            handshake_checks::check_handshake(&bytes[..end]);
        }
    }
}
