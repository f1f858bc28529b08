//! zlib-stream inflater (`docs/compression.md#zlib-stream`,
//! `docs/edge-cases.md#zlib-stream-framing-and-state`).
//!
//! What an inflater guarantees:
//! - one instance per shard, [`Inflater::reset`] on every new connection;
//! - [`Inflater::push`] takes one binary WebSocket message; it returns
//!   `Ok(Some(payload))` when the accumulated compressed input ends with
//!   `00 00 ff ff` (the marker may straddle messages), `Ok(None)` otherwise;
//! - the payload slice borrows an internal buffer reused across payloads
//!   (allocation-free in steady state; freed before the payload after an
//!   unusually big one, on [`Inflater::reset`] and on [`Inflater::release`]);
//! - [`Inflater::push_owned`] hands the payload over as an exact-size copy;
//! - corrupt data, or a payload inflating past `max_message_size`, is an `Err`
//!   and leaves the inflater unusable until `reset`.
//!
//! Each message goes straight into the decompressor: compressed bytes are
//! never buffered, only the last four are remembered to find the marker.
//!
//! The decompressor is zlib-rs through its safe API (`zlib_rs::Inflate`).
//! Without `unsafe` its output can only be initialized memory, so the
//! working buffer stays initialized from payload to payload and is
//! zero-filled only where it grows (`codec/sizing.rs`).
//!
//! zlib-rs inflates raw deflate: the inflater reads the 2-byte zlib header
//! itself (RFC 1950, checked as zlib checks it; its two bytes may come in
//! two messages), so zlib-rs does not update an Adler-32 checksum over every
//! inflated byte for a trailer that a never-ending zlib-stream never sends.
//! Should a stream end after all, the 4-byte trailer after its final block
//! is accepted unverified, and anything after it is an error.
//! [`InflateError::Corrupt`] offsets count the header (and trailer) bytes:
//! they are offsets in the connection's compressed stream.

use zlib_rs::{Inflate, InflateFlush, Status};

use super::sizing::Sizing;

/// The Z_SYNC_FLUSH marker that ends every payload (`docs/compression.md#zlib-stream`).
const SYNC_FLUSH_MARKER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Why a zlib-stream could not be inflated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InflateError {
    /// The compressed bytes are not a valid continuation of the zlib stream
    /// (also what a stream reused across connections gives,
    /// `docs/edge-cases.md#zlib-stream-framing-and-state`).
    #[error("corrupt zlib stream at compressed byte {at}: {reason}")]
    Corrupt {
        /// Offset in the connection's compressed stream where inflation failed.
        at: u64,
        /// zlib's description of the problem.
        reason: String,
    },
    /// One payload inflated to more than the configured cap (a decompression bomb, or a cap set too low).
    #[error("a payload inflated past the {limit}-byte cap")]
    MessageTooLarge {
        /// The configured cap, `max_message_size`.
        limit: usize,
    },
    /// An earlier error left the stream unusable: call `reset` (reconnect) first.
    #[error("the zlib stream failed earlier; reset the inflater on the new connection")]
    Poisoned,
}

/// zlib's window size, as a base-2 logarithm: the largest a zlib header
/// may ask for, and the one every zlib-stream uses. Inflating with it
/// accepts exactly what zlib accepts after any valid header (zlib-rs, like
/// zlib, does not hold distances to a smaller window the header names).
const WINDOW_BITS: u8 = 15;

// `Inflate::reset` always returns to zlib-rs's default window, 2^15: `reset` relies on it being ours.
const _: () = assert!(WINDOW_BITS == 15);

/// The Adler-32 trailer after the final deflate block of a zlib stream.
const TRAILER_LEN: u8 = 4;

/// Where the connection's zlib stream is, around the raw deflate data that
/// zlib-rs inflates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Before the deflate data: the 2-byte zlib header, with its first byte
    /// once received.
    Header(Option<u8>),
    /// In the deflate data (for a zlib-stream, forever).
    Deflate,
    /// After the final deflate block: this many trailer bytes still to come.
    Trailer(u8),
    /// After the trailer: nothing may follow.
    Ended,
}

/// zlib's description of a corrupt stream. zlib-rs 0.6 overwrites the real
/// one with "repeated call with bad state" when its fast path stops on bad
/// data (C zlib keeps it); we never call it again after an error, so that
/// text only ever means the data was invalid.
fn zlib_reason(message: &str) -> &str {
    if message == "repeated call with bad state" {
        "invalid deflate data"
    } else {
        message
    }
}

