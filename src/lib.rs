//! A Discord gateway connection that never loses an event.
//!
//! This crate owns one thing: the WebSocket connection to Discord's gateway.
//! It is built in layers that can each be tested alone:
//!
//! - [`protocol`]: a sans-IO, deterministic state machine (no clock, no socket)
//!   that makes every protocol decision: heartbeats, zombie detection, identify
//!   vs resume, close-code handling, backoff, send rate limits.
//! - the codec (internal): zlib-stream and zstd-stream decompression and an
//!   envelope scanner that finds `op`, `s`, `t` and the raw bytes of `d`
//!   without building a JSON tree.
//! - [`Dispatch`]: the raw opcode-0 payload handed to the application.
//!
//! See the README for the architecture, and `docs/README.md` for the protocol notes
//! that comments cite as `docs/<file>.md#<section>`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod codec;
pub mod commands;
mod dispatch;
mod error;
pub mod event;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod gateway_bot;
mod group;
pub mod identify;
mod intents;
mod observe;
pub mod protocol;
mod queue;
mod session;
mod shard;
mod shard_id;
pub mod store;
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

// Every name the public signatures of the types above use, reachable from
// the crate root.
pub use commands::{
    Activity, ActivityType, OnlineStatus, Presence, RequestChannelInfo, RequestGuildMembers, RequestSoundboardSounds,
    VoiceStateUpdate,
};
pub use gateway_bot::GatewayBot;
pub use identify::{IdentifyError, IdentifyLimits, IdentifyPermit, OnBudgetExhausted, SessionStartLimit};
pub use protocol::{
    Command, CommandError, ConfigError, DisconnectReason, FatalError, IdentifyProperties, ReconnectPolicy, ResumeHosts,
    Status, UrlError,
};
pub use store::SessionStore;
pub use transport::{AsyncStream, BoxedStream, ConnectFuture, Connector, Target};
