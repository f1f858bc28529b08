//! The simulator's own zlib-stream compressor (independent of `crate::codec`).

use std::io;

use flate2::{Compress, Compression, FlushCompress};

/// One zlib-wrapped deflate stream per connection; every payload ends with a
/// sync flush, so its bytes end with `00 00 ff ff`.
pub(crate) struct Deflater {
    inner: Compress,
}

impl Deflater {
    pub(crate) fn new() -> Self {
        Self { inner: Compress::new(Compression::default(), true) }
    }

    /// Compresses one payload and sync-flushes.
    pub(crate) fn compress(&mut self, input: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        let start = self.inner.total_in();
        loop {
            let consumed = usize::try_from(self.inner.total_in() - start)
                .map_err(|_| io::Error::other("deflate: input counter overflow"))?;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            self.inner.compress_vec(&input[consumed..], &mut out, FlushCompress::Sync).map_err(io::Error::other)?;
            let consumed = usize::try_from(self.inner.total_in() - start)
                .map_err(|_| io::Error::other("deflate: input counter overflow"))?;
            // Done once all input is in and the flush did not fill the buffer.
            if consumed == input.len() && out.len() < out.capacity() {
                break;
            }
        }
        if !out.ends_with(&[0, 0, 0xff, 0xff]) {
            return Err(io::Error::other("deflate: sync flush marker missing"));
        }
        Ok(out)
    }
}

/// Cuts a compressed payload into `k` pieces: the final two bytes alone (so
/// the sync marker straddles two messages) and `k - 1` near-equal parts before
/// them. `k <= 1` (or a payload too short) gives one piece.
pub(crate) fn split(bytes: Vec<u8>, k: usize) -> Vec<Vec<u8>> {
    if k <= 1 || bytes.len() < 3 {
        return vec![bytes];
    }
    let (head, tail) = bytes.split_at(bytes.len() - 2);
    let parts = k - 1;
    let size = head.len().div_ceil(parts).max(1);
    let mut out: Vec<Vec<u8>> = head.chunks(size).map(<[u8]>::to_vec).collect();
    out.push(tail.to_vec());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    fn inflate(d: &mut Decompress, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let start = d.total_in();
        loop {
            let consumed = (d.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity());
            }
            d.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync).unwrap();
            if (d.total_in() - start) as usize == input.len() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    #[test]
    fn one_stream_many_payloads() {
        let mut c = Deflater::new();
        let mut d = Decompress::new(true);
        let big = "x".repeat(100_000);
        for (i, p) in ["{\"op\":10}", big.as_str(), "{\"op\":11}"].iter().enumerate() {
            let bytes = c.compress(p.as_bytes()).unwrap();
            if i == 0 {
                assert_eq!(&bytes[..2], &[0x78, 0x9c]);
            }
            assert_eq!(inflate(&mut d, &bytes), p.as_bytes());
        }
    }

    #[test]
    fn split_keeps_marker_straddled() {
        let bytes: Vec<u8> = (0..20).chain([0, 0, 0xff, 0xff]).collect();
        let parts = split(bytes.clone(), 3);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], vec![0xff, 0xff]);
        assert_eq!(parts.concat(), bytes);
        assert_eq!(split(bytes.clone(), 1), vec![bytes]);
    }
}