/// The zlib-stream inflate context of one connection.
pub struct Inflater {
    /// The connection's inflate context, for the raw deflate data inside
    /// the zlib (RFC 1950) stream.
    decompress: Inflate,
    /// Where the stream is around the deflate data.
    framing: Framing,
    /// Header and trailer bytes consumed (the compressed bytes zlib-rs did not see).
    framing_in: u64,
    /// The working buffer, all of it initialized: `out[..filled]` is the
    /// payload in progress (or the payload last returned), the rest room to
    /// inflate into, left over from earlier payloads or zero-filled.
    out: Vec<u8>,
    /// Inflated bytes of the payload in `out`.
    filled: usize,
    /// Whether `out` holds a payload already returned by `push` (cleared on the next push).
    returned: bool,
    /// The last (up to) four compressed bytes pushed, oldest first.
    tail: [u8; 4],
    /// Compressed bytes pushed since the last completed payload (saturating).
    pending_in: usize,
    /// Set by any error; cleared by `reset`.
    poisoned: bool,
    /// Cap on one inflated payload.
    max_message_size: usize,
    /// Sizes each payload's buffer from the stream's inflate ratio.
    sizing: Sizing,
    /// The stream's compressed byte count when the current payload started.
    payload_start_in: u64,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("framing", &self.framing)
            .field("total_in", &self.stream_in())
            .field("total_out", &self.decompress.total_out())
            .field("filled", &self.filled)
            .field("buffer_capacity", &self.out.capacity())
            .field("returned", &self.returned)
            .field("pending_in", &self.pending_in)
            .field("poisoned", &self.poisoned)
            .field("max_message_size", &self.max_message_size)
            .finish_non_exhaustive()
    }
}

