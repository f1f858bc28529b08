//! zstd-stream decoder (docs/compression.md, "zstd-stream").
//!
//! With `compress=zstd-stream` the gateway opens one zstd frame per
//! connection that never ends: it compresses each payload into it and
//! flushes, so every binary WebSocket message holds whole zstd blocks
//! decoding to exactly one payload, given every message before it.
//!
//! - one instance per shard, [`ZstdDecoder::reset`] on every new connection;
//! - [`ZstdDecoder::push_owned`] takes one binary message and returns its
//!   payload as an exact-size copy, decoded in a working buffer kept warm
//!   across payloads like the zlib inflater's (`codec/sizing.rs`);
//! - a message must end where the gateway flushed, between two zstd blocks.
//!   One that ends inside a block or frame header ([`ZstdError::Truncated`])
//!   is an error rather than the start of a payload continued in the next
//!   message: a cut that happens to fall between two blocks of one payload
//!   cannot be told from a flush, so putting split payloads back together
//!   would work only sometimes;
//! - corrupt data, a truncated message, a payload decompressing past
//!   `max_message_size`, or a frame asking for a window over
//!   [`MAX_WINDOW_LOG`] is an `Err` and leaves the decoder unusable until
//!   `reset` (the core reconnects and resumes, so nothing is lost).
//!
//! The decoder is libzstd through `zstd-safe`. With Discord's 2^18 window
//! its context holds about 751 KB (the window, a block-sized input buffer
//! and its tables) for as long as the connection lives; `benches/README.md`
//! ("zstd-stream decoders", "Heap per connected shard") has the figures and
//! the comparison with zlib.

use zstd_safe::{DCtx, DParameter, InBuffer, OutBuffer, ResetDirective};

use super::sizing::Sizing;

/// The largest window a frame may ask for: 2^23 bytes (8 MiB).
///
/// Discord's window is 2^18 (256 KiB). libzstd accepts up to 2^27 by
/// default, which would let a hostile gateway make every shard allocate a
/// 128 MiB window; anything over this cap fails as [`ZstdError::Corrupt`].
pub const MAX_WINDOW_LOG: u32 = 23;

/// What `ZSTD_decompressStream` asks for next when it stands between two
/// blocks: the next block's 3-byte header (RFC 8878 §3.1.1.2). It asks for
/// 0 at the end of a frame, and for other amounts inside a block or a frame
/// header.
///
/// Two cuts also leave it asking for exactly 3 bytes: one byte into the
/// 4-byte checksum that ends a frame, and 3 bytes short of the end of a
/// skippable frame. Discord's frame never ends and is never skippable, and
/// both misreads still fail on the next message (the checksum or the frame
/// magic is checked there), so the connection is resumed then and nothing
/// is lost; the payload passed on early was decoded in full.
const BLOCK_HEADER_SIZE: usize = 3;

/// A context grown past this (a frame asked for a window far over
/// Discord's 2^18) is dropped on `reset` rather than kept for the next
/// connection; with Discord's window it holds about 751 KB.
const KEEP_CONTEXT_BYTES: usize = 1 << 20;

/// Why a zstd-stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZstdError {
    /// The bytes are not a valid continuation of the zstd stream (or the
    /// frame asks for a window over [`MAX_WINDOW_LOG`]).
    #[error("corrupt zstd stream at compressed byte {at}: {reason}")]
    Corrupt {
        /// Offset in the connection's compressed stream where decoding failed.
        at: u64,
        /// libzstd's description of the problem.
        reason: &'static str,
    },
    /// A message ended inside a zstd block or frame header, not where the
    /// gateway flushes (each message must hold one whole payload).
    #[error("a zstd-stream message ended inside a block (at compressed byte {at}), not at a flush")]
    Truncated {
        /// Offset in the connection's compressed stream where the message ended.
        at: u64,
    },
    /// One payload decompressed to more than the configured cap (a
    /// decompression bomb, or a cap set too low).
    #[error("a payload decompressed past the {limit}-byte cap")]
    MessageTooLarge {
        /// The configured cap, `max_message_size`.
        limit: usize,
    },
    /// An earlier error left the stream unusable: call `reset` (reconnect) first.
    #[error("the zstd stream failed earlier; reset the decoder on the new connection")]
    Poisoned,
    /// libzstd could not allocate its decompression context.
    #[error("libzstd could not allocate a decompression context")]
    OutOfMemory,
}

