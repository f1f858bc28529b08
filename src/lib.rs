//! A Discord gateway connection that never loses an event.
//!
//! This crate owns one thing: the WebSocket connection to Discord's gateway.
//! It is built in layers that can each be tested alone:
//!
//! - [`protocol`]: a sans-IO, deterministic state machine (no clock, no socket)
//!   that makes every protocol decision: heartbeats, zombie detection, identify
//!   vs resume, close-code handling, backoff, send rate limits.
//! - [`codec`]: zlib-stream inflation and an envelope scanner that finds `op`,
//!   `s`, `t` and the raw bytes of `d` without building a JSON tree.
//! - [`Dispatch`]: the raw opcode-0 payload handed to the application.
//!
//! See the README for the architecture and `gateway-protocol` section references.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod commands;
mod dispatch;
mod error;
mod group;
pub mod identify;
mod intents;
mod observe;
pub mod protocol;
mod queue;
mod session;
mod shard;
mod shard_id;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;

pub use dispatch::{DeserializeError, Dispatch};
pub use error::ShardError;
pub use group::{
    shard_for_guild, ControlError, GroupController, GroupError, ShardGroup, ShardGroupBuilder, ShardSession,
};
pub use identify::{IdentifyQueue, LocalIdentifyQueue};
pub use intents::Intents;
pub use observe::StatusWatcher;
pub use protocol::{CloseMode, Compression, Config};
pub use protocol::{Latency, ShardStats};
pub use session::Session;
pub use shard::{Shard, ShardBuilder, ShardDriver, ShardHandle};
pub use shard_id::ShardId;
