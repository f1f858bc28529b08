//! Everything the protocol core needs to know about a shard.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;

use super::backoff::ReconnectPolicy;
use super::compression::Compression;
use super::url::ResumeHosts;
use crate::codec::DEFAULT_MAX_MESSAGE_SIZE;
use crate::intents::Intents;
use crate::session::Session;
use crate::shard_id::ShardId;

/// Discord's gateway, used when the application passes no URL of its own
/// (`docs/connection.md#gateway-url`).
pub const DEFAULT_GATEWAY_URL: &str = "wss://gateway.discord.gg";

/// The largest `max_message_size` accepted: 1 GiB.
pub const MAX_MESSAGE_SIZE_LIMIT: usize = 1 << 30;

/// The smallest `max_message_size` accepted: 64 KiB (a smaller cap can
/// refuse READY itself, and then every connection).
pub const MIN_MESSAGE_SIZE: usize = 64 * 1024;

/// Default floor on the `heartbeat_interval` a Hello may announce
/// ([`Config::min_heartbeat_interval`]): 10 s. Discord sends about 41 s; at
/// 10 s the periodic heartbeats take at most 6 of the 120 frames a
/// connection may send per 60 s, leaving the rest for Identify or Resume,
/// answers to op 1 and application commands.
pub const DEFAULT_MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// Default bound on this shard's Identifies in any 24 hours
/// ([`Config::max_identifies_per_day`]): 50.
pub const DEFAULT_MAX_IDENTIFIES_PER_DAY: u32 = 50;

/// Longest `heartbeat_interval` accepted from Hello: 1 hour.
pub(crate) const MAX_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3600);

/// Default bound on dispatches waiting for the application ([`Config::max_buffered`]).
pub const DEFAULT_BUFFERED_DISPATCHES: usize = 256;

/// Default bound on the bytes of dispatches waiting for the application
/// ([`Config::max_buffered`]): 1 MiB.
pub const DEFAULT_BUFFERED_BYTES: usize = 1024 * 1024;

/// A bot token. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Box<str>);

impl Token {
    /// Wraps a token; a leading `Bot ` is removed so one form is always sent
    /// (`docs/connection.md#sent-payloads`).
    pub fn new(token: impl AsRef<str>) -> Token {
        let token = token.as_ref().trim();
        let bare = token.strip_prefix("Bot ").unwrap_or(token);
        Token(bare.into())
    }

    /// The token itself, for building Identify and Resume only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `properties` of Identify (`docs/connection.md#sent-payloads`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IdentifyProperties {
    /// Operating system.
    pub os: String,
    /// Library name.
    pub browser: String,
    /// Library name.
    pub device: String,
}

impl Default for IdentifyProperties {
    fn default() -> Self {
        let library = env!("CARGO_PKG_NAME").to_owned();
        IdentifyProperties { os: std::env::consts::OS.to_owned(), browser: library.clone(), device: library }
    }
}

/// Configuration of one shard's protocol core.
///
/// ```
/// use discord_gateway_stream::protocol::Config;
/// use discord_gateway_stream::{Intents, ShardId};
/// let config = Config::new("my-token", Intents::GUILDS | Intents::GUILD_MESSAGES)
///     .shard(ShardId::new(0, 2).unwrap())
///     .large_threshold(100);
/// assert_eq!(config.shard_id(), ShardId::new(0, 2).unwrap());
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) token: Token,
    pub(crate) intents: Intents,
    pub(crate) shard: ShardId,
    pub(crate) base_url: String,
    pub(crate) compression: Compression,
    pub(crate) large_threshold: u16,
    pub(crate) presence: Option<Box<RawValue>>,
    pub(crate) presence_invalid: bool,
    pub(crate) properties: IdentifyProperties,
    pub(crate) connect_timeout: Duration,
    pub(crate) hello_timeout: Duration,
    pub(crate) ready_timeout: Duration,
    pub(crate) min_heartbeat_interval: Duration,
    pub(crate) max_identifies_per_day: u32,
    pub(crate) reconnect: ReconnectPolicy,
    pub(crate) max_message_size: usize,
    pub(crate) max_queued_commands: usize,
    pub(crate) resume_from: Option<Session>,
    pub(crate) identify_permits: bool,
    pub(crate) validate_payloads: bool,
    pub(crate) resume_hosts: ResumeHosts,
    /// `None`: every dispatch reaches the stream.
    pub(crate) events: Option<Arc<HashSet<Box<str>>>>,
    pub(crate) max_buffered_dispatches: usize,
    pub(crate) max_buffered_bytes: usize,
    /// `None`: the machine uses a fixed seed; drivers seed from entropy.
    pub(crate) rng_seed: Option<u64>,
}

