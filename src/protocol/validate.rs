//! What a configuration must satisfy before a shard may use it, and why
//! one is refused.

use std::time::Duration;

use super::compression::Compression;
use super::config::{Config, MAX_HEARTBEAT_INTERVAL, MAX_MESSAGE_SIZE_LIMIT, MIN_MESSAGE_SIZE};
use super::payload;
use super::url::{gateway_url, UrlError};

/// Why a configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The token is empty.
    #[error("the bot token is empty")]
    EmptyToken,
    /// The base URL cannot be used.
    #[error("invalid base gateway URL: {0}")]
    BaseUrl(#[from] UrlError),
    /// `large_threshold` is outside 50..=250.
    #[error("large_threshold must be between 50 and 250, got {0}")]
    LargeThreshold(u16),
    /// The presence is not a JSON object.
    #[error("presence must be a JSON object (the `d` of a presence update)")]
    Presence,
    /// Identify would exceed the gateway's 4096-byte limit.
    #[error("Identify would be {0} bytes, over the gateway's 4096-byte limit: shorten the presence or properties")]
    IdentifyTooLarge(usize),
    /// The compression asked for needs a cargo feature that is off
    /// (`zlib` for zlib-stream, `zstd` for zstd-stream).
    #[error("{} compression needs the crate's `{}` feature", .0.query_value().unwrap_or("no"), if *.0 == Compression::ZstdStream { "zstd" } else { "zlib" })]
    CompressionUnavailable(Compression),
    /// `max_message_size` is under 64 KiB or over 1 GiB.
    #[error("max_message_size must be between 64 KiB and 1 GiB, not {0}")]
    MaxMessageSize(usize),
    /// `min_heartbeat_interval` is over 1 hour, the longest interval
    /// accepted from Hello: every Hello would be refused.
    #[error("min_heartbeat_interval must be at most 1 hour, not {0:?}")]
    MinHeartbeatInterval(Duration),
    /// A timeout or the backoff base is zero.
    #[error("a timeout or the backoff base is zero")]
    ZeroDuration,
    /// A timeout or backoff setting is longer than a day.
    #[error("timeouts and backoff settings must be at most one day")]
    DurationTooLong,
}

impl Config {
    /// Checks every setting, including that Identify fits the gateway's
    /// outbound limit.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.token.expose().is_empty() {
            return Err(ConfigError::EmptyToken);
        }
        gateway_url(&self.base_url, self.compression)?;
        if !(50..=250).contains(&self.large_threshold) {
            return Err(ConfigError::LargeThreshold(self.large_threshold));
        }
        if self.presence_invalid || self.presence.as_ref().is_some_and(|p| !p.get().trim_start().starts_with('{')) {
            return Err(ConfigError::Presence);
        }
        if !self.compression.is_available() {
            return Err(ConfigError::CompressionUnavailable(self.compression));
        }
        // A cap below a Hello or READY refuses every connection; an unbounded
        // one is no cap at all.
        if !(MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE_LIMIT).contains(&self.max_message_size) {
            return Err(ConfigError::MaxMessageSize(self.max_message_size));
        }
        if self.min_heartbeat_interval > MAX_HEARTBEAT_INTERVAL {
            return Err(ConfigError::MinHeartbeatInterval(self.min_heartbeat_interval));
        }
        let r = &self.reconnect;
        let longest = [
            self.connect_timeout,
            self.hello_timeout,
            self.ready_timeout,
            r.base,
            r.cap,
            r.floor,
            r.healthy_after,
            r.invalid_session_wait.0,
            r.invalid_session_wait.1,
        ]
        .into_iter()
        .max()
        .unwrap_or_default();
        // Keeps every `Instant + Duration` in the machine far from overflow.
        if longest > Duration::from_secs(86_400) {
            return Err(ConfigError::DurationTooLong);
        }
        if self.connect_timeout.is_zero()
            || self.hello_timeout.is_zero()
            || self.ready_timeout.is_zero()
            || self.reconnect.base.is_zero()
        {
            return Err(ConfigError::ZeroDuration);
        }
        let identify = payload::identify(self, self.presence.as_deref());
        if identify.len() > payload::MAX_OUTBOUND_SIZE {
            return Err(ConfigError::IdentifyTooLarge(identify.len()));
        }
        Ok(())
    }
}
