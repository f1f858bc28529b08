//! Codec: turns WebSocket messages into gateway payloads.
//!
//! - [`Inflater`]: one zlib-stream per connection (gateway-protocol §8.1).
//! - [`Envelope::scan`]: finds `op`, `s`, `t` and the byte span of `d` in a
//!   payload without building a JSON tree (§2).

mod envelope;
#[cfg(feature = "zlib")]
mod inflate;

pub use envelope::{Envelope, ScanError, StrSpan};
#[cfg(feature = "zlib")]
pub use inflate::{InflateError, Inflater};

/// Default cap on the inflated size of one gateway payload: 64 MiB.
///
/// READY and GUILD_CREATE for very large bots have been seen at 17 MB
/// (gateway-protocol §8.5); 64 MiB leaves room while stopping a
/// decompression bomb long before it can exhaust memory.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
