//! What a configuration must satisfy before a shard may use it, and why
//! one is refused.

use std::ops::Deref;
use std::time::Duration;

use super::compression::Compression;
use super::config::{Config, MAX_HEARTBEAT_INTERVAL, MAX_MESSAGE_SIZE_LIMIT, MIN_MESSAGE_SIZE};
use super::payload;
use super::url::{gateway_url, UrlError};
use crate::session::Session;
use crate::shard_id::ShardId;

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
    /// outbound limit; returns the gateway URL. Only [`ValidConfig::new`]
    /// calls it.
    fn validate(&self) -> Result<String, ConfigError> {
        if self.token.expose().is_empty() {
            return Err(ConfigError::EmptyToken);
        }
        let base_url = gateway_url(&self.base_url, self.compression)?;
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
        self.check_identify()?;
        Ok(base_url)
    }

    /// Identify must fit the gateway's outbound limit.
    fn check_identify(&self) -> Result<(), ConfigError> {
        let identify = payload::identify(self, self.presence.as_deref());
        if identify.len() > payload::MAX_OUTBOUND_SIZE {
            return Err(ConfigError::IdentifyTooLarge(identify.len()));
        }
        Ok(())
    }
}

/// A configuration that passed every check, with the gateway URL built
/// from it. Only [`ValidConfig::new`] makes one, and it offers only changes
/// that no check depends on (or re-checks what they do), so a shard's
/// configuration is checked once: by the shard builder, or once per group
/// for the template it shares.
pub(crate) struct ValidConfig {
    config: Config,
    /// `config.base_url` as `gateway_url` built it.
    base_url: String,
}

impl ValidConfig {
    /// Checks every setting, including that Identify fits the gateway's
    /// outbound limit.
    pub(crate) fn new(config: Config) -> Result<ValidConfig, ConfigError> {
        let base_url = config.validate()?;
        Ok(ValidConfig { config, base_url })
    }

    /// The same settings for `shard`. Identify carries the shard id and
    /// total, so its length (the digits of both) is the one check that
    /// depends on the shard: only that is done again.
    pub(crate) fn for_shard(&self, shard: ShardId) -> Result<ValidConfig, ConfigError> {
        let config = self.config.clone().shard(shard);
        config.check_identify()?;
        Ok(ValidConfig { config, base_url: self.base_url.clone() })
    }

    /// With the jitter seed `seed` (no check reads it).
    pub(crate) fn rng_seed(mut self, seed: u64) -> ValidConfig {
        self.config = self.config.rng_seed(seed);
        self
    }

    /// Awaiting an identify permit or not (no check reads it).
    pub(crate) fn identify_permits(mut self, enabled: bool) -> ValidConfig {
        self.config = self.config.identify_permits(enabled);
        self
    }

    /// Resuming `session`, or identifying afresh (no check reads it).
    pub(crate) fn resume_from(mut self, session: Option<Session>) -> ValidConfig {
        self.config.resume_from = session;
        self
    }

    /// The configuration and its gateway URL.
    pub(crate) fn into_parts(self) -> (Config, String) {
        (self.config, self.base_url)
    }
}

/// Read-only: every change goes through the methods above.
impl Deref for ValidConfig {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intents::Intents;

    /// A configuration whose Identify is exactly 4096 bytes for shard `[0, 1]`.
    fn identify_at_the_limit() -> Config {
        let with =
            |pad: usize| Config::new("token", Intents::GUILDS).presence(&serde_json::json!({ "p": "x".repeat(pad) }));
        let short = payload::identify(&with(0), with(0).presence.as_deref()).len();
        let config = with(payload::MAX_OUTBOUND_SIZE - short);
        assert_eq!(payload::identify(&config, config.presence.as_deref()).len(), payload::MAX_OUTBOUND_SIZE);
        config
    }

    #[test]
    fn another_shard_is_checked_for_the_length_its_id_gives_identify() {
        let template = ValidConfig::new(identify_at_the_limit()).expect("at the limit is fine");
        // Two more digits: [10,11] instead of [0,1].
        let wider = ShardId::new(10, 11).unwrap();
        assert_eq!(template.for_shard(wider).err(), Some(ConfigError::IdentifyTooLarge(4098)));
        assert_eq!(
            ValidConfig::new(identify_at_the_limit().shard(wider)).err(),
            Some(ConfigError::IdentifyTooLarge(4098)),
            "the same verdict as a full check"
        );
        let same_width = ShardId::new(3, 9).unwrap();
        let shard = template.for_shard(same_width).expect("same length");
        assert_eq!(shard.shard_id(), same_width);
        assert_eq!(shard.into_parts().1, template.into_parts().1, "the gateway URL is built once");
    }

    #[test]
    fn changes_no_check_reads_keep_the_configuration_valid() {
        let session = Session { id: "s".into(), seq: 3, resume_url: None };
        let config = ValidConfig::new(Config::new("token", Intents::GUILDS))
            .unwrap()
            .rng_seed(9)
            .identify_permits(true)
            .resume_from(Some(session.clone()));
        assert_eq!(
            (config.seed(), config.identify_permits, config.resume_from.clone()),
            (Some(9), true, Some(session))
        );
        let (config, _) = config.into_parts();
        assert!(ValidConfig::new(config).is_ok());
    }

    #[test]
    fn a_bad_configuration_is_refused() {
        assert_eq!(ValidConfig::new(Config::new("", Intents::GUILDS)).err(), Some(ConfigError::EmptyToken));
        let mut config = identify_at_the_limit();
        config.large_threshold = 10;
        assert_eq!(ValidConfig::new(config).err(), Some(ConfigError::LargeThreshold(10)));
    }
}