impl Config {
    /// A configuration with every default: shard `[0, 1]`, Discord's gateway,
    /// zlib-stream (with the `zlib` feature), `large_threshold` 50, connect
    /// and Hello timeouts 30 s each, READY/RESUMED timeout 60 s, 64 MiB payload cap, 4096
    /// queued commands, a 10 s floor on Hello's `heartbeat_interval`, at most
    /// 50 Identifies in 24 hours, [`ReconnectPolicy::default`].
    pub fn new(token: impl AsRef<str>, intents: Intents) -> Config {
        Config {
            token: Token::new(token),
            intents,
            shard: ShardId::ONE,
            base_url: DEFAULT_GATEWAY_URL.to_owned(),
            compression: Compression::default(),
            large_threshold: 50,
            presence: None,
            presence_invalid: false,
            properties: IdentifyProperties::default(),
            connect_timeout: Duration::from_secs(30),
            hello_timeout: Duration::from_secs(30),
            ready_timeout: Duration::from_secs(60),
            min_heartbeat_interval: DEFAULT_MIN_HEARTBEAT_INTERVAL,
            max_identifies_per_day: DEFAULT_MAX_IDENTIFIES_PER_DAY,
            reconnect: ReconnectPolicy::default(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_queued_commands: 4096,
            resume_from: None,
            identify_permits: false,
            validate_payloads: false,
            resume_hosts: ResumeHosts::SameDomain,
            events: None,
            max_buffered_dispatches: DEFAULT_BUFFERED_DISPATCHES,
            max_buffered_bytes: DEFAULT_BUFFERED_BYTES,
            rng_seed: None,
        }
    }

    /// This shard's id and the total shard count.
    pub fn shard(mut self, shard: ShardId) -> Self {
        self.shard = shard;
        self
    }

    /// The shard this configuration is for.
    pub fn shard_id(&self) -> ShardId {
        self.shard
    }

    /// The base gateway URL, e.g. the `url` your REST client got from
    /// `GET /gateway/bot`. The query is added by the crate.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Transport compression.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Member count above which a guild is "large" (50..=250).
    pub fn large_threshold(mut self, threshold: u16) -> Self {
        self.large_threshold = threshold;
        self
    }

    /// The presence Identify sets: anything that serializes to the `d` of a
    /// presence update (`docs/connection.md#sent-payloads`), e.g.
    /// [`Presence`](crate::commands::Presence).
    pub fn presence<T: serde::Serialize>(mut self, presence: &T) -> Self {
        self.presence = serde_json::value::to_raw_value(presence).ok();
        self.presence_invalid = self.presence.is_none();
        self
    }

    /// Identify `properties`.
    pub fn properties(mut self, properties: IdentifyProperties) -> Self {
        self.properties = properties;
        self
    }

    /// How long opening a socket (TCP, TLS, WebSocket upgrade) may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for Hello after the socket opens
    /// (`docs/edge-cases.md#hello-and-ready-timeouts`).
    pub fn hello_timeout(mut self, timeout: Duration) -> Self {
        self.hello_timeout = timeout;
        self
    }

    /// How long to wait for READY or RESUMED; every dispatch received while
    /// resuming extends it, so a long replay never times out
    /// (`docs/edge-cases.md#hello-and-ready-timeouts`).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// The smallest `heartbeat_interval` a Hello may announce (default
    /// [`DEFAULT_MIN_HEARTBEAT_INTERVAL`], 10 s; at most 1 hour). A Hello
    /// under it is a bad Hello: the connection is dropped and retried with
    /// backoff ([`DisconnectReason::BadHello`](super::DisconnectReason::BadHello)),
    /// so a broken or hostile gateway cannot make the shard heartbeat in a
    /// tight loop. Discord sends about 41 s.
    ///
    /// Lower it only against a test gateway (the crate's simulator tests
    /// use 100–500 ms). Whatever the interval, a connection never sends more
    /// than 120 frames per 60 s: under about 6.7 s the periodic heartbeats
    /// alone would exceed their reserved slots, and a heartbeat with no slot
    /// left waits for the next one.
    pub fn min_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.min_heartbeat_interval = interval;
        self
    }

