//! The WebSocket opening handshake, client side (RFC 6455 section 4.1,
//! <https://www.rfc-editor.org/rfc/rfc6455#section-4.1>).
//!
//! One HTTP/1.1 `GET` with `Upgrade: websocket` and a fresh random
//! `Sec-WebSocket-Key`; the answer must be `101 Switching Protocols` with
//! `Upgrade: websocket`, `Connection: upgrade` and the `Sec-WebSocket-Accept`
//! derived from our key (section 4.2.2). The response header is read with a
//! hard bound ([`MAX_HEADER_BYTES`]) and parsed here, strictly, as RFC 9112
//! writes it (`Head::parse`); bytes the server sent after it (its first
//! frame may share a packet with the 101) are handed to the WebSocket with
//! the stream. SHA-1 for the accept value is ours too (`super::sha1`): the
//! handshake needs no HTTP or hash crate.
//!
//! No subprotocol and no extension is offered, so a response choosing one
//! is refused (section 4.1, steps 5 and 6 of the client's checks).

use std::io;

use async_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use async_tungstenite::WebSocketStream;
use futures_util::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::sha1::sha1;
use super::Target;

/// The most bytes of response header read: a longer header is refused
/// ([`HandshakeError::HeaderTooLarge`]), so a hostile server cannot grow
/// memory. Discord's 101 is well under 1 KiB.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The most header fields a response may have.
const MAX_HEADERS: usize = 64;
/// The room for the first read of the response (grown up to
/// [`MAX_HEADER_BYTES`] as needed).
const FIRST_READ: usize = 1024;
/// Appended to the key before hashing (RFC 6455, section 1.3).
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why the WebSocket handshake failed.
///
/// The connection attempt fails with an `io::Error` whose inner error
/// (`error.get_ref()` downcast to `HandshakeError`) is this; the shard logs
/// it (`tracing`, target `discord_gateway_stream::shard`) and reconnects
/// with backoff, as for any connect failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The gateway URL is not `ws://` or `wss://`, or its host, path or
    /// query has a character that cannot go into an HTTP request line
    /// (anything outside visible ASCII).
    #[error("WebSocket handshake: the gateway URL cannot be sent as an HTTP request")]
    InvalidUrl,
    /// The operating system gave no randomness for the `Sec-WebSocket-Key`.
    #[error("WebSocket handshake: no randomness for the Sec-WebSocket-Key: {0}")]
    Random(String),
    /// Reading or writing the stream failed.
    #[error("WebSocket handshake: {0}")]
    Io(#[from] io::Error),
    /// The server closed the connection before the end of its response header.
    #[error("WebSocket handshake: the server closed the connection before the end of its response header")]
    ClosedMidHeader,
    /// The response header is longer than 16 KiB.
    #[error("WebSocket handshake: the server's response header is longer than {MAX_HEADER_BYTES} bytes")]
    HeaderTooLarge,
    /// The response is not a valid HTTP/1.1 response header (what is wrong
    /// with it: the status line, a header line, too many header fields, or
    /// a 101 that is not HTTP/1.1).
    #[error("WebSocket handshake: the server's response is not valid HTTP/1.1: {0}")]
    Malformed(String),
    /// The server answered with this HTTP status instead of 101 (e.g. 429
    /// when rate limited, 5xx when down).
    #[error("WebSocket handshake: the server answered HTTP {0} instead of 101 Switching Protocols")]
    Status(u16),
    /// The 101 response has no `Upgrade: websocket`.
    #[error("WebSocket handshake: the server's 101 response has no `Upgrade: websocket`")]
    MissingUpgrade,
    /// The 101 response has no `Connection` header with the `upgrade` token.
    #[error("WebSocket handshake: the server's 101 response has no `Connection: upgrade`")]
    MissingConnectionUpgrade,
    /// The 101 response's `Sec-WebSocket-Accept` is missing or does not
    /// belong to the key sent.
    #[error("WebSocket handshake: the server's Sec-WebSocket-Accept is missing or does not match the key sent")]
    AcceptMismatch,
    /// The 101 response chose a subprotocol or an extension (this header),
    /// though the client offered none.
    #[error("WebSocket handshake: the server's 101 response has `{0}`, but the client offered none")]
    Unrequested(&'static str),
}

impl From<HandshakeError> for io::Error {
    /// An `io::Error` carrying the handshake error: an I/O failure keeps its
    /// kind, a close mid-header is `UnexpectedEof`, an unusable URL
    /// `InvalidInput`, a refused response `InvalidData`.
    fn from(error: HandshakeError) -> io::Error {
        let kind = match &error {
            HandshakeError::Io(inner) => inner.kind(),
            HandshakeError::ClosedMidHeader => io::ErrorKind::UnexpectedEof,
            HandshakeError::InvalidUrl => io::ErrorKind::InvalidInput,
            HandshakeError::Random(_) => io::ErrorKind::Other,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, error)
    }
}

/// Runs the client handshake for `url` on `stream` (TCP, or TLS over it for
/// `wss://`) and returns the WebSocket over it, configured with `config`.
pub(crate) async fn client<S>(
    url: &str,
    mut stream: S,
    config: WebSocketConfig,
) -> Result<WebSocketStream<S>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let key = new_key()?;
    let request = request(url, &key)?;
    stream.write_all(&request).await?;
    stream.flush().await?;
    let after_header = read_response(&mut stream, &accept(&key)).await?;
    tracing::debug!(early_bytes = after_header.len(), "WebSocket handshake done");
    Ok(WebSocketStream::from_partially_read(stream, after_header, Role::Client, Some(config)).await)
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64 (section 4.1).
fn new_key() -> Result<String, HandshakeError> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|error| HandshakeError::Random(error.to_string()))?;
    Ok(base64(&nonce))
}

/// The `Sec-WebSocket-Accept` a server must answer `key` with:
/// base64(SHA-1(key + GUID)) (section 4.2.2, item 5.4).
fn accept(key: &str) -> String {
    base64(&sha1(format!("{key}{ACCEPT_GUID}").as_bytes()))
}

