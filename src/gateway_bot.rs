//! The answer of `GET /gateway/bot`, and the shard group it implies.

use crate::group::{ShardGroup, ShardGroupBuilder};
use crate::identify::{IdentifyLimits, LocalIdentifyQueue, SessionStartLimit};
use crate::protocol::Config;

/// The JSON of `GET /gateway/bot` (`docs/connection.md#gateway-url`, `docs/rate-limits.md#daily-session-start-budget`,
/// `docs/sharding.md#shard-formula`): the
/// gateway URL, the shard count Discord recommends, and the bot's identify
/// limits. This crate has no REST client: fetch it with yours and
/// deserialize the body into this.
///
/// [`group_builder`](Self::group_builder) turns it into a
/// [`ShardGroupBuilder`] with all three preset: every shard of `shards`,
/// the URL, and a [`LocalIdentifyQueue`] enforcing `max_concurrency` and the
/// session-start budget.
///
/// ```
/// use discord_gateway_stream::{GatewayBot, Config, Intents};
///
/// // Your REST client's `GET https://discord.com/api/v10/gateway/bot`
/// // (header `Authorization: Bot <token>`):
/// let body = r#"{
///   "url": "wss://gateway.discord.gg",
///   "shards": 9,
///   "session_start_limit": {
///     "total": 1000,
///     "remaining": 999,
///     "reset_after": 14400000,
///     "max_concurrency": 1
///   }
/// }"#;
/// let bot: GatewayBot = serde_json::from_str(body)?;
/// assert_eq!(bot.shards, 9);
/// assert_eq!(bot.identify_limits().max_concurrency(), 1);
///
/// let builder = bot.group_builder(Config::new("token", Intents::GUILDS));
/// // Then, in an async context: `let mut group = builder.build()?;` and poll it.
/// # let _ = builder;
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GatewayBot {
    /// The gateway URL to connect to (`wss://gateway.discord.gg`); the
    /// crate adds the query (`v`, `encoding`, `compress`).
    pub url: String,
    /// The number of shards Discord recommends for the bot.
    pub shards: u32,
    /// The bot's identify limits: concurrency buckets and the daily budget
    /// of session starts.
    pub session_start_limit: SessionStartLimit,
}

impl GatewayBot {
    /// The identify rules this answer implies: `max_concurrency` buckets of
    /// one Identify per 5 s and the daily budget tracked from `remaining`
    /// and `reset_after`, with [`IdentifyLimits`]' defaults for the rest
    /// (no reserve; an exhausted budget fails the shard). Adjust them and
    /// pass your own queue with [`ShardGroupBuilder::identify_queue`].
    pub fn identify_limits(&self) -> IdentifyLimits {
        IdentifyLimits::from_session_start_limit(self.session_start_limit)
    }

    /// A [`ShardGroup`] builder for every shard of [`shards`](Self::shards),
    /// with `config` as the template, its base URL set to [`url`](Self::url),
    /// and a [`LocalIdentifyQueue`] of [`identify_limits`](Self::identify_limits).
    ///
    /// Everything stays adjustable on the builder: pick a range with
    /// [`shards`](ShardGroupBuilder::shards) when other processes run the
    /// rest, and give every group of the bot one shared queue with
    /// [`identify_queue`](ShardGroupBuilder::identify_queue) (a clone of one
    /// `LocalIdentifyQueue` in one process, `RedisIdentifyQueue` across
    /// processes): the queue preset here counts only this group's
    /// Identifies. A `shards` of 0 (never sent by Discord) makes
    /// [`build`](ShardGroupBuilder::build) fail.
    pub fn group_builder(&self, config: Config) -> ShardGroupBuilder {
        ShardGroup::builder(config.base_url(self.url.clone()), self.shards)
            .identify_queue(LocalIdentifyQueue::new(self.identify_limits()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intents::Intents;

    /// Discord's documented example of the answer.
    const EXAMPLE: &str = r#"{
      "url": "wss://gateway.discord.gg",
      "shards": 9,
      "session_start_limit": {
        "total": 1000,
        "remaining": 999,
        "reset_after": 14400000,
        "max_concurrency": 1
      }
    }"#;

    #[test]
    fn documented_example_deserializes() {
        let bot: GatewayBot = serde_json::from_str(EXAMPLE).unwrap();
        let limit = SessionStartLimit { total: 1000, remaining: 999, reset_after: 14_400_000, max_concurrency: 1 };
        assert_eq!(bot, GatewayBot { url: "wss://gateway.discord.gg".into(), shards: 9, session_start_limit: limit });
        // Fields Discord may add later are ignored.
        let extended: GatewayBot =
            serde_json::from_str(&EXAMPLE.replacen("\"shards\"", "\"new_field\": [1], \"shards\"", 1)).unwrap();
        assert_eq!(extended, bot);
    }

    #[test]
    fn identify_limits_are_the_session_start_limit() {
        let bot: GatewayBot =
            serde_json::from_str(&EXAMPLE.replace("\"max_concurrency\": 1", "\"max_concurrency\": 16")).unwrap();
        let limits = bot.identify_limits();
        assert_eq!(limits, IdentifyLimits::from_session_start_limit(bot.session_start_limit));
        assert_eq!(limits.max_concurrency(), 16);
        assert_eq!(limits.bucket(17), 1);
        assert_eq!(limits.session_start_limit().map(|limit| limit.remaining), Some(999));
    }

    #[test]
    fn group_builder_runs_every_recommended_shard() {
        let bot: GatewayBot = serde_json::from_str(EXAMPLE).unwrap();
        let builder = bot.group_builder(Config::new("token", Intents::GUILDS));
        assert_eq!(format!("{builder:?}"), "ShardGroupBuilder { total: 9, range: 0..9 }");
    }
}
