//! [`SimulatorConfig`] and [`OnConnect`].

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::Value;

/// What the simulator does when a client opens a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnConnect {
    /// Send Hello (op 10) with the configured heartbeat interval, as Discord does.
    Hello,
    /// Send Reconnect (op 7) instead of Hello, as a draining gateway node does
    /// (`docs/connection.md#hello`,
    /// `docs/edge-cases.md#reconnect-before-hello`), then keep the socket open.
    Reconnect,
    /// Complete the WebSocket handshake and then send nothing at all (for Hello
    /// timeouts, `docs/edge-cases.md#hello-and-ready-timeouts`).
    Silence,
    /// Complete the WebSocket handshake, then close with this code before Hello.
    Close(u16),
    /// Answer the HTTP upgrade request with this HTTP status (e.g. 503 or 520)
    /// instead of `101 Switching Protocols`.
    RefuseHandshake(u16),
    /// Close the TCP stream right after accepting it, before reading any HTTP.
    DropTcp,
}

/// What the simulator does with an Identify that comes too soon after the
/// last accepted one in its concurrency bucket (`docs/rate-limits.md#identify-concurrency`; see
/// [`SimulatorConfig::max_concurrency`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentifyTooFast {
    /// Answer with Invalid Session (op 9, `d: false`), as Discord does; the
    /// connection stays open and unauthenticated.
    InvalidSession,
    /// Close the connection with this code (e.g. 4008 or 4009).
    Close(u16),
}