/// The upgrade request for `url` with `key`: the URL's path and query (its
/// fragment dropped), `Host` with the port only when it is not the
/// scheme's default.
fn request(url: &str, key: &str) -> Result<Vec<u8>, HandshakeError> {
    let target = Target::from_url(url).ok_or(HandshakeError::InvalidUrl)?;
    // Read where the connection's own reading of the URL ends the host.
    let path_and_query = crate::protocol::path_and_query(url).ok_or(HandshakeError::InvalidUrl)?;
    let path_and_query = match path_and_query.strip_prefix('?') {
        Some(query) => format!("/?{query}"),
        None if path_and_query.is_empty() => "/".to_owned(),
        None => path_and_query.to_owned(),
    };
    let mut host = if target.host.contains(':') { format!("[{}]", target.host) } else { target.host.clone() };
    let default_port = if target.tls { 443 } else { 80 };
    if target.port != default_port {
        host = format!("{host}:{}", target.port);
    }
    // Nothing that could end the request line or a header early.
    let visible = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
    if !visible(&path_and_query) || !visible(&host) {
        return Err(HandshakeError::InvalidUrl);
    }
    Ok(format!(
        "GET {path_and_query} HTTP/1.1\r\n\
         Host: {host}\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: {key}\r\n\
         \r\n"
    )
    .into_bytes())
}

/// Reads the response header from `stream`, at most [`MAX_HEADER_BYTES`],
/// and checks it against `accept`; returns the bytes read past its end.
async fn read_response<S>(stream: &mut S, accept: &str) -> Result<Vec<u8>, HandshakeError>
where
    S: AsyncRead + Unpin,
{
    // `buffer[..filled]` has been read; the rest is room for the next read,
    // doubled when used up (so a server sending a byte per read costs no
    // more zeroing than one sending it all at once).
    let mut buffer = vec![0; FIRST_READ];
    let mut filled = 0;
    loop {
        if filled >= buffer.len() {
            if filled >= MAX_HEADER_BYTES {
                return Err(HandshakeError::HeaderTooLarge);
            }
            buffer.resize((filled * 2).min(MAX_HEADER_BYTES), 0);
        }
        let room = buffer.get_mut(filled..).unwrap_or_default();
        let room_len = room.len();
        // `min`: a connector's stream that claims more than it was given
        // (breaking `AsyncRead`'s contract) cannot push `filled` past the buffer.
        let read = stream.read(room).await?.min(room_len);
        if read == 0 {
            return Err(HandshakeError::ClosedMidHeader);
        }
        let new = buffer.get(filled..filled + read).unwrap_or_default();
        filled += read;
        // The header ends with a line feed: parse only when one came.
        if new.contains(&b'\n') {
            if let Some(end) = parse_response(buffer.get(..filled).unwrap_or_default(), accept)? {
                // tungstenite's read buffer starts as this `Vec`, and
                // `bytes::BytesMut` remembers its capacity as the least it
                // allocates once a frame it split off is still held (a
                // dispatch keeping a large frame): an exact-size leftover
                // (usually empty) would make every later read as small as
                // the bytes it is waiting for.
                let rest = buffer.get(end..filled).unwrap_or_default();
                let mut after = Vec::with_capacity(super::READ_BUFFER_BYTES.max(rest.len()));
                after.extend_from_slice(rest);
                return Ok(after);
            }
        }
    }
}

/// Parses and checks a response header at the start of `bytes`: `None`
/// while it is incomplete, the header's length once it is complete and a
/// valid 101 for the key whose accept value is `accept`.
fn parse_response(bytes: &[u8], accept: &str) -> Result<Option<usize>, HandshakeError> {
    let Some(head) = Head::parse(bytes)? else { return Ok(None) };
    if head.code != 101 {
        return Err(HandshakeError::Status(head.code));
    }
    if !head.http_1_1 {
        return Err(malformed("a 101 response must be HTTP/1.1"));
    }
    let values = |name: &'static str| {
        head.fields.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|&(_, value)| value)
    };
    // Section 4.1, the client's checks 2 to 6.
    let upgrade =
        values("upgrade").next().is_some() && values("upgrade").all(|value| value.eq_ignore_ascii_case(b"websocket"));
    if !upgrade {
        return Err(HandshakeError::MissingUpgrade);
    }
    let connection = values("connection")
        .flat_map(|value| value.split(|&b| b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
    if !connection {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    let accepted = values("sec-websocket-accept").next().is_some()
        && values("sec-websocket-accept").all(|value| value == accept.as_bytes());
    if !accepted {
        return Err(HandshakeError::AcceptMismatch);
    }
    for name in ["Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"] {
        if values(name).any(|value| !value.is_empty()) {
            return Err(HandshakeError::Unrequested(name));
        }
    }
    Ok(Some(head.len))
}

/// A response header as the handshake reads it, owned: what the `handshake` fuzz
/// target compares with httparse (`fuzz/handshake_checks.rs`).
#[cfg(feature = "fuzzing")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedHead {
    /// `HTTP/1.1` (else `HTTP/1.0`).
    pub http_1_1: bool,
    /// The status code.
    pub code: u16,
    /// The header fields in order, values without surrounding whitespace.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// The header's length, its final empty line included.
    pub len: usize,
}

/// The response header parse alone: `None` while incomplete.
#[cfg(feature = "fuzzing")]
pub fn parse_head(bytes: &[u8]) -> Result<Option<ParsedHead>, HandshakeError> {
    Ok(Head::parse(bytes)?.map(|head| ParsedHead {
        http_1_1: head.http_1_1,
        code: head.code,
        fields: head.fields.iter().map(|&(name, value)| (name.to_vec(), value.to_vec())).collect(),
        len: head.len,
    }))
}

/// The whole check of a response to the key whose `Sec-WebSocket-Accept`
/// is `accept`: `None` while incomplete, the header's length once it is a
/// valid 101.
#[cfg(feature = "fuzzing")]
pub fn check_response(bytes: &[u8], accept: &str) -> Result<Option<usize>, HandshakeError> {
    parse_response(bytes, accept)
}

/// The `Sec-WebSocket-Accept` value a server must answer `key` with.
#[cfg(feature = "fuzzing")]
pub fn accept_value(key: &str) -> String {
    accept(key)
}

/// A response header as read: RFC 9112's `status-line *( field-line CRLF )
/// CRLF` (sections 2.1, 4 and 5, <https://www.rfc-editor.org/rfc/rfc9112>).
struct Head<'a> {
    /// `HTTP/1.1` (else `HTTP/1.0`, the only other version taken).
    http_1_1: bool,
    /// The status code, three digits.
    code: u16,
    /// The header fields in order: the name, and the value without the
    /// whitespace around it.
    fields: Vec<(&'a [u8], &'a [u8])>,
    /// The header's length, its final empty line included.
    len: usize,
}