    /// How many times this shard may identify in any 24 hours (default
    /// [`DEFAULT_MAX_IDENTIFIES_PER_DAY`], 50; zero counts as one). The
    /// Identify past it is not sent: the shard stops with
    /// [`FatalError::TooManyIdentifies`](super::FatalError::TooManyIdentifies).
    ///
    /// Every Identify spends one session start of the bot's daily budget
    /// (1000 for most bots, shared by all shards), and running out of it
    /// resets the bot's token. A healthy shard identifies a handful of times
    /// a day; one that identifies fifty times is looping (sessions
    /// invalidated again and again), and stopping it with an error is
    /// better than losing the token. This guard is per shard and in process:
    /// with 20 shards or more, or several processes, give the shards an
    /// identify queue that tracks the real budget
    /// ([`IdentifyLimits::from_session_start_limit`](crate::identify::IdentifyLimits::from_session_start_limit))
    /// and raise this if needed.
    pub fn max_identifies_per_day(mut self, limit: u32) -> Self {
        self.max_identifies_per_day = limit.max(1);
        self
    }

    /// Reconnect pacing.
    pub fn reconnect_policy(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// Cap on one inflated payload (default [`DEFAULT_MAX_MESSAGE_SIZE`];
    /// between [`MIN_MESSAGE_SIZE`] and [`MAX_MESSAGE_SIZE_LIMIT`]).
    ///
    /// A payload over the cap ends the connection, which then resumes. A
    /// payload the gateway sends again on every resume (or in every new
    /// session) would loop: after `2 × (max_resume_attempts + 1)`
    /// consecutive failures at the same point of the stream (8 by default),
    /// or before a third Identify spent on it, the shard stops with
    /// [`FatalError::PayloadTooLarge`](super::FatalError::PayloadTooLarge),
    /// which names the size when known. A compressed stream that breaks at
    /// the same point again and again stops the same way with
    /// [`FatalError::PayloadUndecodable`](super::FatalError::PayloadUndecodable).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// How many application commands may wait for the connection or the
    /// rate limit before `send_command` refuses more.
    pub fn max_queued_commands(mut self, count: usize) -> Self {
        self.max_queued_commands = count;
        self
    }

    /// Resume this session instead of identifying (e.g. after a restart).
    pub fn resume_from(mut self, session: Session) -> Self {
        self.resume_from = Some(session);
        self
    }

    /// When `true`, the core asks for an identify permit
    /// ([`Action::RequestIdentifyPermit`](super::Action::RequestIdentifyPermit))
    /// before every Identify and waits for
    /// [`Machine::grant_identify`](super::Machine::grant_identify); when
    /// `false` (default) it identifies as soon as Hello arrives.
    pub fn identify_permits(mut self, enabled: bool) -> Self {
        self.identify_permits = enabled;
        self
    }

    /// How many dispatches, and how many bytes of them, may wait for the
    /// application before the driver stops reading the socket (TCP
    /// backpressure; heartbeats continue). Defaults: 256 dispatches and
    /// 1 MiB ([`DEFAULT_BUFFERED_DISPATCHES`], [`DEFAULT_BUFFERED_BYTES`]).
    ///
    /// One dispatch always fits an empty buffer, so a payload larger than
    /// `bytes` still passes (up to `max_message_size`); the buffer then
    /// holds at most `bytes` plus one payload. A dispatch counts as the heap
    /// it keeps alive: an uncompressed payload of 64 KiB or more, kept as
    /// the WebSocket frame's own bytes, counts with about 128 KiB of read
    /// buffer it may keep alive too. A larger buffer lets a spawned
    /// driver run further ahead of a bursty consumer at the cost of memory
    /// per shard. Zero counts as one.
    pub fn max_buffered(mut self, dispatches: usize, bytes: usize) -> Self {
        self.max_buffered_dispatches = dispatches.max(1);
        self.max_buffered_bytes = bytes.max(1);
        self
    }

    /// Delivers only the dispatches with these event names (`t`), e.g.
    /// `["MESSAGE_CREATE", "INTERACTION_CREATE"]`; the rest are dropped in
    /// the core before a dispatch is built, so they cost no copy and never
    /// reach the stream. Everything else is unaffected: READY and RESUMED
    /// still set up and resume the session (and are delivered only if
    /// named), sequence numbers are tracked across filtered dispatches, and
    /// resumes replay nothing twice. Unset (default), every dispatch is
    /// delivered. Intents decide what Discord sends; this decides what
    /// reaches you of it.
    ///
    /// Names are exact and case-sensitive (`"MESSAGE_CREATE"`, not
    /// `"message_create"`); an empty list delivers nothing; a second call
    /// replaces the first. With zlib-stream a dropped dispatch is still
    /// inflated (the name is inside the compressed payload); it is just
    /// never copied or queued.
    pub fn events<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.events = Some(Arc::new(names.into_iter().map(|name| Box::from(name.as_ref())).collect()));
        self
    }

