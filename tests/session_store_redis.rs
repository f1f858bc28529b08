//! `RedisSessionStore` against a real `redis-server` on loopback (see
//! `support::redis_server`: with `DGS_REQUIRE_REDIS=1` a missing server fails).
#![cfg(feature = "redis")]

#[macro_use]
mod support;

use std::time::Duration;

use discord_gateway_stream::store::{RedisSessionStore, SessionStore, SessionStoreError};
use discord_gateway_stream::{Session, ShardId, ShardSession};
use redis::aio::ConnectionManager;

fn session(id: &str, seq: u64) -> Session {
    Session { id: id.into(), seq, resume_url: Some("wss://gateway-us-east1-c.discord.gg".into()) }
}

#[tokio::test]
async fn sessions_are_kept_per_shard_and_total_under_the_prefix() {
    let server = redis_server!();
    let store = RedisSessionStore::new(server.connection().await, "bot-a");
    let a = ShardId::new(2, 8).unwrap();
    assert_eq!(store.key(a), "bot-a:2:8");
    assert_eq!(store.load(a).await.unwrap(), None);
    store.save(ShardSession { shard: a, session: session("s1", 10) }).await.unwrap();
    store.save(ShardSession { shard: a, session: session("s1", 11) }).await.unwrap();
    assert_eq!(store.load(a).await.unwrap(), Some(ShardSession { shard: a, session: session("s1", 11) }));
    // Another total, another prefix: other keys.
    assert_eq!(store.load(ShardId::new(2, 16).unwrap()).await.unwrap(), None);
    let other = RedisSessionStore::new(server.connection().await, "bot-b");
    assert_eq!(other.load(a).await.unwrap(), None);
    // A new process with its own connection (a connection manager) reads it.
    let client = redis::Client::open(server.url()).unwrap();
    let manager = ConnectionManager::new(client).await.unwrap();
    let next = RedisSessionStore::new(manager, "bot-a");
    assert_eq!(next.load(a).await.unwrap().map(|s| s.session.seq), Some(11));
    next.clear(a).await.unwrap();
    next.clear(a).await.unwrap();
    assert_eq!(store.load(a).await.unwrap(), None);
}

#[tokio::test]
async fn every_save_sets_the_expiry() {
    let server = redis_server!();
    let mut connection = server.connection().await;
    let store = RedisSessionStore::new(connection.clone(), "");
    let a = ShardId::ONE;
    assert_eq!(store.key(a), "discord-gateway-stream:session:0:1");
    store.save(ShardSession { shard: a, session: session("s", 1) }).await.unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg(store.key(a)).query_async(&mut connection).await.unwrap();
    assert!(ttl > 590_000 && ttl <= 600_000, "default ttl ten minutes: {ttl}");
    let short = store.ttl(Duration::from_millis(150));
    short.save(ShardSession { shard: a, session: session("s", 2) }).await.unwrap();
    assert!(short.load(a).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(short.load(a).await.unwrap(), None, "expired");
}

#[tokio::test]
async fn unreadable_records_and_a_lost_server_are_errors() {
    let mut server = redis_server!();
    let mut connection = server.connection().await;
    let store = RedisSessionStore::new(connection.clone(), "bot");
    let a = ShardId::ONE;
    let () = redis::cmd("SET").arg(store.key(a)).arg("not json").query_async(&mut connection).await.unwrap();
    assert!(matches!(store.load(a).await, Err(SessionStoreError::Corrupt(_))));
    // Its error says where and what, never what the record holds.
    let () = redis::cmd("SET")
        .arg(store.key(a))
        .arg(r#"{"shard":"secret-session-id"}"#)
        .query_async(&mut connection)
        .await
        .unwrap();
    let error = store.load(a).await.unwrap_err();
    assert!(matches!(error, SessionStoreError::Corrupt(_)));
    assert!(!error.to_string().contains("secret"), "{error}");
    server.stop();
    assert!(store.save(ShardSession { shard: a, session: session("s", 1) }).await.is_err());
}