impl<'a> Head<'a> {
    /// Parses the response header at the start of `bytes`: `None` while its
    /// empty line has not come, an error as soon as a complete line is not
    /// valid (a bad line still missing its line end is refused once that
    /// comes). Lines end with CRLF or, as most parsers take it (RFC 9112,
    /// section 2.2), a bare LF; a CR anywhere else is refused.
    ///
    /// At least as strict as httparse (which this replaced) with its
    /// default configuration, and in places stricter than RFC 9112 asks of
    /// a client: only HTTP/1.0 and HTTP/1.1; no empty line before the
    /// status line (httparse skipped those); no whitespace before a field's
    /// colon (section 5.1); no line starting with whitespace, so no obs-fold
    /// (section 5.2 lets a client unfold it); no control character but HTAB
    /// in a reason phrase or a field value; at most [`MAX_HEADERS`] fields.
    fn parse(bytes: &'a [u8]) -> Result<Option<Head<'a>>, HandshakeError> {
        // The complete lines without their line end, each with the length
        // up to its end; an incomplete last line ends the iteration.
        let mut end = 0;
        let mut lines = bytes.split_inclusive(|&b| b == b'\n').map_while(move |line| {
            let line = line.strip_suffix(b"\n")?;
            end += line.len() + 1;
            Some((line.strip_suffix(b"\r").unwrap_or(line), end))
        });
        let Some((status_line, _)) = lines.next() else { return Ok(None) };
        let (http_1_1, code) = status(status_line)?;
        let mut fields = Vec::new();
        loop {
            let Some((line, len)) = lines.next() else { return Ok(None) };
            if line.is_empty() {
                return Ok(Some(Head { http_1_1, code, fields, len }));
            }
            if fields.len() == MAX_HEADERS {
                return Err(HandshakeError::Malformed(format!("more than {MAX_HEADERS} header fields")));
            }
            fields.push(field(line)?);
        }
    }
}

/// The status line without its line end: `HTTP-version SP status-code SP
/// reason-phrase` (RFC 9112, section 4), `HTTP/1.1` or `HTTP/1.0`; the
/// version is `true` for 1.1. As httparse and most clients, the space after
/// the code may be left out with the (optional) reason phrase.
fn status(line: &[u8]) -> Result<(bool, u16), HandshakeError> {
    let (http_1_1, rest) = match (line.strip_prefix(b"HTTP/1.1"), line.strip_prefix(b"HTTP/1.0")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => return Err(malformed("the status line does not start with HTTP/1.1 or HTTP/1.0")),
    };
    let rest = rest.strip_prefix(b" ").ok_or_else(|| malformed("no space after the HTTP version"))?;
    let (digits, reason) = rest.split_at_checked(3).unwrap_or((rest, &[]));
    if digits.len() != 3 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(malformed("the status code is not three digits"));
    }
    let code = digits.iter().fold(0, |code, &digit| code * 10 + u16::from(digit - b'0'));
    match reason.strip_prefix(b" ") {
        None if !reason.is_empty() => {
            Err(malformed("the status code is not three digits followed by a space or the line end"))
        }
        Some(reason) if !reason.iter().all(|&b| is_text(b)) => {
            Err(malformed("a control character in the reason phrase"))
        }
        _ => Ok((http_1_1, code)),
    }
}

/// A field line without its line end: `field-name ":" OWS field-value OWS`
/// (RFC 9112, section 5), the name a token (RFC 9110, section 5.1). Returns
/// the name and the value without the whitespace around it.
fn field(line: &[u8]) -> Result<(&[u8], &[u8]), HandshakeError> {
    if line.starts_with(b" ") || line.starts_with(b"\t") {
        return Err(malformed("a header line starts with whitespace (obs-fold)"));
    }
    let mut parts = line.splitn(2, |&b| b == b':');
    let name = parts.next().unwrap_or_default();
    let Some(value) = parts.next() else { return Err(malformed("a header line has no colon")) };
    if name.is_empty() {
        return Err(malformed("a header name is empty"));
    }
    if name.ends_with(b" ") || name.ends_with(b"\t") {
        // RFC 9112, section 5.1 has servers reject it and proxies remove
        // it; refused here, as httparse did.
        return Err(malformed("whitespace between a header name and its colon"));
    }
    if !name.iter().all(|&b| is_tchar(b)) {
        return Err(malformed("a header name has a character that is not a token character"));
    }
    if !value.iter().all(|&b| is_text(b)) {
        return Err(malformed("a control character in a header value"));
    }
    // Only SP and HTAB are left of the ASCII whitespace.
    Ok((name, value.trim_ascii()))
}

