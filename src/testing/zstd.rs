//! The simulator's own zstd-stream compressor (independent of `crate::codec`).

use std::io;

use zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush;
use zstd_safe::{CCtx, CParameter, InBuffer, OutBuffer};

/// Discord's window: 2^18 bytes.
const WINDOW_LOG: u32 = 18;

/// One zstd frame per connection that never ends; every payload is flushed,
/// so each one's bytes are one WebSocket message that decodes on its own
/// given the ones before.
pub(crate) struct ZstdCompressor {
    inner: CCtx<'static>,
}

impl ZstdCompressor {
    pub(crate) fn new() -> io::Result<Self> {
        let mut inner = CCtx::try_create().ok_or_else(|| io::Error::other("zstd: no compression context"))?;
        inner.set_parameter(CParameter::WindowLog(WINDOW_LOG)).map_err(zstd_error)?;
        Ok(Self { inner })
    }

    /// Compresses one payload and flushes.
    pub(crate) fn compress(&mut self, payload: &[u8]) -> io::Result<Vec<u8>> {
        let mut out: Vec<u8> = Vec::with_capacity(payload.len() / 2 + 64);
        let mut input = InBuffer::around(payload);
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let len = out.len();
            let mut output = OutBuffer::around_pos(&mut out, len);
            let left = self.inner.compress_stream2(&mut output, &mut input, ZSTD_e_flush).map_err(zstd_error)?;
            if left == 0 && input.pos() == payload.len() {
                return Ok(out);
            }
        }
    }
}

fn zstd_error(code: usize) -> io::Error {
    io::Error::other(format!("zstd: {}", zstd_safe::get_error_name(code)))
}

/// A message no zstd-stream can continue with: a block header of the
/// reserved block type 3 (RFC 8878 §3.1.1.2.2), which is not a frame's
/// magic number either.
pub(crate) const CORRUPT: [u8; 6] = [0x06, 0x00, 0x00, 0xde, 0xad, 0xbe];

#[cfg(test)]
mod tests {
    use super::*;
    use zstd_safe::DCtx;

    fn decode(d: &mut DCtx<'_>, message: &[u8]) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut input = InBuffer::around(message);
        let mut output = OutBuffer::around(&mut out);
        d.decompress_stream(&mut output, &mut input).unwrap();
        assert_eq!(input.pos(), message.len());
        out
    }

    #[test]
    fn one_frame_many_payloads() {
        let mut c = ZstdCompressor::new().unwrap();
        let mut d = DCtx::create();
        let big = "x".repeat(100_000);
        for (i, p) in ["{\"op\":10}", big.as_str(), "{\"op\":11}"].iter().enumerate() {
            let bytes = c.compress(p.as_bytes()).unwrap();
            if i == 0 {
                assert_eq!(&bytes[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
            }
            assert_eq!(decode(&mut d, &bytes), p.as_bytes());
        }
        let mut input = InBuffer::around(&CORRUPT);
        let mut out: Vec<u8> = Vec::with_capacity(64);
        assert!(d.decompress_stream(&mut OutBuffer::around(&mut out), &mut input).is_err());
    }
}
