//! What both loopback servers (`compare` and `heap`) need on the wire: the
//! WebSocket upgrade with the client's URL query, and server frames written
//! by hand so every byte can be precomputed.

use std::net::TcpStream;

use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::WebSocket;

/// Accepts the WebSocket upgrade on `stream`; returns the socket and the
/// query string the client asked with (`v=10&encoding=json&compress=…`).
#[allow(clippy::result_large_err)] // tungstenite's callback signature
pub fn accept(stream: TcpStream) -> tungstenite::Result<(WebSocket<TcpStream>, String)> {
    stream.set_nodelay(true)?;
    let mut query = String::new();
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        query = request.uri().query().unwrap_or_default().to_owned();
        Ok(response)
    };
    let ws = tungstenite::accept_hdr(stream, callback).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e,
        tungstenite::HandshakeError::Interrupted(_) => tungstenite::Error::ConnectionClosed,
    })?;
    Ok((ws, query))
}

/// Appends one server-to-client WebSocket frame (FIN, unmasked; opcode 1
/// text, 2 binary); returns where the payload starts in `out` and its length.
pub fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) -> (usize, usize) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(len as u8);
    } else if len <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let start = out.len();
    out.extend_from_slice(payload);
    (start, len)
}
