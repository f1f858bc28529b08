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

/// zstd-stream as Discord sends it: window log 18 (the window descriptor of
/// Discord's frames, `0x40`). Discord does not document its level; 3 is
/// zstd's default.
pub const ZSTD_WINDOW_LOG: u32 = 18;
pub const ZSTD_LEVEL: i32 = 3;

/// One zstd frame for a whole connection, flushed (`ZSTD_e_flush`) after
/// every payload; each flush is one binary WebSocket message.
pub struct ZstdStream {
    cctx: zstd_safe::CCtx<'static>,
    /// Scratch output, all initialized (`len` is the room zstd may use).
    out: Vec<u8>,
}

impl ZstdStream {
    pub fn new() -> ZstdStream {
        let mut cctx = zstd_safe::CCtx::create();
        cctx.set_parameter(zstd_safe::CParameter::CompressionLevel(ZSTD_LEVEL)).expect("zstd level");
        cctx.set_parameter(zstd_safe::CParameter::WindowLog(ZSTD_WINDOW_LOG)).expect("zstd window log");
        ZstdStream { cctx, out: Vec::new() }
    }

    /// Compresses `payload` and flushes: the bytes of one binary message
    /// (the first one starts with the frame header).
    pub fn push(&mut self, payload: &[u8]) -> &[u8] {
        let room = zstd_safe::compress_bound(payload.len()) + 64;
        if self.out.len() < room {
            self.out.resize(room, 0);
        }
        let mut input = zstd_safe::InBuffer::around(payload);
        let mut written = 0;
        loop {
            let mut output = zstd_safe::OutBuffer::around_pos(&mut self.out[..], written);
            let left = self
                .cctx
                .compress_stream2(&mut output, &mut input, zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush)
                .unwrap_or_else(|code| panic!("zstd compress: {}", zstd_safe::get_error_name(code)));
            written = output.pos();
            if left == 0 && input.pos() == payload.len() {
                break;
            }
            let more = self.out.len();
            self.out.resize(more * 2, 0);
        }
        &self.out[..written]
    }
}