/// `tchar` (RFC 9110, section 5.6.2): a header name's characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// HTAB, SP, VCHAR or obs-text: what a reason phrase (RFC 9112, section 4)
/// and a field value (RFC 9110, section 5.5) may hold. Not the other
/// control characters (CR, LF, NUL, DEL, …).
fn is_text(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

fn malformed(what: &str) -> HandshakeError {
    HandshakeError::Malformed(what.to_owned())
}

/// Standard base64 with padding (RFC 4648, section 4), for the 16-byte key
/// and the 20-byte SHA-1.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let group = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                let sextet = (group >> (18 - 6 * i)) & 63;
                // `sextet` < 64: always in the alphabet.
                out.push(char::from(ALPHABET.get(sextet as usize).copied().unwrap_or(b'=')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use async_tungstenite::tungstenite::Message;
    use futures_util::StreamExt;

    use super::*;

    /// RFC 6455, section 1.3: the key in the example and its accept value
    /// (<https://www.rfc-editor.org/rfc/rfc6455#section-1.3>).
    const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn response(lines: &[&str]) -> Vec<u8> {
        let mut bytes = lines.join("\r\n").into_bytes();
        bytes.extend_from_slice(b"\r\n\r\n");
        bytes
    }

    fn ok_101(accept: &str) -> Vec<u8> {
        response(&[
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            &format!("Sec-WebSocket-Accept: {accept}"),
        ])
    }

    /// An unmasked server text frame (payload under 126 bytes).
    fn text_frame(text: &str) -> Vec<u8> {
        let mut frame = vec![0x81, u8::try_from(text.len()).unwrap()];
        frame.extend_from_slice(text.as_bytes());
        frame
    }

    /// The whole upgrade request for `target` (path and query) and `host`
    /// with RFC 6455's example key.
    fn upgrade_request(target: &str, host: &str) -> String {
        format!(
            "GET {target} HTTP/1.1\r\n\
             Host: {host}\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             \r\n"
        )
    }

    #[test]
    fn the_request_has_path_query_and_a_non_default_port() {
        let request = request("ws://127.0.0.1:9000/gateway?v=10&encoding=json#fragment", RFC_KEY).unwrap();
        assert_eq!(
            String::from_utf8(request).unwrap(),
            upgrade_request("/gateway?v=10&encoding=json", "127.0.0.1:9000")
        );
    }

    #[test]
    fn the_request_host_has_no_port_when_it_is_the_default() {
        let request = request("wss://gateway.discord.gg/?v=10&encoding=json&compress=zlib-stream", RFC_KEY).unwrap();
        assert_eq!(
            String::from_utf8(request).unwrap(),
            upgrade_request("/?v=10&encoding=json&compress=zlib-stream", "gateway.discord.gg")
        );
    }

    #[test]
    fn request_lines_and_hosts_for_other_urls() {
        let head = |url: &str| {
            let request = String::from_utf8(request(url, RFC_KEY).unwrap()).unwrap();
            let mut lines = request.lines();
            (lines.next().unwrap().to_owned(), lines.next().unwrap().to_owned())
        };
        let line = |target: &str, host: &str| (format!("GET {target} HTTP/1.1"), format!("Host: {host}"));
        assert_eq!(head("wss://gateway.discord.gg:443/?v=10"), line("/?v=10", "gateway.discord.gg"));
        assert_eq!(head("ws://example.test:80"), line("/", "example.test"));
        assert_eq!(head("ws://example.test:443/"), line("/", "example.test:443"));
        assert_eq!(head("wss://example.test:80?a=1"), line("/?a=1", "example.test:80"));
        assert_eq!(head("ws://[::1]:8080/x?y"), line("/x?y", "[::1]:8080"));
        assert_eq!(head("ws://[::1]/"), line("/", "[::1]"));
        assert_eq!(head("ws://user@example.test/#f"), line("/", "example.test"));
    }

    #[test]
    fn a_url_that_cannot_be_an_http_request_is_refused() {
        for url in [
            "http://example.test/",
            "ws://",
            "ws://example.test/a b",
            "ws://example.test/?a=1\r\nX-Injected: 1",
            "ws://exämple.test/",
            "ws://example.test/é",
        ] {
            assert!(matches!(request(url, RFC_KEY), Err(HandshakeError::InvalidUrl)), "{url:?}");
        }
    }

    #[test]
    fn the_accept_value_is_the_rfc_example() {
        assert_eq!(accept(RFC_KEY), RFC_ACCEPT);
        // The SHA-1 the RFC spells out, byte by byte.
        let digest = sha1(format!("{RFC_KEY}{ACCEPT_GUID}").as_bytes());
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(hex, "b37a4f2cc0624f1690f64606cf385945b2bec4ea");
    }

    /// The same value as tungstenite's server side (the simulator's) computes.
    #[cfg(feature = "testing")]
    #[test]
    fn the_accept_value_is_tungstenites() {
        for _ in 0..16 {
            let key = new_key().unwrap();
            assert_eq!(accept(&key), tungstenite::handshake::derive_accept_key(key.as_bytes()));
        }
    }

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, output) in cases {
            assert_eq!(base64(input.as_bytes()), output, "{input:?}");
        }
        // RFC 6455's nonce, "the sample nonce", is the example key.
        assert_eq!(base64(b"the sample nonce"), RFC_KEY);
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn keys_are_16_random_bytes_each_time() {
        let (a, b) = (new_key().unwrap(), new_key().unwrap());
        assert_eq!(a.len(), 24);
        assert!(a.ends_with("==") && !a.ends_with("==="), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn a_valid_101_is_accepted_and_its_length_returned() {
        let header = ok_101(RFC_ACCEPT);
        assert_eq!(parse_response(&header, RFC_ACCEPT).unwrap(), Some(header.len()));
        let mut with_frame = header.clone();
        with_frame.extend(text_frame("hi"));
        assert_eq!(parse_response(&with_frame, RFC_ACCEPT).unwrap(), Some(header.len()));
        // Every strict prefix is incomplete.
        for end in 0..header.len() {
            assert_eq!(parse_response(&header[..end], RFC_ACCEPT).unwrap(), None, "{end}");
        }
    }

    #[test]
    fn header_names_and_tokens_are_case_insensitive() {
        let header = response(&[
            "HTTP/1.1 101 Switching Protocols",
            "uPGRADE: WebSocket",
            "connection: keep-alive, UPGRADE",
            &format!("sec-websocket-accept:  {RFC_ACCEPT} "),
            "Server: test",
        ]);
        assert_eq!(parse_response(&header, RFC_ACCEPT).unwrap(), Some(header.len()));
        // The upgrade token in a second Connection field.
        let header = response(&[
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: keep-alive",
            "Connection: upgrade",
            &format!("Sec-WebSocket-Accept: {RFC_ACCEPT}"),
        ]);
        assert_eq!(parse_response(&header, RFC_ACCEPT).unwrap(), Some(header.len()));
    }

    #[test]
    fn a_status_other_than_101_is_refused_with_its_code() {
        for (line, code) in [
            ("HTTP/1.1 200 OK", 200),
            ("HTTP/1.1 400 Bad Request", 400),
            ("HTTP/1.1 429 Too Many Requests", 429),
            ("HTTP/1.0 503 Service Unavailable", 503),
        ] {
            let header = response(&[line, "Content-Length: 0"]);
            assert!(
                matches!(parse_response(&header, RFC_ACCEPT), Err(HandshakeError::Status(c)) if c == code),
                "{line}"
            );
        }
    }

    #[test]
    fn a_101_with_a_missing_or_wrong_header_is_refused() {
        let accept_line = format!("Sec-WebSocket-Accept: {RFC_ACCEPT}");
        let refused = |lines: &[&str]| parse_response(&response(lines), RFC_ACCEPT).unwrap_err();
        let status = "HTTP/1.1 101 Switching Protocols";
        assert!(matches!(refused(&[status, "Connection: Upgrade", &accept_line]), HandshakeError::MissingUpgrade));
        assert!(matches!(
            refused(&[status, "Upgrade: h2c", "Connection: Upgrade", &accept_line]),
            HandshakeError::MissingUpgrade
        ));
        assert!(matches!(
            refused(&[status, "Upgrade: websocket", "Upgrade: h2c", "Connection: Upgrade", &accept_line]),
            HandshakeError::MissingUpgrade
        ));
        assert!(matches!(
            refused(&[status, "Upgrade: websocket", &accept_line]),
            HandshakeError::MissingConnectionUpgrade
        ));
        assert!(matches!(
            refused(&[status, "Upgrade: websocket", "Connection: keep-alive, upgraded", &accept_line]),
            HandshakeError::MissingConnectionUpgrade
        ));
        assert!(matches!(
            refused(&[status, "Upgrade: websocket", "Connection: Upgrade"]),
            HandshakeError::AcceptMismatch
        ));
        let wrong = format!("Sec-WebSocket-Accept: {}", accept("AAAAAAAAAAAAAAAAAAAAAA=="));
        assert!(matches!(
            refused(&[status, "Upgrade: websocket", "Connection: Upgrade", &wrong]),
            HandshakeError::AcceptMismatch
        ));
        assert!(matches!(
            refused(&[status, "Upgrade: websocket", "Connection: Upgrade", &accept_line, &wrong]),
            HandshakeError::AcceptMismatch
        ));
        assert!(matches!(
            refused(&[status, "Upgrade: websocket", "Connection: Upgrade", &accept_line, "Sec-WebSocket-Protocol: x"]),
            HandshakeError::Unrequested("Sec-WebSocket-Protocol")
        ));
        assert!(matches!(
            refused(&[
                status,
                "Upgrade: websocket",
                "Connection: Upgrade",
                &accept_line,
                "Sec-WebSocket-Extensions: permessage-deflate"
            ]),
            HandshakeError::Unrequested("Sec-WebSocket-Extensions")
        ));
        assert!(matches!(
            refused(&["HTTP/1.0 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade", &accept_line]),
            HandshakeError::Malformed(_)
        ));
        assert!(matches!(refused(&["SSH-2.0-OpenSSH_9.6"]), HandshakeError::Malformed(_)));
    }

    /// Header fields, owned: names and values.
    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    /// `Head::parse` on `lines`, each ended with CRLF, and the empty line:
    /// whether HTTP/1.1, the code and the fields.
    fn head_of(lines: &[&[u8]]) -> Result<Option<(bool, u16, Fields)>, HandshakeError> {
        let mut bytes = Vec::new();
        for line in lines {
            bytes.extend_from_slice(line);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        let head = Head::parse(&bytes)?;
        if let Some(head) = &head {
            assert_eq!(head.len, bytes.len());
        }
        Ok(head.map(|head| {
            let fields = head.fields.iter().map(|&(name, value)| (name.to_vec(), value.to_vec())).collect();
            (head.http_1_1, head.code, fields)
        }))
    }

    #[test]
    fn status_lines_that_are_taken() {
        let cases: [(&[u8], bool, u16); 8] = [
            (b"HTTP/1.1 101 Switching Protocols", true, 101),
            (b"HTTP/1.0 200 OK", false, 200),
            (b"HTTP/1.0 101 Switching Protocols", false, 101),
            // An empty reason phrase, and none at all (no second space).
            (b"HTTP/1.1 101 ", true, 101),
            (b"HTTP/1.1 101", true, 101),
            (b"HTTP/1.1 599 any\ttext \"quoted\" ~!@#$%^&*() ", true, 599),
            (b"HTTP/1.1 000 zero", true, 0),
            // obs-text in the reason phrase.
            (b"HTTP/1.1 101 Protocoles chang\xc3\xa9s \x80\xff", true, 101),
        ];
        for (line, http_1_1, code) in cases {
            let parsed = head_of(&[line]).unwrap().unwrap();
            assert_eq!((parsed.0, parsed.1), (http_1_1, code), "{}", line.escape_ascii());
        }
    }

    /// What `Malformed` says of `result` (else a panic).
    fn refusal<T>(result: Result<T, HandshakeError>) -> String {
        match result {
            Err(HandshakeError::Malformed(what)) => what,
            Err(other) => panic!("not Malformed: {other}"),
            Ok(_) => panic!("not refused"),
        }
    }

    #[test]
    fn status_lines_that_are_refused() {
        const VERSION: &str = "does not start with HTTP/1.1 or HTTP/1.0";
        const SPACE: &str = "no space after the HTTP version";
        const CODE: &str = "the status code is not three digits";
        const AFTER_CODE: &str = "three digits followed by a space or the line end";
        const REASON: &str = "a control character in the reason phrase";
        let cases: [(&[u8], &str); 27] = [
            (b"", VERSION),
            (b" HTTP/1.1 101 Switching Protocols", VERSION),
            (b"http/1.1 101 Switching Protocols", VERSION),
            (b"HTTP/1.2 101 Switching Protocols", VERSION),
            (b"HTTP/2 101 Switching Protocols", VERSION),
            (b"HTTP/2.0 101 Switching Protocols", VERSION),
            (b"SSH-2.0-OpenSSH_9.6", VERSION),
            (b"\xef\xbb\xbfHTTP/1.1 101 Switching Protocols", VERSION),
            (b"HTTP/1.1", SPACE),
            (b"HTTP/1.1\t101 Switching Protocols", SPACE),
            (b"HTTP/1.1101 Switching Protocols", SPACE),
            (b"HTTP/1.1 ", CODE),
            (b"HTTP/1.1  101 Switching Protocols", CODE),
            (b"HTTP/1.1 10 Switching Protocols", CODE),
            (b"HTTP/1.1 10", CODE),
            (b"HTTP/1.1 1a1 Switching Protocols", CODE),
            (b"HTTP/1.1 +11 Switching Protocols", CODE),
            (b"HTTP/1.1 -01 Switching Protocols", CODE),
            (b"HTTP/1.1 1010 Switching Protocols", AFTER_CODE),
            (b"HTTP/1.1 101\tSwitching Protocols", AFTER_CODE),
            (b"HTTP/1.1 101Switching Protocols", AFTER_CODE),
            (b"HTTP/1.1 101 Switching\x00Protocols", REASON),
            (b"HTTP/1.1 101 Switching Protocols\x7f", REASON),
            (b"HTTP/1.1 101 Switching\rProtocols", REASON),
            // Two CRs before the LF.
            (b"HTTP/1.1 101 Switching Protocols\r", REASON),
            (b"HTTP/1.1 101 \x1b[31mSwitching Protocols", REASON),
            (b"HTTP/1.1 101 Switching\x0bProtocols", REASON),
        ];
        for (line, what) in cases {
            assert!(refusal(head_of(&[line])).contains(what), "{}", line.escape_ascii());
        }
        // Empty lines before the status line (httparse skipped them).
        for before in ["\r\n", "\n"] {
            let bytes = [before.as_bytes(), &ok_101(RFC_ACCEPT)].concat();
            assert!(refusal(parse_response(&bytes, RFC_ACCEPT)).contains(VERSION), "{before:?}");
        }
    }

    #[test]
    fn header_fields_that_are_taken() {
        let status: &[u8] = b"HTTP/1.1 101 Switching Protocols";
        let cases: [(&[u8], &[u8], &[u8]); 9] = [
            (b"Upgrade: websocket", b"Upgrade", b"websocket"),
            (b"Upgrade:websocket", b"Upgrade", b"websocket"),
            (b"Upgrade: \t websocket \t ", b"Upgrade", b"websocket"),
            // An empty value, with or without whitespace.
            (b"X-Empty:", b"X-Empty", b""),
            (b"X-Empty: \t ", b"X-Empty", b""),
            (b"X-Inner: a \t b", b"X-Inner", b"a \t b"),
            (b"X-Colons: a:b::", b"X-Colons", b"a:b::"),
            (b"X-Obs-Text: caf\xc3\xa9 \x80\xff", b"X-Obs-Text", b"caf\xc3\xa9 \x80\xff"),
            (b"!#$%&'*+-.^_`|~09AZaz: v", b"!#$%&'*+-.^_`|~09AZaz", b"v"),
        ];
        for (line, name, value) in cases {
            let (_, _, fields) = head_of(&[status, line]).unwrap().unwrap();
            assert_eq!(fields, vec![(name.to_vec(), value.to_vec())], "{}", line.escape_ascii());
        }
        // Fields in order, the same name twice kept twice.
        let (_, _, fields) = head_of(&[status, b"A: 1", b"B: 2", b"A: 3"]).unwrap().unwrap();
        let names: Vec<&[u8]> = fields.iter().map(|(name, _)| name.as_slice()).collect();
        assert_eq!(names, [b"A", b"B", b"A"]);
    }

    #[test]
    fn header_fields_that_are_refused() {
        const INDENTED: &str = "a header line starts with whitespace (obs-fold)";
        const NO_COLON: &str = "a header line has no colon";
        const NO_NAME: &str = "a header name is empty";
        const SPACE_BEFORE_COLON: &str = "whitespace between a header name and its colon";
        const NAME: &str = "a header name has a character that is not a token character";
        const VALUE: &str = "a control character in a header value";
        let status: &[u8] = b"HTTP/1.1 101 Switching Protocols";
        let cases: [(&[&[u8]], &str); 24] = [
            // Whitespace at the start of the first field line, and obs-fold.
            (&[b" Upgrade: websocket"], INDENTED),
            (&[b"\tUpgrade: websocket"], INDENTED),
            (&[b"Connection: keep-alive,", b" upgrade"], INDENTED),
            (&[b"X: a", b"\tb"], INDENTED),
            (&[b"Upgrade : websocket"], SPACE_BEFORE_COLON),
            (&[b"Upgrade\t: websocket"], SPACE_BEFORE_COLON),
            (&[b": websocket"], NO_NAME),
            (&[b":"], NO_NAME),
            (&[b"Upgrade websocket"], NO_COLON),
            (&[b"Upgrade"], NO_COLON),
            (&[b"Up grade: websocket"], NAME),
            (&[b"Up(grade: websocket"], NAME),
            (&[b"Up\"grade: websocket"], NAME),
            (&[b"Up/grade: websocket"], NAME),
            (&[b"Up\x00grade: websocket"], NAME),
            (&[b"Upgr\xc3\xa9de: websocket"], NAME),
            (&[b"X: a\x00b"], VALUE),
            (&[b"X: \x01"], VALUE),
            (&[b"X: a\x7f"], VALUE),
            (&[b"X: a\rb"], VALUE),
            (&[b"X: a\x0bb"], VALUE),
            (&[b"X: a\x0cb"], VALUE),
            (&[b"X: \x1b[2J"], VALUE),
            // Two CRs before the LF: one belongs to the value.
            (&[b"X: a\r"], VALUE),
        ];
        for (fields, what) in cases {
            let lines: Vec<&[u8]> = std::iter::once(status).chain(fields.iter().copied()).collect();
            let refusal = refusal(head_of(&lines));
            assert!(refusal.contains(what), "{:?}: {refusal}", fields.iter().map(|f| f.escape_ascii().to_string()));
        }
        // A bad line after good ones, and the same line in the whole check.
        let header = response(&["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Bad Name: x"]);
        assert!(refusal(parse_response(&header, RFC_ACCEPT)).contains(NAME));
    }

    #[test]
    fn bare_line_feeds_end_lines_too() {
        let crlf = ok_101(RFC_ACCEPT);
        let lf = String::from_utf8(crlf.clone()).unwrap().replace("\r\n", "\n").into_bytes();
        assert_eq!(parse_response(&lf, RFC_ACCEPT).unwrap(), Some(lf.len()));
        for end in 0..lf.len() {
            assert_eq!(parse_response(&lf[..end], RFC_ACCEPT).unwrap(), None, "{end}");
        }
        // Mixed, and the frame after the header not counted.
        let mixed = format!(
            "HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\r\nConnection: Upgrade\n\
             Sec-WebSocket-Accept: {RFC_ACCEPT}\r\n\n"
        );
        let mut bytes = mixed.clone().into_bytes();
        bytes.extend(text_frame("hi"));
        assert_eq!(parse_response(&bytes, RFC_ACCEPT).unwrap(), Some(mixed.len()));
        // A CR and then the end of the bytes: the line end may still come.
        assert_eq!(parse_response(&crlf[..crlf.len() - 1], RFC_ACCEPT).unwrap(), None);
    }

    #[test]
    fn a_101_with_an_empty_or_no_reason_phrase_is_accepted() {
        for status in ["HTTP/1.1 101", "HTTP/1.1 101 ", "HTTP/1.1 101 Whatever"] {
            let header = response(&[
                status,
                "Upgrade: websocket",
                "Connection: Upgrade",
                &format!("Sec-WebSocket-Accept: {RFC_ACCEPT}"),
                "Sec-WebSocket-Protocol:",
                "Sec-WebSocket-Extensions: ",
            ]);
            assert_eq!(parse_response(&header, RFC_ACCEPT).unwrap(), Some(header.len()), "{status}");
        }
    }

    #[test]
    fn sixty_four_header_fields_are_taken_and_sixty_five_are_malformed() {
        let with_fields = |count: usize| {
            let mut lines = vec!["HTTP/1.1 101 Switching Protocols".to_owned(), "Upgrade: websocket".to_owned()];
            lines.push("Connection: Upgrade".to_owned());
            lines.push(format!("Sec-WebSocket-Accept: {RFC_ACCEPT}"));
            for i in 3..count {
                lines.push(format!("X-{i}: a"));
            }
            response(&lines.iter().map(String::as_str).collect::<Vec<_>>())
        };
        let header = with_fields(MAX_HEADERS);
        assert_eq!(parse_response(&header, RFC_ACCEPT).unwrap(), Some(header.len()));
        let header = with_fields(MAX_HEADERS + 1);
        assert_eq!(refusal(parse_response(&header, RFC_ACCEPT)), "more than 64 header fields");
        // Refused as soon as the 65th field line is complete.
        let at = header.len() - 2;
        assert_eq!(refusal(parse_response(&header[..at], RFC_ACCEPT)), "more than 64 header fields");
        let before = header[..at - 1].iter().rposition(|&b| b == b'\n').unwrap() + 1;
        assert_eq!(parse_response(&header[..before], RFC_ACCEPT).unwrap(), None);
    }

    /// A stream that hands out `parts` one per read, then EOF.
    struct Parts(std::collections::VecDeque<Vec<u8>>);

    impl AsyncRead for Parts {
        fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            while self.0.front().is_some_and(Vec::is_empty) {
                self.0.pop_front();
            }
            let Some(part) = self.0.front_mut() else { return Poll::Ready(Ok(0)) };
            let n = buf.len().min(part.len());
            buf[..n].copy_from_slice(&part[..n]);
            part.drain(..n);
            Poll::Ready(Ok(n))
        }
    }

    #[test]
    fn a_header_split_at_every_byte_reads_the_same() {
        let header = format!(
            "HTTP/1.1 101 \r\nupgrade:websocket\nConnection: keep-alive,\tUpgrade \r\nX-Empty:\r\n\
             Sec-WebSocket-Accept: {RFC_ACCEPT}\r\n\r\n"
        );
        let mut bytes = header.clone().into_bytes();
        bytes.extend(text_frame("first"));
        for at in 0..=bytes.len() {
            let mut stream = Parts([bytes[..at].to_vec(), bytes[at..].to_vec()].into_iter().collect());
            let after = async_io::block_on(read_response(&mut stream, RFC_ACCEPT)).unwrap();
            // What came in the read that ended the header, and the rest unread.
            let read_with_header = if at < header.len() { bytes.len() } else { at };
            assert_eq!(after, &bytes[header.len()..read_with_header], "{at}");
            // tungstenite's read buffer starts as this Vec; its capacity is
            // the least it allocates after a kept frame (`READ_BUFFER_BYTES`).
            assert!(after.capacity() >= super::super::READ_BUFFER_BYTES, "{at}: capacity {}", after.capacity());
            assert_eq!(stream.0.iter().flatten().copied().collect::<Vec<u8>>(), &bytes[read_with_header..], "{at}");
        }
        // A refused line is refused wherever the bytes are split.
        let folded = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive,\r\n upgrade\r\n\
             Sec-WebSocket-Accept: {RFC_ACCEPT}\r\n\r\n"
        );
        for at in 0..=folded.len() {
            let (a, b) = folded.as_bytes().split_at(at);
            let mut stream = Parts([a.to_vec(), b.to_vec()].into_iter().collect());
            let result = async_io::block_on(read_response(&mut stream, RFC_ACCEPT));
            assert_eq!(refusal(result), "a header line starts with whitespace (obs-fold)", "{at}");
        }
    }

    /// A stream that claims to have read more than the room it was given.
    struct Overclaiming;

    impl AsyncRead for Overclaiming {
        fn poll_read(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len() + 5))
        }
    }

    #[test]
    fn a_stream_claiming_more_than_it_was_given_ends_at_the_bound() {
        let result = async_io::block_on(read_response(&mut Overclaiming, RFC_ACCEPT));
        assert!(matches!(result, Err(HandshakeError::HeaderTooLarge)), "{result:?}");
    }

    /// A server end in memory: answers the request written to it with
    /// `respond(key)`, handed out `chunk` bytes per read, then EOF.
    struct FakeServer {
        written: Vec<u8>,
        respond: fn(&str) -> Vec<u8>,
        pending: Option<Vec<u8>>,
        chunk: usize,
        /// Bytes handed to the client so far.
        served: usize,
    }

    impl FakeServer {
        fn new(respond: fn(&str) -> Vec<u8>, chunk: usize) -> FakeServer {
            FakeServer { written: Vec::new(), respond, pending: None, chunk, served: 0 }
        }
    }

    impl AsyncRead for FakeServer {
        fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            let this = &mut *self;
            if this.pending.is_none() {
                let request = String::from_utf8_lossy(&this.written).into_owned();
                assert!(request.ends_with("\r\n\r\n"), "the request is written in full before any read");
                let key = request.lines().find_map(|line| line.strip_prefix("Sec-WebSocket-Key: ")).unwrap();
                this.pending = Some((this.respond)(key));
            }
            let pending = this.pending.as_mut().unwrap();
            let n = buf.len().min(this.chunk).min(pending.len());
            buf[..n].copy_from_slice(&pending[..n]);
            pending.drain(..n);
            this.served += n;
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for FakeServer {
        fn poll_write(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.written.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn handshake(server: &mut FakeServer) -> Result<WebSocketStream<&mut FakeServer>, HandshakeError> {
        async_io::block_on(client("ws://gateway.test/?v=10", server, WebSocketConfig::default()))
    }

    #[test]
    fn a_frame_sent_with_the_101_is_the_first_message() {
        fn respond(key: &str) -> Vec<u8> {
            let mut bytes = ok_101(&accept(key));
            bytes.extend(text_frame(r#"{"op":10}"#));
            bytes.extend(text_frame("second"));
            bytes
        }
        // All in one read, and one byte per read.
        for chunk in [usize::MAX, 1] {
            let mut server = FakeServer::new(respond, chunk);
            let mut socket = handshake(&mut server).unwrap();
            let first = async_io::block_on(socket.next()).unwrap().unwrap();
            assert_eq!(first, Message::text(r#"{"op":10}"#));
            let second = async_io::block_on(socket.next()).unwrap().unwrap();
            assert_eq!(second, Message::text("second"));
        }
    }

    #[test]
    fn the_written_request_is_the_request_for_the_url() {
        let mut server = FakeServer::new(|key| ok_101(&accept(key)), usize::MAX);
        drop(handshake(&mut server).unwrap());
        let written = String::from_utf8(server.written.clone()).unwrap();
        let key = written.lines().find_map(|line| line.strip_prefix("Sec-WebSocket-Key: ")).unwrap();
        assert_eq!(server.written, request("ws://gateway.test/?v=10", key).unwrap());
    }

    #[test]
    fn a_wrong_accept_fails_the_handshake() {
        let mut server = FakeServer::new(|_key| ok_101(RFC_ACCEPT), usize::MAX);
        assert!(matches!(handshake(&mut server), Err(HandshakeError::AcceptMismatch)));
    }

    #[test]
    fn eof_mid_header_is_closed_mid_header() {
        let mut server = FakeServer::new(|_key| b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: webs".to_vec(), 7);
        assert!(matches!(handshake(&mut server), Err(HandshakeError::ClosedMidHeader)));
        let mut server = FakeServer::new(|_key| Vec::new(), 7);
        assert!(matches!(handshake(&mut server), Err(HandshakeError::ClosedMidHeader)));
    }

    #[test]
    fn a_header_over_the_bound_is_refused_without_reading_more() {
        fn respond(key: &str) -> Vec<u8> {
            let mut bytes = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
            while bytes.len() < 4 * MAX_HEADER_BYTES {
                bytes.extend_from_slice(format!("X-Padding: {}\r\n", "a".repeat(1000)).as_bytes());
            }
            bytes.extend_from_slice(&ok_101(&accept(key)));
            bytes
        }
        for chunk in [usize::MAX, 1000, 3] {
            let mut server = FakeServer::new(respond, chunk);
            assert!(matches!(handshake(&mut server), Err(HandshakeError::HeaderTooLarge)), "{chunk}");
            assert_eq!(server.served, MAX_HEADER_BYTES);
        }
        // Just under the bound is fine.
        fn respond_in_bound(key: &str) -> Vec<u8> {
            let ok = ok_101(&accept(key));
            let padding = MAX_HEADER_BYTES - ok.len() - "X-Padding: \r\n".len();
            let mut bytes = ok[..ok.len() - 2].to_vec();
            bytes.extend_from_slice(format!("X-Padding: {}\r\n\r\n", "a".repeat(padding)).as_bytes());
            assert_eq!(bytes.len(), MAX_HEADER_BYTES);
            bytes
        }
        let mut server = FakeServer::new(respond_in_bound, usize::MAX);
        handshake(&mut server).unwrap();
    }

    #[test]
    fn too_many_header_fields_are_malformed() {
        fn respond(key: &str) -> Vec<u8> {
            let ok = ok_101(&accept(key));
            let mut bytes = ok[..ok.len() - 2].to_vec();
            for i in 0..MAX_HEADERS {
                bytes.extend_from_slice(format!("X-{i}: a\r\n").as_bytes());
            }
            bytes.extend_from_slice(b"\r\n");
            bytes
        }
        let mut server = FakeServer::new(respond, usize::MAX);
        assert!(matches!(handshake(&mut server), Err(HandshakeError::Malformed(_))));
    }

    #[test]
    fn the_io_error_says_what_failed_and_carries_the_handshake_error() {
        let error = io::Error::from(HandshakeError::Status(429));
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            error.to_string(),
            "WebSocket handshake: the server answered HTTP 429 instead of 101 Switching Protocols"
        );
        let inner = error.get_ref().and_then(|inner| inner.downcast_ref::<HandshakeError>());
        assert!(matches!(inner, Some(HandshakeError::Status(429))));
        assert_eq!(io::Error::from(HandshakeError::ClosedMidHeader).kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(io::Error::from(HandshakeError::InvalidUrl).kind(), io::ErrorKind::InvalidInput);
        let reset = HandshakeError::Io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(io::Error::from(reset).kind(), io::ErrorKind::ConnectionReset);
    }

    /// A real socket on loopback: the 101 and a text frame leave the server
    /// in one write, and the text is the first message; the accept value is
    /// checked against tungstenite's own.
    #[cfg(feature = "testing")]
    #[test]
    fn on_loopback_the_frame_written_with_the_101_is_the_first_message() {
        use std::io::{Read, Write};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut tcp, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") {
                tcp.read_exact(&mut byte).unwrap();
                request.push(byte[0]);
            }
            let request = String::from_utf8(request).unwrap();
            let key = request.lines().find_map(|line| line.strip_prefix("Sec-WebSocket-Key: ")).unwrap();
            let mut reply = ok_101(&tungstenite::handshake::derive_accept_key(key.as_bytes()));
            reply.extend(text_frame("first"));
            tcp.write_all(&reply).unwrap();
            // Held open until the client has read.
            let _ = tcp.read(&mut byte);
            request
        });
        let url = format!("ws://127.0.0.1:{port}/?v=10");
        async_io::block_on(async {
            let tcp = async_io::Async::<std::net::TcpStream>::connect(([127, 0, 0, 1], port)).await.unwrap();
            let mut socket = client(&url, tcp, WebSocketConfig::default()).await.unwrap();
            assert_eq!(socket.next().await.unwrap().unwrap(), Message::text("first"));
        });
        let request = server.join().unwrap();
        assert!(request.starts_with(&format!("GET /?v=10 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n")), "{request}");
    }

    proptest::proptest! {
        /// Whatever the server sends, the handshake ends with a result (no
        /// panic, nothing read past the bound).
        #[test]
        fn arbitrary_responses_never_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048),
            prefix in proptest::sample::select(vec![
                "",
                "HTTP/1.1 101 Switching Protocols\r\n",
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
            ]),
            chunk in 1usize..64,
        ) {
            let mut response = prefix.as_bytes().to_vec();
            response.extend_from_slice(&bytes);
            let _ = parse_response(&response, RFC_ACCEPT);
            let mut stream = Scripted { response, chunk, written: 0 };
            let result = async_io::block_on(client("ws://gateway.test/", &mut stream, WebSocketConfig::default()));
            proptest::prop_assert!(!matches!(result, Err(HandshakeError::InvalidUrl | HandshakeError::Io(_))));
        }
    }

    /// A server that sends `response` whatever the request, `chunk` bytes
    /// per read.
    struct Scripted {
        response: Vec<u8>,
        chunk: usize,
        written: usize,
    }

    impl AsyncRead for Scripted {
        fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.chunk).min(self.response.len());
            buf[..n].copy_from_slice(&self.response[..n]);
            self.response.drain(..n);
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for Scripted {
        fn poll_write(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.written += buf.len();
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
}