/// The zstd-stream decompression context of one connection.
pub struct ZstdDecoder {
    /// libzstd's context; `None` until the first message (and after a failed
    /// allocation), so a decoder that never sees zstd costs nothing.
    context: Option<DCtx<'static>>,
    /// The working buffer payloads are decoded into.
    out: Vec<u8>,
    /// Set by any error; cleared by `reset`.
    poisoned: bool,
    /// Cap on one decoded payload.
    max_message_size: usize,
    /// Sizes each payload's buffer from the stream's ratio.
    sizing: Sizing,
    /// Compressed bytes of the stream consumed so far (for error offsets).
    total_in: u64,
}

impl std::fmt::Debug for ZstdDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdDecoder")
            .field("context", &self.context.as_ref().map(|_| "<zstd DCtx>"))
            .field("out", &self.out.len())
            .field("poisoned", &self.poisoned)
            .field("max_message_size", &self.max_message_size)
            .field("total_in", &self.total_in)
            .finish_non_exhaustive()
    }
}

impl ZstdDecoder {
    /// A fresh decoder whose payloads may decompress to at most `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        ZstdDecoder {
            context: None,
            out: Vec::new(),
            poisoned: false,
            max_message_size,
            sizing: Sizing::new(max_message_size),
            total_in: 0,
        }
    }

    /// Forgets all stream state: call on every new connection.
    ///
    /// Afterwards the decoder behaves exactly like a new one. The context
    /// (and its window buffer) is kept for the new stream unless a frame
    /// made it grow past what Discord's window needs.
    pub fn reset(&mut self) {
        if let Some(context) = self.context.as_mut() {
            // Resetting the session only cannot fail; a context that somehow
            // refuses is dropped and a new one is made on the next message.
            if context.sizeof() > KEEP_CONTEXT_BYTES || context.reset(ResetDirective::SessionOnly).is_err() {
                self.context = None;
            }
        }
        self.out = Vec::new();
        self.poisoned = false;
        self.total_in = 0;
    }

    /// Frees the working buffer (the context and its window stay). The core
    /// calls this when no more messages wait on the socket (for a buffer
    /// over 64 KiB) and a second after the last payload.
    pub fn release(&mut self) {
        self.out = Vec::new();
    }

    /// Bytes held by the working buffer (libzstd's context not included).
    pub fn buffer_capacity(&self) -> usize {
        self.out.capacity()
    }

    #[cfg(any(test, feature = "fuzzing"))]
    /// The configured cap on one decoded payload.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Feeds one binary WebSocket message; returns its payload.
    ///
    /// `Ok(None)` for a message that decodes to nothing (an empty one, or
    /// one holding only the frame header). After an error every call returns
    /// [`ZstdError::Poisoned`] until [`ZstdDecoder::reset`].
    pub fn push_owned(&mut self, message: &[u8]) -> Result<Option<Vec<u8>>, ZstdError> {
        if self.poisoned {
            return Err(ZstdError::Poisoned);
        }
        if message.is_empty() {
            return Ok(None);
        }
        match self.decode(message) {
            Ok(()) if self.out.is_empty() => Ok(None),
            Ok(()) => {
                // An exact copy; the working buffer stays warm for the next
                // payload (codec/sizing.rs says why).
                let payload = self.out.as_slice().to_vec();
                self.sizing.learn(payload.len(), message.len());
                Sizing::recycle(&mut self.out);
                Ok(Some(payload))
            }
            Err(error) => {
                self.poisoned = true;
                // Nothing more comes out of this stream: free what it decoded
                // (up to the cap) now, not on the next connection.
                self.out = Vec::new();
                tracing::debug!(%error, "zstd-stream decoding failed");
                Err(error)
            }
        }
    }

    /// Decodes all of `message` into `out`, which must end between two blocks.
    fn decode(&mut self, message: &[u8]) -> Result<(), ZstdError> {
        let context = match self.context.as_mut() {
            Some(context) => context,
            None => {
                let mut context = DCtx::try_create().ok_or(ZstdError::OutOfMemory)?;
                context
                    .set_parameter(DParameter::WindowLogMax(MAX_WINDOW_LOG))
                    .map_err(|code| ZstdError::Corrupt { at: 0, reason: zstd_safe::get_error_name(code) })?;
                self.context.insert(context)
            }
        };
        self.sizing.plan(&self.out, message.len());
        let mut input = InBuffer::around(message);
        loop {
            if self.out.len() == self.out.capacity() {
                self.sizing.grow(&mut self.out, input.pos(), message.len().saturating_sub(input.pos()));
            }
            let position = self.out.len();
            let consumed_before = input.pos();
            let mut output = OutBuffer::around_pos(&mut self.out, position);
            let result = context.decompress_stream(&mut output, &mut input);
            let at = self.total_in.saturating_add(input.pos() as u64);
            let hint = result.map_err(|code| ZstdError::Corrupt { at, reason: zstd_safe::get_error_name(code) })?;
            if self.out.len() > self.max_message_size {
                return Err(ZstdError::MessageTooLarge { limit: self.max_message_size });
            }
            let out_full = self.out.len() == self.out.capacity();
            // Hint 0: a frame ended and everything is flushed, even when the
            // output filled the buffer exactly (asking again would start
            // reading a next frame from no input).
            if input.pos() == message.len() && (!out_full || hint == 0) {
                self.total_in = at;
                if hint == 0 || hint == BLOCK_HEADER_SIZE {
                    return Ok(());
                }
                return Err(ZstdError::Truncated { at });
            }
            if self.out.len() == position && !out_full && input.pos() == consumed_before {
                return Err(ZstdError::Corrupt { at, reason: "the decoder made no progress" });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush;
    use zstd_safe::{CCtx, CParameter};

    /// Compresses `payloads` as one never-ending zstd frame with a flush
    /// after each, as Discord does; returns one message per payload.
    fn zstd_stream(payloads: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut cctx = CCtx::create();
        cctx.set_parameter(CParameter::WindowLog(18)).unwrap();
        payloads
            .iter()
            .map(|payload| {
                let mut out: Vec<u8> = Vec::with_capacity(payload.len() + 64);
                let mut input = InBuffer::around(payload);
                loop {
                    if out.capacity() - out.len() < 64 {
                        out.reserve(out.capacity().max(64));
                    }
                    let len = out.len();
                    let mut output = OutBuffer::around_pos(&mut out, len);
                    let left = cctx.compress_stream2(&mut output, &mut input, ZSTD_e_flush).unwrap();
                    if left == 0 && input.pos() == payload.len() {
                        break;
                    }
                }
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
        for n in 0..20_000_u64 {
            big.extend_from_slice(
                format!(r#"{{"id":"{}","name":"member {}"}},"#, 80_000_000_000_u64 + n * 7919, n).as_bytes(),
            );
        }
        big.extend_from_slice(br#"{}]}}"#);
        list.push(big);
        list.push(br#"{"t":"MESSAGE_CREATE","s":3,"op":0,"d":{"content":"hi"}}"#.to_vec());
        list
    }

    fn frames() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let payloads = payloads();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        (zstd_stream(&refs), payloads)
    }

    #[test]
    fn each_message_decodes_to_its_payload() {
        let (frames, payloads) = frames();
        assert_eq!(&frames[0][..4], &[0x28, 0xb5, 0x2f, 0xfd], "one frame, its header in the first message");
        let mut decoder = ZstdDecoder::new(1 << 20);
        for (frame, payload) in frames.iter().zip(&payloads) {
            assert!(decoder.push_owned(frame).unwrap().as_deref() == Some(payload.as_slice()));
        }
    }

    // A message cut short (inside the frame header or a block) is an error,
    // never a partial payload: the core reconnects and resumes.
    #[test]
    fn a_message_cut_inside_a_block_is_truncated() {
        let (frames, payloads) = frames();
        for cut in [1, 2, 3, 4, 5, 9, 100] {
            let mut decoder = ZstdDecoder::new(1 << 20);
            let head = &frames[0][..cut.min(frames[0].len() - 1)];
            assert!(matches!(decoder.push_owned(head), Err(ZstdError::Truncated { .. })), "cut {cut}");
            assert_eq!(decoder.push_owned(&frames[0]), Err(ZstdError::Poisoned));
        }
        for (index, payload) in payloads.iter().enumerate().skip(1) {
            let mut decoder = ZstdDecoder::new(1 << 20);
            for frame in &frames[..index] {
                assert!(decoder.push_owned(frame).unwrap().is_some());
            }
            let frame = &frames[index];
            for keep in [1, frame.len() / 2, frame.len() - 1] {
                let mut copy = ZstdDecoder::new(1 << 20);
                for frame in &frames[..index] {
                    copy.push_owned(frame).unwrap();
                }
                let result = copy.push_owned(&frame[..keep]);
                assert!(matches!(result, Err(ZstdError::Truncated { .. })), "payload {index}, {keep} bytes");
            }
            assert!(decoder.push_owned(frame).unwrap().as_deref() == Some(payload.as_slice()));
            assert_eq!(decoder.push_owned(&[]), Ok(None));
        }
    }

    #[test]
    fn corrupt_bytes_are_an_error_then_poisoned_until_reset() {
        let (frames, payloads) = frames();
        let mut garbage = frames[0].clone();
        garbage[0] = 0x12; // not a zstd magic number
        let mut decoder = ZstdDecoder::new(1 << 20);
        assert!(matches!(decoder.push_owned(&garbage), Err(ZstdError::Corrupt { at: 0, .. })));
        assert_eq!(decoder.push_owned(&frames[0]), Err(ZstdError::Poisoned));
        decoder.reset();
        assert_eq!(decoder.push_owned(&frames[0]).unwrap().as_deref(), Some(payloads[0].as_slice()));
    }

    #[test]
    fn corrupt_bytes_anywhere_never_panic() {
        let (frames, _) = frames();
        let stream: Vec<u8> = frames.concat();
        let mut decoder = ZstdDecoder::new(1 << 20);
        for position in (0..stream.len()).step_by(251) {
            for flip in [0x01_u8, 0x80, 0xff] {
                let mut bad = stream.clone();
                bad[position] ^= flip;
                decoder.reset();
                for piece in &frames_of(&bad, &frames) {
                    match decoder.push_owned(piece) {
                        Ok(Some(out)) => assert!(out.len() <= 1 << 20),
                        Ok(None) => {}
                        Err(_) => break,
                    }
                }
            }
        }
    }

    /// `stream` cut where `frames` are cut.
    fn frames_of(stream: &[u8], frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut rest = stream;
        frames
            .iter()
            .map(|frame| {
                let (piece, tail) = rest.split_at(frame.len());
                rest = tail;
                piece.to_vec()
            })
            .collect()
    }

    #[test]
    fn decompression_bomb_over_the_cap_is_message_too_large() {
        let bomb = vec![b' '; 10 << 20];
        let frames = zstd_stream(&[&bomb]);
        assert!(frames[0].len() < 64 << 10);
        let mut decoder = ZstdDecoder::new(1 << 20);
        assert_eq!(decoder.push_owned(&frames[0]), Err(ZstdError::MessageTooLarge { limit: 1 << 20 }));
        assert_eq!(decoder.buffer_capacity(), 0, "freed at once");
        assert_eq!(decoder.push_owned(&frames[0]), Err(ZstdError::Poisoned));
    }

    #[test]
    fn payload_exactly_at_the_cap_is_accepted() {
        let payload = vec![b'x'; 10_000];
        let frames = zstd_stream(&[&payload]);
        let mut decoder = ZstdDecoder::new(10_000);
        assert!(decoder.push_owned(&frames[0]).unwrap() == Some(payload));
        let mut decoder = ZstdDecoder::new(9_999);
        assert_eq!(decoder.push_owned(&frames[0]), Err(ZstdError::MessageTooLarge { limit: 9_999 }));
    }

    // A frame header asking for a 2^24-byte window is refused before the
    // window is allocated.
    #[test]
    fn a_window_over_the_cap_is_refused() {
        let mut cctx = CCtx::create();
        cctx.set_parameter(CParameter::WindowLog(MAX_WINDOW_LOG + 1)).unwrap();
        let payload = vec![b'y'; 1000];
        let mut out: Vec<u8> = Vec::with_capacity(4096);
        let mut input = InBuffer::around(&payload);
        let mut output = OutBuffer::around(&mut out);
        cctx.compress_stream2(&mut output, &mut input, ZSTD_e_flush).unwrap();
        let mut decoder = ZstdDecoder::new(1 << 20);
        assert!(matches!(decoder.push_owned(&out), Err(ZstdError::Corrupt { .. })), "{:?}", decoder.push_owned(&out));
    }

    // A message that ends its frame (hint 0) with the output filling the
    // buffer exactly is whole, not truncated (this once went wrong for sizes
    // on the buffer's growth steps).
    #[test]
    fn a_frame_ending_with_the_buffer_exactly_full_is_whole() {
        let mut cctx = CCtx::create();
        for len in 200..2000 {
            let payload = vec![b'a'; len];
            let mut out: Vec<u8> = Vec::with_capacity(4096);
            let mut input = InBuffer::around(&payload);
            let left = cctx
                .compress_stream2(
                    &mut OutBuffer::around(&mut out),
                    &mut input,
                    zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_end,
                )
                .unwrap();
            assert_eq!(left, 0);
            let mut decoder = ZstdDecoder::new(1 << 20);
            assert!(decoder.push_owned(&out) == Ok(Some(payload)), "{len} bytes in one ended frame");
        }
    }

    // A frame that grew the context past Discord's needs does not keep it
    // for the next connection.
    #[test]
    fn a_context_grown_by_a_wide_window_is_dropped_on_reset() {
        let mut cctx = CCtx::create();
        cctx.set_parameter(CParameter::WindowLog(MAX_WINDOW_LOG)).unwrap();
        let payload = vec![b'w'; 5000];
        let mut out: Vec<u8> = Vec::with_capacity(4096);
        let mut input = InBuffer::around(&payload);
        cctx.compress_stream2(&mut OutBuffer::around(&mut out), &mut input, ZSTD_e_flush).unwrap();
        let mut decoder = ZstdDecoder::new(1 << 20);
        assert!(decoder.push_owned(&out) == Ok(Some(payload)));
        assert!(decoder.context.as_ref().unwrap().sizeof() > KEEP_CONTEXT_BYTES);
        decoder.reset();
        assert!(decoder.context.is_none());
        let (frames, payloads) = frames();
        assert!(decoder.push_owned(&frames[0]).unwrap().as_deref() == Some(payloads[0].as_slice()));
        let size = decoder.context.as_ref().unwrap().sizeof();
        assert!(size < KEEP_CONTEXT_BYTES, "{size}");
        decoder.reset();
        assert!(decoder.context.is_some(), "an ordinary context is kept");
    }

    // Every new connection starts a new frame: a reset decoder decodes it,
    // even after a payload was left half-pushed.
    #[test]
    fn reset_then_a_new_stream_decodes_like_a_new_decoder() {
        let (frames, payloads) = frames();
        let mut decoder = ZstdDecoder::new(1 << 20);
        assert!(decoder.push_owned(&frames[0]).unwrap().is_some());
        assert!(decoder.push_owned(&frames[1][..2]).is_err());
        decoder.reset();
        for (frame, payload) in frames.iter().zip(&payloads) {
            assert!(decoder.push_owned(frame).unwrap().as_deref() == Some(payload.as_slice()));
        }
    }

    // Reusing the decoder across connections without a reset: the new
    // frame's header is not a block, so decoding fails.
    #[test]
    fn new_stream_without_reset_is_an_error() {
        let (frames, _) = frames();
        let mut decoder = ZstdDecoder::new(1 << 20);
        assert!(decoder.push_owned(&frames[0]).unwrap().is_some());
        assert!(matches!(decoder.push_owned(&frames[0]), Err(ZstdError::Corrupt { .. })));
    }

    #[test]
    fn the_working_buffer_stays_warm_until_released() {
        let (frames, payloads) = frames();
        let mut decoder = ZstdDecoder::new(1 << 20);
        for frame in &frames[..4] {
            decoder.push_owned(frame).unwrap();
        }
        assert!(decoder.buffer_capacity() >= payloads[3].len(), "kept after the GUILD_CREATE");
        decoder.release();
        assert_eq!(decoder.buffer_capacity(), 0);
    }

    #[test]
    fn owned_payloads_stay_near_their_size() {
        let (frames, payloads) = frames();
        let mut decoder = ZstdDecoder::new(1 << 20);
        for (frame, payload) in frames.iter().zip(&payloads) {
            let out = decoder.push_owned(frame).unwrap().unwrap();
            assert!(&out == payload);
            assert_eq!(out.capacity(), out.len());
        }
    }
}
