//! Errors a [`Shard`](crate::Shard) stream yields.

use crate::protocol::{ConfigError, FatalError};

/// Why a shard stopped. Recoverable trouble (dropped sockets, corrupt
/// frames, invalid sessions) is handled inside and never reaches the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// The gateway closed with a code reconnecting cannot fix; the message says what to do.
    #[error(transparent)]
    Fatal(#[from] FatalError),
    /// The configuration was rejected before connecting.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl ShardError {
    /// The gateway close code behind a fatal error.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            ShardError::Fatal(fatal) => Some(fatal.code()),
            ShardError::Config(_) => None,
        }
    }
}