    /// Which hosts a `resume_gateway_url` from READY may name (default:
    /// the base URL's domain; see [`ResumeHosts`]). A resume URL with a
    /// weaker scheme than the base URL (`ws://` after `wss://`) is refused
    /// whatever this says: the Resume carries the token.
    pub fn resume_hosts(mut self, hosts: ResumeHosts) -> Self {
        self.resume_hosts = hosts;
        self
    }

    /// When `true`, every payload is validated as JSON in full before it is
    /// used (the strict scanner), so [`Dispatch::data`](crate::Dispatch::data)
    /// is always valid JSON: for proxies that forward `d` without parsing it.
    ///
    /// When `false` (default), a dispatch in Discord's canonical form
    /// `{"t":…,"s":…,"op":…,"d":…}` is read from its prefix and `d` is taken
    /// as the rest of the object without validating it, which costs tens of
    /// nanoseconds instead of a pass over the whole payload; your
    /// deserializer validates `d` when it parses it. For valid JSON in that
    /// form the two give exactly the same dispatch; anything else is
    /// validated in full either way, and so are the core's own payloads
    /// (op ≠ 0) and READY (see [`codec::Envelope`](crate::codec::Envelope)
    /// for the exact contract).
    pub fn validate_payloads(mut self, enabled: bool) -> Self {
        self.validate_payloads = enabled;
        self
    }

    /// Seed of the generator behind every random wait (heartbeat jitter,
    /// backoff jitter, the op 9 wait). Unset, the sans-IO machine uses a
    /// fixed seed and [`Shard`](crate::Shard) seeds from entropy, so shards
    /// started together do not heartbeat or reconnect in lockstep; tests fix
    /// it to replay exactly.
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// The seed set with [`rng_seed`](Self::rng_seed), if any.
    pub(crate) fn seed(&self) -> Option<u64> {
        self.rng_seed
    }

    pub(crate) fn max_queued_commands_limit(&self) -> usize {
        self.max_queued_commands
    }

    pub(crate) fn max_buffered_dispatches_limit(&self) -> usize {
        self.max_buffered_dispatches
    }

    pub(crate) fn max_buffered_bytes_limit(&self) -> usize {
        self.max_buffered_bytes
    }

    pub(crate) fn max_message_size_limit(&self) -> usize {
        self.max_message_size
    }
}
