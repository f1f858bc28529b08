//! `RedisSessionStore`: one key per shard, with an expiry.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{SessionStore, SessionStoreError, DEFAULT_SESSION_TTL};
use crate::session::ShardSession;
use crate::shard_id::ShardId;

/// The key prefix used when the caller passes an empty one.
const DEFAULT_PREFIX: &str = "discord-gateway-stream:session";

/// A [`SessionStore`] in Redis (feature `redis`): every process of the bot,
/// on any machine, can take over another's shards after a crash.
///
/// Each shard's [`ShardSession`] is a JSON string at
/// `<prefix>:<id>:<total>`, written with `SET … PX <ttl>` on every save, so
/// it expires [`ttl`](Self::ttl) after the last checkpoint
/// ([`DEFAULT_SESSION_TTL`], slightly over how long Discord keeps a session
/// resumable) and a bot that stops for good leaves nothing behind. A shard
/// whose session does not change saves it again every third of the TTL, so
/// a quiet but live session's key does not expire.
///
/// `C` is the same connection [`RedisIdentifyQueue`](crate::identify::RedisIdentifyQueue)
/// takes: any `redis::aio::ConnectionLike` that is `Clone` (a
/// `ConnectionManager`, which reconnects by itself, a multiplexed or a
/// cluster connection); the keys have no hash tag, so a cluster spreads
/// them. Requests are not retried here: a failed save is retried with the
/// shard's next checkpoint, a failed load makes the shard identify.
/// Durability is Redis's own (its `appendonly` and `save` settings).
///
/// ```no_run
/// # async fn build() -> Result<(), Box<dyn std::error::Error>> {
/// use discord_gateway_stream::store::RedisSessionStore;
/// use discord_gateway_stream::{Config, Intents, ShardGroup};
///
/// let client = redis::Client::open("redis://127.0.0.1/")?;
/// let connection = client.get_multiplexed_async_connection().await?;
/// let store = RedisSessionStore::new(connection, "my-bot:sessions");
/// let config = Config::new(std::env::var("DISCORD_TOKEN")?, Intents::GUILDS);
/// let group = ShardGroup::builder(config, 16).session_store(store).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisSessionStore<C> {
    connection: C,
    prefix: Arc<str>,
    ttl: Duration,
}

impl<C> RedisSessionStore<C>
where
    C: ::redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A store whose keys start with `key_prefix` (an empty one means
    /// `discord-gateway-stream:session`); records expire after
    /// [`DEFAULT_SESSION_TTL`].
    pub fn new(connection: C, key_prefix: impl Into<String>) -> Self {
        let prefix = key_prefix.into();
        let prefix = if prefix.is_empty() { DEFAULT_PREFIX.to_owned() } else { prefix };
        RedisSessionStore { connection, prefix: prefix.into(), ttl: DEFAULT_SESSION_TTL }
    }

    /// How long a record outlives its last save (at least 1 ms).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// The key that holds `shard`'s session.
    pub fn key(&self, shard: ShardId) -> String {
        format!("{}:{}:{}", self.prefix, shard.id, shard.total)
    }
}

impl<C> SessionStore for RedisSessionStore<C>
where
    C: ::redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    fn load(&self, shard: ShardId) -> BoxFuture<'static, Result<Option<ShardSession>, SessionStoreError>> {
        let mut connection = self.connection.clone();
        let key = self.key(shard);
        async move {
            let value: Option<String> =
                ::redis::cmd("GET").arg(&key).query_async(&mut connection).await.map_err(failed)?;
            let Some(value) = value else { return Ok(None) };
            serde_json::from_str(&value).map(Some).map_err(|error| super::corrupt(&key, &error))
        }
        .boxed()
    }

    fn save(&self, session: ShardSession) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        let mut connection = self.connection.clone();
        let key = self.key(session.shard);
        let ttl = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        async move {
            let value =
                serde_json::to_string(&session).map_err(|error| SessionStoreError::Backend(error.to_string()))?;
            ::redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("PX")
                .arg(ttl)
                .query_async::<()>(&mut connection)
                .await
                .map_err(failed)
        }
        .boxed()
    }

    fn clear(&self, shard: ShardId) -> BoxFuture<'static, Result<(), SessionStoreError>> {
        let mut connection = self.connection.clone();
        let key = self.key(shard);
        async move { ::redis::cmd("DEL").arg(&key).query_async::<()>(&mut connection).await.map_err(failed) }.boxed()
    }

    /// The key's [`ttl`](Self::ttl): shards save an unchanged session again
    /// every third of it.
    fn expiry(&self) -> Option<Duration> {
        Some(self.ttl)
    }
}

/// A Redis error as a store error: connection trouble is I/O, an error
/// reply is the backend's.
fn failed(error: ::redis::RedisError) -> SessionStoreError {
    if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
        SessionStoreError::Io(error.to_string())
    } else {
        SessionStoreError::Backend(error.to_string())
    }
}

impl<C> fmt::Debug for RedisSessionStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessionStore").field("prefix", &self.prefix).field("ttl", &self.ttl).finish()
    }
}
