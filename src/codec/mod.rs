//! Codec: turns WebSocket messages into gateway payloads.
//!
//! - [`Inflater`]: one zlib-stream per connection (`docs/compression.md#zlib-stream`).
//! - [`ZstdDecoder`]: one zstd-stream per connection (docs/compression.md).
//! - [`Envelope::scan`]: finds `op`, `s`, `t` and the byte span of `d` in a
//!   payload without building a JSON tree (`docs/connection.md#payload-envelope`).

pub(crate) mod envelope;
#[cfg(feature = "zlib")]
pub(crate) mod inflate;
#[cfg(any(feature = "zlib", feature = "zstd"))]
mod sizing;
#[cfg(any(feature = "zlib", feature = "zstd"))]
pub(crate) use sizing::{is_small, keeps_warm};
#[cfg(feature = "zstd")]
pub(crate) mod zstd;

pub(crate) use envelope::{Envelope, StrSpan};
#[cfg(feature = "zlib")]
pub(crate) use inflate::{InflateError, Inflater};
#[cfg(feature = "zstd")]
pub(crate) use zstd::{ZstdDecoder, ZstdError};

/// Default cap on the inflated size of one gateway payload: 64 MiB.
///
/// READY and GUILD_CREATE for very large bots have been seen at 17 MB
/// (`docs/connection.md#message-size`); 64 MiB leaves room while stopping a
/// decompression bomb long before it can exhaust memory.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

#[cfg(any(feature = "zlib", feature = "zstd"))]
/// The transport decompressor of one shard, built on its first compressed
/// connection and reset on every later one.
#[derive(Debug)]
pub(crate) enum Decompressor {
    /// zlib-stream.
    #[cfg(feature = "zlib")]
    Zlib(Inflater),
    /// zstd-stream.
    #[cfg(feature = "zstd")]
    Zstd(ZstdDecoder),
}

#[cfg(any(feature = "zlib", feature = "zstd"))]
/// Why a transport decompressor failed (the stream is unusable until reset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecompressError {
    /// zlib-stream.
    #[cfg(feature = "zlib")]
    #[error(transparent)]
    Zlib(#[from] InflateError),
    /// zstd-stream.
    #[cfg(feature = "zstd")]
    #[error(transparent)]
    Zstd(#[from] ZstdError),
}

#[cfg(any(feature = "zlib", feature = "zstd"))]
impl Decompressor {
    /// Forgets all stream state: a new connection starts.
    pub(crate) fn reset(&mut self) {
        match self {
            #[cfg(feature = "zlib")]
            Decompressor::Zlib(inflater) => inflater.reset(),
            #[cfg(feature = "zstd")]
            Decompressor::Zstd(decoder) => decoder.reset(),
        }
    }

    /// Frees the working buffer (between payloads; the context stays).
    pub(crate) fn release(&mut self) {
        match self {
            #[cfg(feature = "zlib")]
            Decompressor::Zlib(inflater) => inflater.release(),
            #[cfg(feature = "zstd")]
            Decompressor::Zstd(decoder) => decoder.release(),
        }
    }

    /// Bytes held by the working buffer.
    pub(crate) fn buffer_capacity(&self) -> usize {
        match self {
            #[cfg(feature = "zlib")]
            Decompressor::Zlib(inflater) => inflater.buffer_capacity(),
            #[cfg(feature = "zstd")]
            Decompressor::Zstd(decoder) => decoder.buffer_capacity(),
        }
    }

    /// Feeds one binary message; returns the payload it completes, in a
    /// buffer of its own.
    pub(crate) fn push_owned(&mut self, message: &[u8]) -> Result<Option<Vec<u8>>, DecompressError> {
        match self {
            #[cfg(feature = "zlib")]
            Decompressor::Zlib(inflater) => Ok(inflater.push_owned(message)?),
            #[cfg(feature = "zstd")]
            Decompressor::Zstd(decoder) => Ok(decoder.push_owned(message)?),
        }
    }
}

#[cfg(any(feature = "zlib", feature = "zstd"))]
impl DecompressError {
    /// Whether a payload decompressed past `max_message_size` (rather than
    /// the stream being corrupt).
    pub(crate) fn is_too_large(&self) -> bool {
        match self {
            #[cfg(feature = "zlib")]
            DecompressError::Zlib(error) => matches!(error, InflateError::MessageTooLarge { .. }),
            #[cfg(feature = "zstd")]
            DecompressError::Zstd(error) => matches!(error, ZstdError::MessageTooLarge { .. }),
        }
    }
}
