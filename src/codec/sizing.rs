//! The output buffer policy shared by the transport decompressors.
//!
//! Each decompressor decodes into one working buffer that it keeps warm
//! across payloads, and hands each completed payload over as an exact-size
//! copy. Handing over the working buffer itself (no copy) was measured
//! slower end to end: every large payload then needs fresh memory, and
//! glibc gives the heap's top back to the kernel after a burst and faults
//! it in again on the next one (63,000 page faults against 3,000 for
//! 600 MB of zstd-stream traffic, 18 % more CPU; `benches/README.md`, "End to end").
//!
//! The working buffer's first capacity comes from the stream's running
//! compression ratio and the size of the payload's first compressed
//! message, growth from the payload's own ratio so far. It is freed after a
//! payload that grew it over [`LARGE_CAPACITY`], and when the core calls
//! `release`: for a buffer over [`KEEP_SMALL`] as soon as no more messages
//! wait on the socket ([`is_small`]), and for any buffer a second after the
//! last payload that needed one that large ([`keeps_warm`]). An idle shard
//! holds none, and a busy one keeps at most `KEEP_SMALL` between bursts.
//!
//! The zstd decoder writes into the buffer's spare capacity (libzstd's
//! `OutBuffer` does that for it): its length is the payload, and it grows
//! with [`Sizing::grow`]. The zlib inflater's buffer is kept initialized
//! (zlib-rs's safe API can also write into uninitialized memory, but
//! marking those bytes initialized would take `unsafe`): its length is what
//! has been initialized, the payload a separate count, and it grows with
//! [`Sizing::grow_initialized`], which zero-fills only the bytes it adds (a
//! cold buffer comes zeroed from the allocator, untouched until written).
//! Both grow to the same capacities.

/// A working buffer grown past this by one payload is freed after it.
pub(super) const LARGE_CAPACITY: usize = 4 * 1024 * 1024;

/// A payload of at least 1/`KEEP_RATIO` of the working buffer's capacity
/// keeps it warm for another second.
const KEEP_RATIO: usize = 16;

/// A working buffer up to this size is kept warm by any payload, and kept
/// while the socket has nothing waiting.
const KEEP_SMALL: usize = 64 * 1024;

/// Whether a working buffer of `capacity` bytes is small enough to keep
/// while no messages wait on the socket (a larger one pays for itself only
/// while payloads arrive back to back).
pub(crate) fn is_small(capacity: usize) -> bool {
    capacity <= KEEP_SMALL
}