/// How a [`Simulator`](super::Simulator) behaves. Build it with the setters;
/// every setter documents its default.
///
/// ```
/// use std::time::Duration;
/// use discord_gateway_stream::testing::SimulatorConfig;
///
/// let config = SimulatorConfig::new()
///     .heartbeat_interval(Duration::from_millis(250))
///     .token("secret")
///     .guilds([1, 2, 3]);
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    pub(crate) heartbeat_interval: Duration,
    pub(crate) compression: bool,
    pub(crate) token: Option<String>,
    pub(crate) allowed_privileged: u64,
    pub(crate) on_connect: OnConnect,
    pub(crate) on_connect_queue: VecDeque<OnConnect>,
    pub(crate) guilds: Vec<u64>,
    pub(crate) initial_dispatches: Vec<(String, Value)>,
    pub(crate) resume_url: Option<String>,
    pub(crate) split_frames: usize,
    pub(crate) send_limit: (usize, Duration),
    pub(crate) enforce_heartbeats: bool,
    pub(crate) withhold_acks: bool,
    pub(crate) max_concurrency: u32,
    pub(crate) identify_window: Duration,
    pub(crate) on_identify_too_fast: IdentifyTooFast,
    pub(crate) receive_buffer: Option<usize>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl SimulatorConfig {
    /// The defaults: Discord's usual 41 250 ms heartbeat interval, compression
    /// honoured, any non-empty token accepted, no privileged intent allowed,
    /// Hello on every connection, no guilds, no initial dispatches, the resume
    /// URL pointing back at the simulator, one WebSocket message per payload,
    /// 120 client frames per 60 s, no server-side heartbeat enforcement, ACKs
    /// sent, no identify concurrency limit, the system's TCP receive buffer.
    pub fn new() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(41_250),
            compression: true,
            token: None,
            allowed_privileged: 0,
            on_connect: OnConnect::Hello,
            on_connect_queue: VecDeque::new(),
            guilds: Vec::new(),
            initial_dispatches: Vec::new(),
            resume_url: None,
            split_frames: 1,
            send_limit: (120, Duration::from_secs(60)),
            enforce_heartbeats: false,
            withhold_acks: false,
            max_concurrency: 0,
            identify_window: Duration::from_secs(5),
            on_identify_too_fast: IdentifyTooFast::InvalidSession,
            receive_buffer: None,
        }
    }

    /// The `heartbeat_interval` sent in Hello. Default: 41 250 ms.
    ///
    /// A client [`Config`](crate::Config) refuses a Hello under its
    /// [`min_heartbeat_interval`](crate::Config::min_heartbeat_interval)
    /// (10 s by default): with a shorter interval here, lower it there too.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Whether the `compress` query parameter is honoured (`zlib-stream`, and
    /// `zstd-stream` with the `zstd` feature). When `false` it is ignored
    /// and every frame is plain text. Default: `true`.
    pub fn compression(mut self, allowed: bool) -> Self {
        self.compression = allowed;
        self
    }

    /// The only token Identify and Resume may carry (with or without a `Bot `
    /// prefix); anything else closes with 4004. Default: any non-empty token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Privileged intent bits (GUILD_MEMBERS `1 << 1`, GUILD_PRESENCES `1 << 8`,
    /// MESSAGE_CONTENT `1 << 15`) the bot is allowed to request; requesting
    /// another privileged bit closes with 4014. Default: none.
    pub fn allow_privileged_intents(mut self, bits: u64) -> Self {
        self.allowed_privileged = bits;
        self
    }

    /// What to do on every new connection (see [`OnConnect`]). Default:
    /// [`OnConnect::Hello`].
    pub fn on_connect(mut self, behaviour: OnConnect) -> Self {
        self.on_connect = behaviour;
        self
    }

    /// Queues a one-shot behaviour: the next connection without a queued
    /// behaviour takes this one, later ones fall back to
    /// [`on_connect`](Self::on_connect). Call repeatedly to script a sequence.
    /// Default: empty queue.
    pub fn on_next_connect(mut self, behaviour: OnConnect) -> Self {
        self.on_connect_queue.push_back(behaviour);
        self
    }

    /// The bot's guilds. READY lists those belonging to the identified shard
    /// (`(id >> 22) % num_shards == shard_id`) as unavailable, and one
    /// GUILD_CREATE per such guild follows READY. Default: none.
    pub fn guilds(mut self, ids: impl IntoIterator<Item = u64>) -> Self {
        self.guilds = ids.into_iter().collect();
        self
    }

    /// Adds a dispatch committed right after READY (and after the
    /// GUILD_CREATEs), on every new session. Default: none.
    pub fn initial_dispatch(mut self, event: impl Into<String>, d: Value) -> Self {
        self.initial_dispatches.push((event.into(), d));
        self
    }

    /// The `resume_gateway_url` sent in READY, verbatim (e.g. `"not a url"` or
    /// the unreachable `"ws://127.0.0.1:1"`). Default:
    /// `ws://127.0.0.1:PORT/resumed-host`, which points back at the simulator.
    pub fn resume_url(mut self, url: impl Into<String>) -> Self {
        self.resume_url = Some(url.into());
        self
    }

    /// With zlib-stream on, splits every compressed payload into `k` WebSocket
    /// messages: the last message holds only the final two bytes (`ff ff`, so
    /// the `00 00 ff ff` marker straddles two messages) and the rest is cut
    /// into `k - 1` near-equal parts. `0` and `1` mean one message per payload.
    /// zstd-stream always sends one message per payload, as Discord does.
    /// Default: 1.
    pub fn split_frames(mut self, k: usize) -> Self {
        self.split_frames = k;
        self
    }

    /// More than `max` client frames within `window` on one connection closes
    /// it with 4008. Default: 120 per 60 s.
    pub fn send_limit(mut self, max: usize, window: Duration) -> Self {
        self.send_limit = (max, window);
        self
    }

    /// When `true`, a connection whose client sends no heartbeat for 1.5 ×
    /// the interval (counted from Hello, then from each heartbeat) is closed
    /// with 1000 and its session stays resumable, as `docs/connection.md#missed-heartbeats`
    /// and `docs/edge-cases.md#server-sent-1000` describe. Default: `false`.
    pub fn enforce_heartbeats(mut self, enforce: bool) -> Self {
        self.enforce_heartbeats = enforce;
        self
    }

    /// When `true`, heartbeats get no op 11 ACK (to provoke zombie detection).
    /// Default: `false`.
    pub fn withhold_acks(mut self, withhold: bool) -> Self {
        self.withhold_acks = withhold;
        self
    }

    /// Enforces the identify concurrency limit of `docs/rate-limits.md#identify-concurrency` and
    /// `docs/sharding.md#shard-formula`: Identifies share `max_concurrency` buckets keyed by
    /// `shard_id % max_concurrency` (an Identify without `shard` counts as
    /// shard 0), and each bucket accepts one Identify per
    /// [`identify_window`](Self::identify_window). A later one within the
    /// window is rejected as [`on_identify_too_fast`](Self::on_identify_too_fast)
    /// says and recorded in
    /// [`Simulator::identify_violations`](super::Simulator::identify_violations).
    /// Resumes are never limited. `0` turns the limit off. Default: `0` (off).
    pub fn max_concurrency(mut self, max_concurrency: u32) -> Self {
        self.max_concurrency = max_concurrency;
        self
    }

    /// How long a concurrency bucket stays taken after an accepted Identify
    /// (only with [`max_concurrency`](Self::max_concurrency)). Default: 5 s
    /// (`docs/rate-limits.md#identify-concurrency`).
    pub fn identify_window(mut self, window: Duration) -> Self {
        self.identify_window = window;
        self
    }

    /// What a too-fast Identify gets (see [`IdentifyTooFast`]). Default:
    /// [`IdentifyTooFast::InvalidSession`], op 9 `d: false` as Discord sends
    /// (`docs/rate-limits.md#identify-concurrency`).
    pub fn on_identify_too_fast(mut self, behaviour: IdentifyTooFast) -> Self {
        self.on_identify_too_fast = behaviour;
        self
    }

    /// The TCP receive buffer (`SO_RCVBUF`) of accepted connections, set on
    /// the listener so that it holds from the handshake on. A small one makes
    /// a client's writes block soon after
    /// [`Simulator::pause_reading`](super::Simulator::pause_reading) (the
    /// kernel may round the size up). Default: the system's (autotuned).
    pub fn receive_buffer(mut self, bytes: usize) -> Self {
        self.receive_buffer = Some(bytes);
        self
    }
}