impl Inflater {
    /// A fresh inflater whose payloads may inflate to at most `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        Inflater {
            decompress: Inflate::new(false, WINDOW_BITS),
            framing: Framing::Header(None),
            framing_in: 0,
            out: Vec::new(),
            filled: 0,
            returned: false,
            tail: [0; 4],
            pending_in: 0,
            poisoned: false,
            max_message_size,
            sizing: Sizing::new(max_message_size),
            payload_start_in: 0,
        }
    }

    /// Forgets all stream state: call on every new connection.
    ///
    /// Afterwards the inflater behaves exactly like a new one
    /// (`docs/edge-cases.md#zlib-stream-framing-and-state`: carrying the
    /// inflate context across connections gives "data error").
    pub fn reset(&mut self) {
        // Back to raw deflate with zlib-rs's default window, WINDOW_BITS.
        self.decompress.reset(false);
        self.framing = Framing::Header(None);
        self.framing_in = 0;
        self.start_payload();
        // A new connection starts cold; whatever was half inflated is gone.
        self.free_buffer();
        self.tail = [0; 4];
        self.pending_in = 0;
        self.poisoned = false;
    }

    #[cfg(any(test, feature = "fuzzing"))]
    /// The configured cap on one inflated payload.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Feeds one binary WebSocket message.
    ///
    /// Returns the inflated payload when the compressed bytes pushed so far
    /// end with `00 00 ff ff`, even when those four bytes are spread over
    /// several messages (`docs/compression.md#zlib-stream`). After an error every call returns
    /// [`InflateError::Poisoned`] until [`Inflater::reset`].
    pub fn push(&mut self, message: &[u8]) -> Result<Option<&[u8]>, InflateError> {
        if !self.feed(message)? {
            return Ok(None);
        }
        self.returned = true;
        Ok(Some(self.out.get(..self.filled).unwrap_or_default()))
    }

    /// Like [`push`](Self::push), but hands the completed payload over as
    /// an exact-size copy (one allocation per payload), while the working
    /// buffer stays warm for the next one (see `codec/sizing.rs` for why a
    /// copy beats handing the buffer over).
    pub fn push_owned(&mut self, message: &[u8]) -> Result<Option<Vec<u8>>, InflateError> {
        let compressed = self.pending_in.saturating_add(message.len());
        let Some(payload) = self.push(message)?.map(<[u8]>::to_vec) else {
            return Ok(None);
        };
        self.sizing.learn(payload.len(), compressed);
        Ok(Some(payload))
    }

    /// Frees the working buffer unless a payload is half inflated in it: an
    /// idle shard then holds only the zlib context (46.4 KiB with zlib-rs).
    /// The core calls this when no more messages wait on the socket (for a
    /// buffer over 64 KiB) and a second after the last payload.
    pub fn release(&mut self) {
        if self.pending_in == 0 {
            self.free_buffer();
        }
    }

    /// Bytes held by the working buffer (the zlib context not included).
    pub fn buffer_capacity(&self) -> usize {
        self.out.capacity()
    }

    /// Inflates one message into `out`; `true` when it completed a payload.
    fn feed(&mut self, message: &[u8]) -> Result<bool, InflateError> {
        if self.poisoned {
            return Err(InflateError::Poisoned);
        }
        if self.returned {
            self.start_payload();
        }
        if message.is_empty() {
            return Ok(false);
        }
        self.remember_tail(message);
        if let Err(error) = self.inflate(message) {
            self.poisoned = true;
            // Nothing more comes out of this stream: free what it inflated
            // (up to the cap) now, not on the next connection.
            self.free_buffer();
            tracing::debug!(%error, "zlib-stream inflate failed");
            return Err(error);
        }
        let complete = self.pending_in >= SYNC_FLUSH_MARKER.len() && self.tail == SYNC_FLUSH_MARKER;
        if complete {
            self.pending_in = 0;
        }
        Ok(complete)
    }

    /// Forgets the payload last returned (or a partial one); frees the buffer
    /// if that payload made it large.
    fn start_payload(&mut self) {
        self.returned = false;
        self.payload_start_in = self.stream_in();
        self.filled = 0;
        Sizing::free_if_large(&mut self.out);
    }

    /// Frees the working buffer.
    fn free_buffer(&mut self) {
        self.out = Vec::new();
        self.filled = 0;
    }

    /// Records the last compressed bytes of `message` after the earlier ones.
    fn remember_tail(&mut self, message: &[u8]) {
        self.sizing.plan(&self.out, message.len());
        self.pending_in = self.pending_in.saturating_add(message.len());
        if let Some(last) = message.last_chunk::<4>() {
            self.tail = *last;
        } else {
            for &byte in message {
                let [_, a, b, c] = self.tail;
                self.tail = [a, b, c, byte];
            }
        }
    }

    /// Compressed bytes of the connection's stream consumed so far.
    fn stream_in(&self) -> u64 {
        self.framing_in.saturating_add(self.decompress.total_in())
    }

    /// Takes all of `input`: the zlib header, deflate data inflated into
    /// `out`, the trailer of a stream that ended.
    fn inflate(&mut self, mut input: &[u8]) -> Result<(), InflateError> {
        while let Some((&byte, rest)) = input.split_first() {
            match self.framing {
                Framing::Header(None) => {
                    self.framing = Framing::Header(Some(byte));
                    self.framing_in += 1;
                    input = rest;
                }
                Framing::Header(Some(cmf)) => {
                    self.framing_in += 1;
                    check_header(cmf, byte)
                        .map_err(|reason| InflateError::Corrupt { at: self.stream_in(), reason: reason.to_owned() })?;
                    self.framing = Framing::Deflate;
                    input = rest;
                }
                Framing::Deflate => input = self.inflate_deflate(input)?,
                Framing::Trailer(left) => {
                    let taken = input.len().min(usize::from(left));
                    self.framing_in = self.framing_in.saturating_add(taken as u64);
                    let left = left.saturating_sub(u8::try_from(taken).unwrap_or(u8::MAX));
                    self.framing = if left == 0 { Framing::Ended } else { Framing::Trailer(left) };
                    input = input.get(taken..).unwrap_or_default();
                }
                Framing::Ended => {
                    return Err(InflateError::Corrupt {
                        at: self.stream_in(),
                        reason: "data after the end of the zlib stream".to_owned(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Inflates deflate data from `input` into `out`, growing it up to the
    /// cap, until `input` is used up or the deflate data ends; returns what
    /// follows the deflate data (the trailer).
    fn inflate_deflate<'a>(&mut self, mut input: &'a [u8]) -> Result<&'a [u8], InflateError> {
        loop {
            if self.filled == self.out.len() {
                self.grow(input.len());
                if self.filled == self.out.len() {
                    // Only at the cap plus one byte does the buffer not grow.
                    return Err(InflateError::MessageTooLarge { limit: self.max_message_size });
                }
            }
            let in_before = self.decompress.total_in();
            let out_before = self.decompress.total_out();
            let room = self.out.get_mut(self.filled..).unwrap_or_default();
            let status = self.decompress.decompress(input, room, InflateFlush::SyncFlush).map_err(|error| {
                InflateError::Corrupt {
                    at: self.stream_in(),
                    reason: zlib_reason(self.decompress.error_message().unwrap_or(error.as_str())).to_owned(),
                }
            })?;
            let consumed = usize::try_from(self.decompress.total_in() - in_before).unwrap_or(usize::MAX);
            let produced = usize::try_from(self.decompress.total_out() - out_before).unwrap_or(usize::MAX);
            input = input.get(consumed..).unwrap_or_default();
            self.filled = self.filled.saturating_add(produced).min(self.out.len());
            if self.filled > self.max_message_size {
                return Err(InflateError::MessageTooLarge { limit: self.max_message_size });
            }
            let out_full = self.filled == self.out.len();
            match status {
                Status::StreamEnd => {
                    self.framing = Framing::Trailer(TRAILER_LEN);
                    return Ok(input);
                }
                Status::Ok | Status::BufError => {
                    if input.is_empty() && !out_full {
                        return Ok(input);
                    }
                    if consumed == 0 && produced == 0 && !out_full {
                        return Err(InflateError::Corrupt {
                            at: self.stream_in(),
                            reason: "the inflater made no progress".to_owned(),
                        });
                    }
                }
            }
        }
    }

    /// Grows the working buffer (see [`Sizing::grow_initialized`]).
    fn grow(&mut self, remaining: usize) {
        let consumed = usize::try_from(self.stream_in().saturating_sub(self.payload_start_in)).unwrap_or(usize::MAX);
        self.sizing.grow_initialized(&mut self.out, self.filled, consumed, remaining);
    }
}

/// Checks a zlib header (RFC 1950 §2.2) as zlib does, with zlib's messages:
/// `CMF` and `FLG` a multiple of 31, deflate (CM 8) with a window of at most
/// 2^15 (CINFO ≤ 7), and no preset dictionary (FDICT), which zlib cannot
/// inflate without being given it.
fn check_header(cmf: u8, flg: u8) -> Result<(), &'static str> {
    if (u16::from(cmf) << 8 | u16::from(flg)) % 31 != 0 {
        Err("incorrect header check")
    } else if cmf & 0x0f != 8 {
        Err("unknown compression method")
    } else if cmf >> 4 > WINDOW_BITS - 8 {
        Err("invalid window size")
    } else if flg & 0x20 != 0 {
        Err("need dictionary")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    /// Compresses `payloads` as one zlib stream with a sync flush after each,
    /// as Discord does (`docs/compression.md#zlib-stream`); returns one
    /// compressed message per payload.
    fn zlib_stream(payloads: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut compress = Compress::new(Compression::default(), true);
        payloads
            .iter()
            .map(|payload| {
                let mut out = Vec::with_capacity(payload.len() + 64);
                let mut input: &[u8] = payload;
                loop {
                    let before = compress.total_in();
                    compress.compress_vec(input, &mut out, FlushCompress::Sync).unwrap();
                    let consumed = (compress.total_in() - before) as usize;
                    input = &input[consumed..];
                    if input.is_empty() && out.len() < out.capacity() {
                        break;
                    }
                    out.reserve(out.capacity().max(64));
                }
                assert!(out.ends_with(&SYNC_FLUSH_MARKER));
                out
            })
            .collect()
    }

    fn payloads() -> Vec<Vec<u8>> {
        let mut list: Vec<Vec<u8>> = vec![
            br#"{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250,"_trace":["gateway-prd-1"]}}"#.to_vec(),
            br#"{"t":null,"s":null,"op":11,"d":null}"#.to_vec(),
            br#"{"t":"READY","s":1,"op":0,"d":{"v":10,"session_id":"abc","resume_gateway_url":"wss://x"}}"#.to_vec(),
        ];
        let mut big = br#"{"t":"GUILD_CREATE","s":2,"op":0,"d":{"members":["#.to_vec();
        for n in 0..5000 {
            big.extend_from_slice(
                format!(r#"{{"id":"{}","name":"member {}"}},"#, 80_000_000_000_u64 + n * 7919, n).as_bytes(),
            );
        }
        big.extend_from_slice(br#"{}]}}"#);
        list.push(big);
        list.push(br#"{"t":"MESSAGE_CREATE","s":3,"op":0,"d":{"content":"hi"}}"#.to_vec());
        list
    }

    fn push_all(inflater: &mut Inflater, frames: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for frame in frames {
            if let Some(payload) = inflater.push(frame).unwrap() {
                out.push(payload.to_vec());
            }
        }
        out
    }

    // docs/compression.md#zlib-stream: one inflate context per connection,
    // shared by every message on it.
    #[test]
    fn stream_of_sync_flushed_messages_decodes_message_by_message() {
        let payloads = payloads();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let frames = zlib_stream(&refs);
        let mut inflater = Inflater::new(1 << 20);
        for (frame, payload) in frames.iter().zip(&payloads) {
            assert_eq!(inflater.push(frame).unwrap(), Some(payload.as_slice()));
        }
    }

    // docs/compression.md#zlib-stream /
    // docs/edge-cases.md#zlib-stream-framing-and-state: a payload can span
    // several WebSocket messages.
    #[test]
    fn payload_split_over_many_messages_completes_on_the_last() {
        let payloads = payloads();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let frames = zlib_stream(&refs);
        let mut inflater = Inflater::new(1 << 20);
        for (frame, payload) in frames.iter().zip(&payloads) {
            let pieces: Vec<&[u8]> = frame.chunks(7).collect();
            let (last, init) = pieces.split_last().unwrap();
            for piece in init {
                assert_eq!(inflater.push(piece).unwrap(), None);
            }
            assert_eq!(inflater.push(last).unwrap(), Some(payload.as_slice()));
        }
    }

    // docs/compression.md#zlib-stream /
    // docs/edge-cases.md#zlib-stream-framing-and-state: the marker itself may
    // straddle messages (a last message of 1-3 bytes); checking only the newest
    // message stalls forever.
    #[test]
    fn marker_split_across_messages_still_completes_the_payload() {
        let payloads = payloads();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        for last_len in 1..=4 {
            let frames = zlib_stream(&refs);
            let mut inflater = Inflater::new(1 << 20);
            for (frame, payload) in frames.iter().zip(&payloads) {
                let (head, tail) = frame.split_at(frame.len() - last_len);
                assert_eq!(inflater.push(head).unwrap(), None, "last_len {last_len}");
                assert_eq!(inflater.push(tail).unwrap(), Some(payload.as_slice()), "last_len {last_len}");
            }
        }
    }

    // docs/compression.md#zlib-stream: the marker spread one byte per message,
    // and empty messages in between.
    #[test]
    fn marker_one_byte_per_message_and_empty_messages_are_harmless() {
        let payloads = payloads();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let frames = zlib_stream(&refs);
        let mut inflater = Inflater::new(1 << 20);
        for (frame, payload) in frames.iter().zip(&payloads) {
            let (head, tail) = frame.split_at(frame.len() - 4);
            assert_eq!(inflater.push(head).unwrap(), None);
            for byte in &tail[..3] {
                assert_eq!(inflater.push(&[]).unwrap(), None);
                assert_eq!(inflater.push(std::slice::from_ref(byte)).unwrap(), None);
            }
            assert_eq!(inflater.push(&tail[3..]).unwrap(), Some(payload.as_slice()));
        }
    }

    #[test]
    fn corrupt_bytes_are_an_error_then_poisoned_until_reset() {
        let frames = zlib_stream(&[b"{\"op\":11}"]);
        let mut garbage = frames[0].clone();
        garbage[0] = 0x12; // not a zlib header
        let mut inflater = Inflater::new(1 << 20);
        assert!(matches!(inflater.push(&garbage), Err(InflateError::Corrupt { .. })));
        assert_eq!(inflater.push(&frames[0]), Err(InflateError::Poisoned));
        inflater.reset();
        assert_eq!(inflater.push(&frames[0]).unwrap(), Some(&b"{\"op\":11}"[..]));
    }

    // The header is read by the inflater, so its two bytes may arrive in
    // two messages like any others.
    #[test]
    fn header_split_across_messages_still_inflates() {
        let frames = zlib_stream(&[b"{\"op\":10}", b"{\"op\":11}"]);
        let mut inflater = Inflater::new(1 << 20);
        assert_eq!(inflater.push(&frames[0][..1]).unwrap(), None);
        assert_eq!(inflater.push(&frames[0][1..2]).unwrap(), None);
        assert_eq!(inflater.push(&frames[0][2..]).unwrap(), Some(&b"{\"op\":10}"[..]));
        assert_eq!(inflater.push(&frames[1]).unwrap(), Some(&b"{\"op\":11}"[..]));
    }

    // The header check agrees with zlib's on all 65,536 headers: zlib-rs
    // reading the header itself (as the inflater did through flate2)
    // accepts exactly the headers `check_header` accepts, and refuses the
    // others with the same message (a preset dictionary: once its id is in).
    #[test]
    fn header_check_agrees_with_zlib_on_every_header() {
        let mut zlib = Inflate::new(true, WINDOW_BITS);
        let mut out = [0; 64];
        for header in 0..=u16::MAX {
            let [cmf, flg] = header.to_be_bytes();
            // An empty fixed block, then what a dictionary id or the next block needs.
            let input = [cmf, flg, 0x02, 0x00, 0x00, 0x00];
            zlib.reset(true);
            let expected = zlib
                .decompress(&input, &mut out, InflateFlush::SyncFlush)
                .map(drop)
                .map_err(|error| (zlib.total_in(), zlib.error_message().unwrap_or(error.as_str()).to_owned()));
            let mut inflater = Inflater::new(1 << 20);
            let got = inflater.push(&input).map(drop).map_err(|error| match error {
                InflateError::Corrupt { at, reason } => (at, reason),
                other => panic!("{other:?}"),
            });
            match (&expected, &got) {
                (Err((6, zlib_reason)), Err((2, reason))) if flg & 0x20 != 0 => {
                    assert_eq!((zlib_reason.as_str(), reason.as_str()), ("need dictionary", "need dictionary"))
                }
                _ => assert_eq!(got, expected, "header {cmf:02x} {flg:02x}"),
            }
        }
    }

    #[test]
    fn bad_headers_are_corrupt_at_byte_two() {
        for (header, reason) in [
            ([0x78, 0x9d], "incorrect header check"),
            ([0x77, 0x85], "unknown compression method"),
            ([0x88, 0x98], "invalid window size"),
            ([0x78, 0xbb], "need dictionary"),
        ] {
            let mut inflater = Inflater::new(1 << 20);
            assert_eq!(inflater.push(&header[..1]), Ok(None));
            assert_eq!(
                inflater.push(&header[1..]),
                Err(InflateError::Corrupt { at: 2, reason: reason.to_owned() }),
                "{header:02x?}"
            );
        }
    }

    // Corrupt deflate data fails where, and as, it failed when zlib-rs read
    // the header itself: offsets count the header bytes.
    #[test]
    fn corrupt_offsets_and_reasons_are_zlibs() {
        let payloads = payloads();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let stream: Vec<u8> = zlib_stream(&refs).concat();
        let mut zlib = Inflate::new(true, WINDOW_BITS);
        let mut out = vec![0; 1 << 20];
        let mut compared = 0;
        for position in (2..stream.len()).step_by(307) {
            for flip in [0x01_u8, 0x80, 0xff] {
                let mut bad = stream.clone();
                bad[position] ^= flip;
                zlib.reset(true);
                let mut input = bad.as_slice();
                let expected = loop {
                    let before = zlib.total_in();
                    match zlib.decompress(input, &mut out, InflateFlush::SyncFlush) {
                        Err(error) => {
                            break Some((
                                zlib.total_in(),
                                zlib_reason(zlib.error_message().unwrap_or(error.as_str())).to_owned(),
                            ))
                        }
                        Ok(_) => input = &input[(zlib.total_in() - before) as usize..],
                    }
                    if input.is_empty() {
                        break None;
                    }
                };
                let mut inflater = Inflater::new(64 << 20);
                let got = inflater.push(&bad).err().map(|error| match error {
                    InflateError::Corrupt { at, reason } => (at, reason),
                    other => panic!("{other:?}"),
                });
                match (&expected, &got) {
                    // A flipped BFINAL bit ends the stream: zlib then read
                    // the next 4 bytes as the Adler-32 trailer and refused
                    // them; now they are taken unverified and the byte after
                    // them fails at the same offset.
                    (Some((at, their_reason)), Some((got_at, reason))) if their_reason == "incorrect data check" => {
                        assert_eq!((got_at, reason.as_str()), (at, "data after the end of the zlib stream"))
                    }
                    _ => assert_eq!(got, expected, "byte {position} ^ {flip:#04x}"),
                }
                compared += usize::from(got.is_some());
            }
        }
        assert!(compared > 10, "only {compared} corruptions failed");
    }

    #[test]
    fn a_corrupt_stream_never_reports_zlib_rs_bad_state_text() {
        let payloads = payloads();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let stream: Vec<u8> = zlib_stream(&refs).concat();
        let mut failed = 0;
        for position in (2..stream.len()).step_by(97) {
            let mut bad = stream.clone();
            bad[position] ^= 0x55;
            let mut inflater = Inflater::new(64 << 20);
            // 4 KiB messages, as the reviewer's case that showed the text.
            for message in bad.chunks(4096) {
                match inflater.push(message) {
                    Ok(_) => {}
                    Err(InflateError::Corrupt { reason, .. }) => {
                        assert_ne!(reason, "repeated call with bad state", "byte {position}");
                        failed += 1;
                        break;
                    }
                    Err(other) => panic!("{other:?}"),
                }
            }
        }
        assert!(failed > 10, "only {failed} corruptions failed");
    }

    // Discord's stream never ends; should one end anyway, its Adler-32
    // trailer is taken unverified (it was not computed) and anything after
    // it is an error, as before.
    #[test]
    fn a_stream_that_ends_takes_its_trailer_then_nothing() {
        let mut compress = Compress::new(Compression::default(), true);
        let mut ended = Vec::with_capacity(256);
        compress.compress_vec(b"{\"op\":11}", &mut ended, FlushCompress::Finish).unwrap();
        let mut inflater = Inflater::new(1 << 20);
        let (body, trailer) = ended.split_at(ended.len() - 4);
        assert_eq!(inflater.push(body).unwrap(), None);
        assert_eq!(inflater.push(&trailer[..1]).unwrap(), None);
        assert_eq!(inflater.push(&trailer[1..]).unwrap(), None);
        assert_eq!(
            inflater.push(&[0x03, 0x00]),
            Err(InflateError::Corrupt {
                at: ended.len() as u64,
                reason: "data after the end of the zlib stream".to_owned()
            })
        );
        inflater.reset();
        let mut longer = ended.clone();
        longer.push(0);
        assert!(matches!(inflater.push(&longer), Err(InflateError::Corrupt { .. })));
    }

    #[test]
    fn corrupt_bytes_anywhere_never_panic() {
        let payloads = payloads();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let frames = zlib_stream(&refs);
        let stream: Vec<u8> = frames.concat();
        let mut inflater = Inflater::new(1 << 20);
        for position in (0..stream.len()).step_by(997) {
            for flip in [0x01_u8, 0x80, 0xff] {
                let mut bad = stream.clone();
                bad[position] ^= flip;
                inflater.reset();
                for piece in bad.chunks(1000) {
                    if inflater.push(piece).is_err() {
                        break;
                    }
                }
            }
        }
    }

    #[test]
    fn decompression_bomb_over_the_cap_is_message_too_large() {
        let bomb = vec![b' '; 10 << 20];
        let frames = zlib_stream(&[&bomb]);
        assert!(frames[0].len() < 64 << 10);
        let mut inflater = Inflater::new(1 << 20);
        assert_eq!(inflater.push(&frames[0]), Err(InflateError::MessageTooLarge { limit: 1 << 20 }));
        assert!(inflater.out.capacity() <= (1 << 20) + 1);
        assert_eq!(inflater.push(&frames[0]), Err(InflateError::Poisoned));
    }

    #[test]
    fn payload_exactly_at_the_cap_is_accepted() {
        let payload = vec![b'x'; 10_000];
        let frames = zlib_stream(&[&payload]);
        let mut inflater = Inflater::new(10_000);
        assert_eq!(inflater.push(&frames[0]).unwrap(), Some(payload.as_slice()));
        let mut inflater = Inflater::new(9_999);
        assert_eq!(inflater.push(&frames[0]), Err(InflateError::MessageTooLarge { limit: 9_999 }));
    }

    // docs/connection.md#what-a-new-connection-resets /
    // docs/edge-cases.md#zlib-stream-framing-and-state: every new connection
    // starts a new stream with a fresh context.
    #[test]
    fn reset_then_a_new_stream_decodes_like_a_new_inflater() {
        let first = zlib_stream(&[b"{\"op\":10}", b"{\"op\":11}"]);
        let second = zlib_stream(&[b"{\"op\":10,\"d\":1}", b"{\"op\":11}"]);
        let mut inflater = Inflater::new(1 << 20);
        let refs: Vec<&[u8]> = first.iter().map(Vec::as_slice).collect();
        assert_eq!(push_all(&mut inflater, &refs).len(), 2);
        // Leave a payload half-pushed, then reconnect.
        assert_eq!(inflater.push(&first[0][..3]).unwrap(), None);
        inflater.reset();
        let refs: Vec<&[u8]> = second.iter().map(Vec::as_slice).collect();
        assert_eq!(push_all(&mut inflater, &refs), vec![b"{\"op\":10,\"d\":1}".to_vec(), b"{\"op\":11}".to_vec()]);
    }

    // docs/edge-cases.md#zlib-stream-framing-and-state: reusing the inflater
    // across connections without a reset is a "data error".
    #[test]
    fn new_stream_without_reset_is_an_error() {
        let first = zlib_stream(&[b"{\"op\":10}"]);
        let second = zlib_stream(&[b"{\"op\":10}"]);
        let mut inflater = Inflater::new(1 << 20);
        assert!(inflater.push(&first[0]).unwrap().is_some());
        assert!(matches!(inflater.push(&second[0]), Err(InflateError::Corrupt { .. })));
    }

    #[test]
    fn buffer_over_four_mib_is_freed_before_the_next_payload() {
        let big = vec![b'a'; 5 << 20];
        let medium = vec![b'b'; 5000];
        let frames = zlib_stream(&[&big, &medium]);
        let mut inflater = Inflater::new(64 << 20);
        assert_eq!(inflater.push(&frames[0]).unwrap().map(<[u8]>::len), Some(5 << 20));
        assert!(inflater.out.capacity() >= 5 << 20);
        assert_eq!(inflater.push(&frames[1]).unwrap(), Some(medium.as_slice()));
        assert!(inflater.out.capacity() <= 2 * medium.len());
    }

    // An idle shard only receives heartbeat ACKs: it must hold no output buffer.
    #[test]
    fn release_frees_the_buffer_between_payloads_only() {
        let medium = vec![b'b'; 50_000];
        let ack = br#"{"t":null,"s":null,"op":11,"d":null}"#;
        let frames = zlib_stream(&[&medium, ack, ack]);
        let mut inflater = Inflater::new(64 << 20);
        assert_eq!(inflater.push(&frames[0]).unwrap(), Some(medium.as_slice()));
        assert_eq!(inflater.push(&frames[1]).unwrap(), Some(&ack[..]));
        assert!(inflater.buffer_capacity() >= medium.len(), "warm");
        inflater.release();
        assert_eq!(inflater.buffer_capacity(), 0);
        // Half a payload in: release keeps it.
        assert_eq!(inflater.push(&frames[2][..5]).unwrap(), None);
        inflater.release();
        assert_eq!(inflater.push(&frames[2][5..]).unwrap(), Some(&ack[..]));
        inflater.release();
        assert_eq!(inflater.buffer_capacity(), 0);
    }

    #[test]
    fn steady_stream_of_ordinary_payloads_keeps_its_buffer() {
        let payload = vec![b'a'; 20_000];
        let frames = zlib_stream(&[&payload, &payload[..1000], &payload, &payload[..100]]);
        let mut inflater = Inflater::new(64 << 20);
        inflater.push(&frames[0]).unwrap();
        let capacity = inflater.out.capacity();
        for frame in &frames[1..] {
            inflater.push(frame).unwrap();
            assert_eq!(inflater.out.capacity(), capacity);
        }
    }

    // The warm buffer is initialized once: the next payloads overwrite it,
    // nothing zero-fills it again (no memset per payload in steady state).
    #[test]
    fn a_warm_buffer_is_overwritten_not_zeroed_again() {
        let first = vec![b'a'; 20_000];
        let second = vec![b'b'; 1000];
        let frames = zlib_stream(&[&first, &second]);
        let mut inflater = Inflater::new(64 << 20);
        inflater.push(&frames[0]).unwrap();
        let initialized = inflater.out.len();
        assert_eq!(inflater.push(&frames[1]).unwrap(), Some(second.as_slice()));
        assert_eq!(inflater.out.len(), initialized);
        assert!(
            inflater.out[1000..20_000].iter().all(|&byte| byte == b'a'),
            "the first payload's bytes are still there"
        );
    }

    // An owned payload never keeps a buffer over twice its size, even when
    // the stream's ratio so far predicts far too much for it.
    #[test]
    fn owned_payloads_stay_near_their_size_when_the_ratio_misleads() {
        let repetitive: Vec<Vec<u8>> =
            (0..40).map(|n| format!(r#"{{"op":0,"d":"{}"}}"#, "a".repeat(20_000 + n)).into_bytes()).collect();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let noisy: Vec<u8> = (0..20_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/"[(state % 64) as usize]
            })
            .collect();
        let mut all: Vec<&[u8]> = repetitive.iter().map(Vec::as_slice).collect();
        all.push(&noisy);
        let frames = zlib_stream(&all);
        let mut inflater = Inflater::new(1 << 20);
        for (frame, payload) in frames.iter().zip(&all) {
            let out = inflater.push_owned(frame).unwrap().unwrap();
            assert_eq!(out, *payload);
            assert!(out.capacity() == out.len(), "{} for {}", out.capacity(), out.len());
        }
    }
}
