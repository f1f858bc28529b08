//! Output-buffer sizing shared by the transport decompressors.
//!
//! Each completed payload is handed over as the buffer it was decompressed
//! into, so every payload needs a new buffer. Guessing its size well is what
//! keeps that at about one allocation per payload with little spare: the
//! first capacity comes from the stream's running compression ratio and the
//! size of the payload's first compressed message, growth from the payload's
//! own ratio so far, and a buffer that still ended up far too large is
//! shrunk before it is handed over.

/// An owned payload's buffer with more spare bytes than this (and than the
/// payload) is shrunk before it is handed over.
pub(super) const SHRINK_SPARE: usize = 4096;

/// The smallest output buffer allocated.
const MIN_CAPACITY: usize = 256;

/// The ratio a new stream starts from, in eighths (JSON decompresses about 4-10×).
const START_RATIO: usize = 6 * 8;

/// The running ratio of one stream, and the capacity planned for the next buffer.
#[derive(Debug)]
pub(super) struct Sizing {
    /// Running decompressed-to-compressed size ratio, in eighths.
    ratio: usize,
    /// Capacity for a new output buffer, estimated from the first message of its payload.
    first_capacity: usize,
    /// The cap on one payload plus one byte: a buffer never grows past it (one
    /// byte more than allowed is how an oversized payload is noticed).
    ceiling: usize,
}

impl Sizing {
    /// Sizing for payloads of at most `max_message_size` bytes.
    pub(super) fn new(max_message_size: usize) -> Sizing {
        Sizing { ratio: START_RATIO, first_capacity: 4 * 1024, ceiling: max_message_size.saturating_add(1) }
    }

    /// A payload's first compressed message of `compressed` bytes arrived
    /// while `out` has no buffer: plan the buffer for it.
    pub(super) fn plan(&mut self, out: &Vec<u8>, compressed: usize) {
        if out.capacity() == 0 {
            self.first_capacity = estimate(self.ratio, compressed);
        }
    }

    /// Grows a full `out`, never past the cap plus one byte.
    ///
    /// An empty buffer gets the planned capacity. A full one grows by what
    /// this payload's own ratio so far (`out.len()` from `consumed`
    /// compressed bytes) predicts for the `remaining` compressed bytes of
    /// the message, plus an eighth, so a payload ends in a buffer at most
    /// about an eighth too large; with no input left (the decompressor still
    /// holds output) by a quarter.
    pub(super) fn grow(&self, out: &mut Vec<u8>, consumed: usize, remaining: usize) {
        let len = out.len();
        let target = if out.capacity() == 0 {
            self.first_capacity
        } else {
            let predicted = remaining.saturating_mul(len / consumed.max(1) + 1);
            len.saturating_add(predicted.max(len / 4)).saturating_add(len / 8)
        };
        let target = target.max(MIN_CAPACITY).min(self.ceiling);
        out.reserve_exact(target.saturating_sub(len));
    }

    /// A payload of `compressed` bytes completed in `payload`: learn its
    /// ratio and shrink its buffer if the estimate missed by far (after a run
    /// of payloads that compress much better, say).
    pub(super) fn finish(&mut self, mut payload: Vec<u8>, compressed: usize) -> Vec<u8> {
        self.ratio = next_ratio(self.ratio, payload.len(), compressed);
        let spare = payload.capacity() - payload.len();
        if spare > payload.len() && spare > SHRINK_SPARE {
            payload.shrink_to_fit();
        }
        payload
    }
}

/// The ratio after a payload of `decompressed` bytes from `compressed` ones:
/// a running average that follows the stream within a few payloads.
fn next_ratio(ratio: usize, decompressed: usize, compressed: usize) -> usize {
    let sample = decompressed.saturating_mul(8) / compressed.max(1);
    (ratio.saturating_mul(3).saturating_add(sample) / 4).clamp(8, 64 * 8)
}

/// The first capacity for a payload whose first compressed message has
/// `compressed` bytes: half again what the ratio predicts, so almost every
/// payload fits without growing (measured in `tests/codec_allocations.rs`:
/// about 1.004 allocations per zlib payload, a quarter of the bytes spare; a
/// quarter more instead of a half gave 1.09 allocations and 18% spare).
fn estimate(ratio: usize, compressed: usize) -> usize {
    (compressed.saturating_mul(ratio) / 8).saturating_mul(3) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_never_grows_past_the_cap_plus_one() {
        let sizing = Sizing::new(1000);
        let mut out = vec![0; 900];
        sizing.grow(&mut out, 10, 1_000_000);
        assert!(out.capacity() <= 1001, "{}", out.capacity());
        assert!(out.capacity() > 900);
    }

    #[test]
    fn the_ratio_follows_the_stream_and_stays_clamped() {
        let mut sizing = Sizing::new(1 << 20);
        for _ in 0..20 {
            sizing.finish(vec![0; 10_000], 1000);
        }
        assert!((76..=80).contains(&sizing.ratio), "{}", sizing.ratio);
        for _ in 0..40 {
            sizing.finish(vec![0; 1_000_000], 1);
        }
        assert_eq!(sizing.ratio, 64 * 8);
    }
}
