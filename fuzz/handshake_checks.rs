//! The check behind the `handshake` fuzz target (and the proptest in
//! `tests/handshake_parse.rs`): the WebSocket client's response header
//! parse (`src/transport/handshake.rs`) on arbitrary bytes.
//!
//! - the header parse alone agrees with httparse (which it replaced): a
//!   header both complete and accepted reads the same (length, version,
//!   code, fields); what httparse refuses we refuse; what we refuse httparse
//!   refuses too, except an empty line before the status line (httparse
//!   skips those, RFC 9112 lets only a server do so);
//! - the whole 101 check never panics, a complete header's length is within
//!   the bytes, and every shorter prefix of an accepted header is incomplete
//!   (so the read loop, which parses whatever it has, waits instead of
//!   failing or accepting early).

use discord_gateway_stream::fuzzing::{accept_value, check_response, parse_head};

/// RFC 6455's example key (section 1.3): the accept value the seeds carry.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Runs both checks on `data`.
pub fn check_handshake(data: &[u8]) {
    check_against_httparse(data);
    let accept = accept_value(KEY);
    if let Ok(Some(len)) = check_response(data, &accept) {
        assert!(len <= data.len(), "a header of {len} bytes in {} bytes", data.len());
        for cut in [0, 1, len / 2, len.saturating_sub(2), len.saturating_sub(1)] {
            if cut < len {
                let prefix = data.get(..cut).unwrap_or_default();
                assert!(
                    matches!(check_response(prefix, &accept), Ok(None)),
                    "a prefix of {cut} bytes of an accepted {len}-byte header is not incomplete"
                );
            }
        }
    }
}

fn check_against_httparse(data: &[u8]) {
    let ours = parse_head(data);
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let theirs = response.parse(data);
    let empty_line_first = data.starts_with(b"\n") || data.starts_with(b"\r\n");
    match (&ours, theirs) {
        (Ok(Some(head)), Ok(httparse::Status::Complete(len))) => {
            assert_eq!(head.len, len, "header length");
            assert_eq!(Some(u8::from(head.http_1_1)), response.version, "version");
            assert_eq!(Some(head.code), response.code, "status code");
            let fields: Vec<(Vec<u8>, Vec<u8>)> =
                response.headers.iter().map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec())).collect();
            assert_eq!(head.fields, fields, "fields");
        }
        // A bad line still missing its line end is refused once that comes.
        (Ok(None), Ok(httparse::Status::Partial) | Err(_)) | (Err(_), Err(_)) => {}
        (Err(_), Ok(_)) if empty_line_first => {}
        (ours, theirs) => panic!("ours {ours:?}, httparse {theirs:?}"),
    }
}
