//! Internals exposed for the crate's fuzz targets, benches and tests.
//!
//! **Not part of the public API**: nothing here follows semver, and any item
//! may change or vanish in any release. It exists so the pieces that decide
//! on untrusted input (the envelope scanner, the decompressors, the WebSocket
//! handshake's response parse, the identify schedule) can be fuzzed and
//! measured alone. Enabled by the `fuzzing` cargo feature.
//!
//! The fuzz targets and how to run them are described in the repository's
//! `fuzz/README.md`; the benches that use this module in `benches/README.md`.

pub use crate::codec::envelope::{Envelope, ScanError, StrSpan};
#[cfg(feature = "zlib")]
pub use crate::codec::inflate::{InflateError, Inflater};
#[cfg(feature = "zstd")]
pub use crate::codec::zstd::{ZstdDecoder, ZstdError, MAX_WINDOW_LOG};
pub use crate::identify::schedule::{IdentifySchedule, Reservation, Turn};
pub use crate::transport::handshake::{accept_value, check_response, parse_head, ParsedHead};

/// The Redis key holding the lease of identify bucket `bucket`.
#[cfg(feature = "redis")]
pub fn redis_bucket_key<C>(queue: &crate::identify::RedisIdentifyQueue<C>, bucket: u32) -> String {
    queue.bucket_key(bucket)
}

/// The Redis key holding the session starts left.
#[cfg(feature = "redis")]
pub fn redis_budget_key<C>(queue: &crate::identify::RedisIdentifyQueue<C>) -> String {
    queue.budget_key()
}

/// The Redis key recording that a budget window was seeded.
#[cfg(feature = "redis")]
pub fn redis_budget_marker_key<C>(queue: &crate::identify::RedisIdentifyQueue<C>) -> String {
    queue.budget_marker_key()
}
