//! What the core hands out: actions for the driver, events for the application.

use std::time::Duration;

use super::close_code::FatalError;
use crate::dispatch::Dispatch;

/// Something the driver must do to the socket. Drain [`Machine::poll_action`](super::Machine::poll_action)
/// before [`Machine::poll_transmit`](super::Machine::poll_transmit).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Open a WebSocket to `url` (query included), then report
    /// `handle_open` or `handle_connect_failed`.
    Connect {
        /// The full URL to open.
        url: String,
    },
    /// Send a close frame with `code` and drop the socket without waiting for
    /// the reply (a dead peer never answers:
    /// `docs/edge-cases.md#half-open-connections`). Report nothing more for it.
    Close {
        /// 1000 ends the session; 4000 keeps it resumable
        /// (`docs/close-codes.md#our-own-close-codes`).
        code: u16,
    },
    /// Wait for an identify permit (one per `shard_id % max_concurrency` bucket
    /// per 5 s, `docs/rate-limits.md#identify-concurrency`), then call
    /// `grant_identify`. Only asked for when the configuration enables identify
    /// permits.
    RequestIdentifyPermit,
}

/// Something that happened, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An opcode-0 dispatch, READY and RESUMED included, each exactly once and in `s` order.
    Dispatch(Dispatch),
    /// The connection moved to a new status.
    Status(Status),
    /// A close code that reconnecting cannot fix, or a loop the client
    /// stopped (see [`FatalError`]); the core is finished.
    Fatal(FatalError),
}

/// Where the shard's connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// Opening a socket, to resume a session or to start one.
    Connecting {
        /// Whether the connection will resume (else identify).
        resume: bool,
    },
    /// Socket open, waiting for Hello.
    AwaitingHello,
    /// Waiting for an identify permit.
    AwaitingIdentifyPermit,
    /// Identify sent, waiting for READY.
    Identifying,
    /// Resume sent; replayed dispatches arrive until RESUMED.
    Resuming,
    /// READY or RESUMED received: live.
    Active,
    /// The connection was lost; the next one opens after `delay`.
    Reconnecting {
        /// Why the connection ended.
        reason: DisconnectReason,
        /// How long until the next connection attempt.
        delay: Duration,
        /// Whether the next connection will resume (else identify).
        resume: bool,
    },
    /// The application closed the shard.
    Closed,
    /// Ended for good: a fatal close code, or a loop the client refused to
    /// go on with (see [`FatalError`]).
    Fatal(FatalError),
}

/// Why a connection ended (for logs and metrics; the core has already acted on it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The server sent op 7 Reconnect.
    Reconnect,
    /// No heartbeat ACK before the next heartbeat was due
    /// (`docs/connection.md#zombie-connections`).
    Zombie,
    /// The server sent op 9 Invalid Session.
    InvalidSession {
        /// The `d` flag: whether the session may be resumed.
        resumable: bool,
    },
    /// The server or the network closed the socket; `None` when there was no close code.
    Closed {
        /// The close code, if any.
        code: Option<u16>,
    },
    /// The socket could not be opened.
    ConnectFailed,
    /// No Hello within the Hello timeout (`docs/edge-cases.md#hello-and-ready-timeouts`).
    HelloTimeout,
    /// Hello carried no usable `heartbeat_interval`.
    BadHello,
    /// No READY/RESUMED within the ready timeout (`docs/edge-cases.md#hello-and-ready-timeouts`).
    ReadyTimeout,
    /// The zlib stream was corrupt or a payload exceeded the size cap
    /// (`docs/edge-cases.md#zlib-stream-framing-and-state`).
    Decompression {
        /// What the inflater reported.
        error: String,
    },
    /// A WebSocket message was larger than `max_message_size`; the driver
    /// refused it before decompression (see
    /// [`Machine::handle_message_too_large`](super::Machine::handle_message_too_large)).
    MessageTooLarge {
        /// The message's size in bytes, as the WebSocket layer reported it.
        size: usize,
    },
    /// The gateway broke the protocol in a way that leaves the connection
    /// unusable (e.g. READY or RESUMED before Hello: no heartbeat would run).
    ProtocolViolation {
        /// What happened.
        what: &'static str,
    },
}

/// When the application closes the shard (`docs/close-codes.md#our-own-close-codes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseMode {
    /// Close with 1000: the session ends and the bot shows offline.
    Final,
    /// Close with 4000: the session stays resumable for a few minutes.
    Resumable,
}
