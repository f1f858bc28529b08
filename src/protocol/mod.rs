//! The sans-IO gateway protocol core (gateway-protocol §4–§7).
//!
//! [`Machine`] is fed socket events and the current [`Instant`](std::time::Instant)
//! and is polled for actions, frames to send, events and its next deadline.
//! It performs no I/O and reads no clock, so every rule is unit-tested with a
//! fake clock. The shape follows quinn-proto's `Connection`.

mod backoff;
mod close_code;
mod command;
mod compression;
mod config;
mod event;
mod heartbeat;
mod machine;
mod opcode;
mod payload;
mod ratelimit;
mod rng;
mod url;
mod validate;

pub use backoff::ReconnectPolicy;
pub use close_code::{classify, CloseAction, FatalError, FINAL_CLOSE, RESUMABLE_CLOSE};
pub use command::{Command, CommandError};
pub use compression::Compression;
pub use config::{
    Config, IdentifyProperties, Token, DEFAULT_BUFFERED_BYTES, DEFAULT_BUFFERED_DISPATCHES, DEFAULT_GATEWAY_URL,
    DEFAULT_MAX_IDENTIFIES_PER_DAY, DEFAULT_MIN_HEARTBEAT_INTERVAL, MAX_MESSAGE_SIZE_LIMIT, MIN_MESSAGE_SIZE,
};
pub use event::{Action, CloseMode, DisconnectReason, Event, Status};
pub use machine::{Incoming, Machine};
pub use opcode::OpCode;
pub use payload::MAX_OUTBOUND_SIZE;
pub use ratelimit::{SEND_LIMIT, SEND_WINDOW};
pub use url::{gateway_url, ResumeHosts, UrlError};
pub use validate::ConfigError;
pub(crate) use validate::ValidConfig;