/// Whether a payload of `len` bytes, decoded in a working buffer of
/// `capacity` bytes, is a reason to keep that buffer warm for another
/// second. A run of large payloads (a burst of GUILD_CREATEs) keeps a large
/// buffer; the ordinary events after them do not, so it is released a
/// second after the last large one even on a shard that never goes quiet,
/// and a busy shard keeps at most `KEEP_SMALL` for its small events.
pub(crate) fn keeps_warm(capacity: usize, len: usize) -> bool {
    is_small(capacity) || len.saturating_mul(KEEP_RATIO) >= capacity
}

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
    #[cfg_attr(not(feature = "zstd"), allow(dead_code))]
    pub(super) fn grow(&self, out: &mut Vec<u8>, consumed: usize, remaining: usize) {
        let len = out.len();
        let target = self.target(out.capacity(), len, consumed, remaining);
        out.reserve_exact(target.saturating_sub(len));
    }

    /// [`grow`](Self::grow) for a working buffer kept initialized: `out.len()`
    /// is how much of it is initialized (and writable), `filled` how much of
    /// that the payload holds so far. Grows a full buffer (`filled ==
    /// out.len()`) to the same capacity `grow` would, zero-filling only the
    /// new part, so a warm buffer reused for the next payload costs no
    /// memset.
    #[cfg_attr(not(feature = "zlib"), allow(dead_code))]
    pub(super) fn grow_initialized(&self, out: &mut Vec<u8>, filled: usize, consumed: usize, remaining: usize) {
        let target = self.target(out.capacity(), filled, consumed, remaining);
        if out.is_empty() {
            // A cold buffer: a zeroed allocation (calloc), whose fresh pages
            // stay untouched until inflate writes them, so a first estimate
            // larger than the payload costs neither memset time nor
            // resident memory (an estimate can be several times the payload).
            *out = vec![0; target];
            return;
        }
        out.reserve_exact(target.saturating_sub(out.len()));
        if out.len() < target {
            out.resize(target, 0);
        }
    }

    /// The capacity a full buffer of `capacity` bytes holding `len` bytes of
    /// the payload grows to (see [`grow`](Self::grow)).
    fn target(&self, capacity: usize, len: usize, consumed: usize, remaining: usize) -> usize {
        let target = if capacity == 0 {
            self.first_capacity
        } else {
            let predicted = remaining.saturating_mul(len / consumed.max(1) + 1);
            len.saturating_add(predicted.max(len / 4)).saturating_add(len / 8)
        };
        target.max(MIN_CAPACITY).min(self.ceiling)
    }

    /// A payload of `decompressed` bytes came from `compressed` ones: learn its ratio.
    pub(super) fn learn(&mut self, decompressed: usize, compressed: usize) {
        self.ratio = next_ratio(self.ratio, decompressed, compressed);
    }

    /// What to keep of the working buffer `out` once the payload in it was
    /// handed over: cleared for the next, or freed when a payload grew it
    /// over [`LARGE_CAPACITY`].
    #[cfg_attr(not(feature = "zstd"), allow(dead_code))]
    pub(super) fn recycle(out: &mut Vec<u8>) {
        if !Self::free_if_large(out) {
            out.clear();
        }
    }

    /// [`recycle`](Self::recycle) for a buffer kept initialized
    /// ([`grow_initialized`](Self::grow_initialized)): it is freed when a
    /// payload grew it over [`LARGE_CAPACITY`], and otherwise kept as it is
    /// (initialized, for the next payload to overwrite); `true` if freed.
    pub(super) fn free_if_large(out: &mut Vec<u8>) -> bool {
        let large = out.capacity() > LARGE_CAPACITY;
        if large {
            *out = Vec::new();
        }
        large
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
/// payload fits without growing.
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
    fn an_initialized_buffer_grows_like_a_plain_one_and_keeps_its_bytes() {
        let sizing = Sizing::new(1000);
        let mut plain = Vec::with_capacity(600);
        plain.extend_from_slice(&[7; 600]);
        sizing.grow(&mut plain, 10, 1_000_000);
        let mut initialized = vec![7; 600];
        sizing.grow_initialized(&mut initialized, 600, 10, 1_000_000);
        assert_eq!(initialized.len(), plain.capacity(), "the same target, all of it writable");
        assert!(initialized.capacity() <= 1001, "{}", initialized.capacity());
        assert!(initialized[..600].iter().all(|&byte| byte == 7));
        assert!(initialized[600..].iter().all(|&byte| byte == 0));
        let mut empty = Vec::new();
        sizing.grow_initialized(&mut empty, 0, 0, 100);
        assert_eq!(empty.len(), 1001, "the planned 4 KiB, capped");
    }

    #[test]
    fn only_an_unusually_large_working_buffer_is_freed_at_once() {
        let mut out = Vec::with_capacity(2 << 20);
        out.extend_from_slice(&[1; 50]);
        Sizing::recycle(&mut out);
        assert_eq!((out.len(), out.capacity() >= 2 << 20), (0, true), "kept, for the release to decide");
        let mut out = Vec::with_capacity(LARGE_CAPACITY + 1);
        out.extend_from_slice(&vec![1; LARGE_CAPACITY]);
        Sizing::recycle(&mut out);
        assert_eq!(out.capacity(), 0, "an unusually large one is freed");
    }

    #[test]
    fn large_payloads_keep_a_large_buffer_warm_small_ones_do_not() {
        assert!(keeps_warm(KEEP_SMALL, 1), "a small buffer is kept by anything");
        assert!(keeps_warm(2 << 20, (2 << 20) / KEEP_RATIO));
        assert!(!keeps_warm(2 << 20, 1000));
        assert!(keeps_warm(2 << 20, usize::MAX), "no overflow");
    }

    #[test]
    fn the_ratio_follows_the_stream_and_stays_clamped() {
        let mut sizing = Sizing::new(1 << 20);
        for _ in 0..20 {
            sizing.learn(10_000, 1000);
        }
        assert!((76..=80).contains(&sizing.ratio), "{}", sizing.ratio);
        for _ in 0..40 {
            sizing.learn(1_000_000, 1);
        }
        assert_eq!(sizing.ratio, 64 * 8);
    }
}
