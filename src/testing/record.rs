//! What the simulator records: connections, client frames, closes, server
//! frames, identifies.

use std::time::Instant;

use serde_json::Value;

use super::OnConnect;
use crate::shard_id::ShardId;

/// One accepted TCP connection, in accept order.
#[derive(Debug, Clone)]
pub struct ConnectionRecord {
    /// Position in [`Simulator::connections`](super::Simulator::connections).
    pub index: usize,
    /// When the TCP connection was accepted.
    pub opened_at: Instant,
    /// The behaviour chosen for it when it was accepted.
    pub on_connect: OnConnect,
    /// Whether the WebSocket handshake completed.
    pub handshake: bool,
    /// Request path, e.g. `/` or `/resumed-host` (empty if no HTTP request was read).
    pub path: String,
    /// Raw query string without `?`, e.g. `v=10&encoding=json`.
    pub query: String,
    /// The `v` query parameter.
    pub version: Option<String>,
    /// The `encoding` query parameter.
    pub encoding: Option<String>,
    /// The `compress` query parameter.
    pub compress: Option<String>,
    /// Whether server frames on this connection are zlib-stream binary frames.
    pub compressed: bool,
    /// Whether the path is the one of the default resume URL (`/resumed-host…`).
    pub via_resume_url: bool,
    /// The session this connection identified or resumed into, if any.
    pub session_id: Option<String>,
    /// When the connection ended, if it has.
    pub ended_at: Option<Instant>,
    /// How the connection ended, if it has.
    pub end: Option<ConnectionEnd>,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// The simulator sent a close frame (`None`: a close frame without a code).
    ServerClose(Option<u16>),
    /// The client sent a close frame first (`None`: without a code).
    ClientClose(Option<u16>),
    /// The simulator dropped the TCP stream without a close frame.
    ServerDrop,
    /// The TCP stream ended or failed without a close frame from the client.
    ClientDrop,
    /// The simulator refused the HTTP upgrade with this status.
    Refused(u16),
}

/// One frame the client sent, in arrival order across all connections.
#[derive(Debug, Clone)]
pub struct ClientFrame {
    /// Index of the connection it arrived on.
    pub connection: usize,
    /// When it arrived.
    pub at: Instant,
    /// The text exactly as received (binary frames are decoded as UTF-8, lossily).
    pub raw: String,
    /// `raw` parsed as JSON, or `None` if it is not JSON.
    pub value: Option<Value>,
    /// The `op` field, if it is an unsigned integer.
    pub op: Option<u64>,
}

impl ClientFrame {
    /// The `d` field (`None` when missing or when the frame is not JSON).
    pub fn d(&self) -> Option<&Value> {
        self.value.as_ref().and_then(|v| v.get("d"))
    }
}

/// A close frame the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientClose {
    /// Index of the connection.
    pub connection: usize,
    /// When it arrived.
    pub at: Instant,
    /// The close code (`None`: a close frame without a code).
    pub code: Option<u16>,
    /// The close reason.
    pub reason: String,
    /// `true` if the client closed first; `false` if it answered a close
    /// frame from the simulator.
    pub initiated_by_client: bool,
}

/// One payload the simulator sent, before compression and splitting.
#[derive(Debug, Clone)]
pub struct ServerFrame {
    /// Index of the connection.
    pub connection: usize,
    /// When it was written.
    pub at: Instant,
    /// The payload text (for raw binary and corrupt frames, a description;
    /// over 1 MiB, `<payload of N bytes: ...>` with its first 256 bytes).
    pub text: String,
    /// Whether it went out compressed (binary zlib-stream).
    pub compressed: bool,
}

/// One dispatch committed to a session, as logged for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedDispatch {
    /// Its sequence number `s`.
    pub seq: u64,
    /// Its event name `t`.
    pub event: String,
    /// The whole frame text, sent verbatim live and on replay.
    pub frame: String,
}

/// One well-formed Identify (token, shard and intents accepted), in arrival
/// order across all connections, whether the concurrency limit let it through
/// or not (`docs/rate-limits.md#identify-concurrency`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifyRecord {
    /// When it arrived.
    pub at: Instant,
    /// Index of the connection it arrived on.
    pub connection: usize,
    /// The `shard` it carried (`None`: no `shard` field).
    pub shard: Option<ShardId>,
    /// Its concurrency bucket, `shard_id % max_concurrency` (`None`: no limit
    /// configured).
    pub bucket: Option<u32>,
    /// `true` if it started a session; `false` if it came too soon after the
    /// bucket's last accepted Identify and was rejected.
    pub accepted: bool,
}
