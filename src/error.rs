//! Errors a [`Shard`](crate::Shard) stream yields.

use crate::identify::IdentifyError;
use crate::protocol::{ConfigError, FatalError};
use crate::transport::TlsError;

/// Why a shard stopped. Recoverable trouble (dropped sockets, corrupt
/// frames, invalid sessions) is handled inside and never reaches the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// The gateway closed with a code reconnecting cannot fix, or the shard
    /// stopped a loop that would only spend Identifies (a payload it can
    /// never accept, too many Identifies in a day); the message says what to do.
    #[error(transparent)]
    Fatal(#[from] FatalError),
    /// The configuration was rejected before connecting.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A shard id is not below the shard total (Discord closes with 4010,
    /// `docs/sharding.md#identify-shard-field`).
    #[error("shard {id} is out of range for a total of {total} shards")]
    ShardOutOfRange {
        /// The shard id asked for.
        id: u32,
        /// The total shard count.
        total: u32,
    },
    /// The identify queue refused this shard (e.g. the daily session-start
    /// budget is exhausted, `docs/rate-limits.md#daily-session-start-budget`);
    /// the shard has stopped.
    #[error(transparent)]
    Identify(#[from] IdentifyError),
    /// TLS could not be set up for a `wss://` gateway URL: no `rustls`
    /// feature, no root certificates, or an unusable client configuration (see
    /// [`TlsError`](crate::transport::TlsError)).
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl ShardError {
    /// The gateway close code behind a fatal error (`None` when the shard
    /// stopped on its own: see [`FatalError::close_code`]).
    pub fn close_code(&self) -> Option<u16> {
        match self {
            ShardError::Fatal(fatal) => fatal.close_code(),
            _ => None,
        }
    }
}
