//! A bot spread over several processes: each runs a `ShardGroup` for its
//! range of shards, all share one identify queue and one session store in
//! Redis. The queue paces every Identify of every process by Discord's
//! concurrency buckets; the store lets any process resume a shard another
//! one ran (after a deploy or a crash) instead of identifying again.
//!
//! ```text
//! redis-server &                                        # any Redis 5.0+; REDIS_URL to point elsewhere
//! cargo run --example multi_process --features redis,tokio
//! ```
//!
//! Against the built-in simulator (4 shards, `max_concurrency` 2, the
//! identify window enforced) it starts two worker processes of 2 shards
//! each, twice. The first round identifies every shard, paced across both
//! processes with no Identify refused; the second round's new processes
//! resume every shard from Redis with zero Identifies. In production each
//! worker is the same binary on its own machine, started with its range,
//! the real token and the gateway URL.

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::Duration;

use discord_gateway_stream::identify::{IdentifyLimits, RedisIdentifyQueue};
use discord_gateway_stream::store::RedisSessionStore;
use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::{Config, Intents, ShardGroup, ShardId, Status};
use futures::StreamExt;

const TOTAL: u32 = 4;
const PER_WORKER: u32 = 2;
const MAX_CONCURRENCY: u32 = 2;
const WINDOW: Duration = Duration::from_millis(300);
const MESSAGES: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match std::env::var("DGS_WORKER_FIRST_SHARD") {
        Ok(first) => runtime.block_on(worker(first.parse()?, &redis_url)),
        Err(_) => runtime.block_on(coordinator(&redis_url)),
    }
}

/// Starts the simulator and two rounds of workers; checks what the
/// simulator saw.
async fn coordinator(redis_url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = redis::Client::open(redis_url)?;
    let mut redis = match tokio::time::timeout(Duration::from_secs(5), client.get_multiplexed_async_connection()).await
    {
        Ok(Ok(connection)) => connection,
        _ => return Err(format!("no Redis at {redis_url}: start `redis-server` or set REDIS_URL").into()),
    };
    let sim = Simulator::start(
        SimulatorConfig::new()
            .heartbeat_interval(Duration::from_millis(500))
            .max_concurrency(MAX_CONCURRENCY)
            .identify_window(WINDOW),
    )?;
    let prefix = format!("dgs-example-{}", std::process::id());

    for round in 1..=2 {
        let identified_before = sim.identifies().len();
        let resumed_before = sim.resumes().len();
        let mut workers: Vec<Child> = (0..TOTAL / PER_WORKER)
            .map(|n| {
                Command::new(std::env::current_exe()?)
                    .env("DGS_WORKER_FIRST_SHARD", (n * PER_WORKER).to_string())
                    .env("DGS_GATEWAY", sim.url())
                    .env("DGS_PREFIX", &prefix)
                    .env("REDIS_URL", redis_url)
                    .spawn()
            })
            .collect::<Result<_, _>>()?;
        // Once all four shards have a live session, a few messages each.
        if !sim.wait_for_live_shards(TOTAL as usize, Duration::from_secs(30)) {
            return Err("the shards did not all connect".into());
        }
        for id in 0..TOTAL {
            let shard = ShardId::new(id, TOTAL).expect("in range");
            for n in 0..MESSAGES {
                sim.dispatch_to_shard(shard, "MESSAGE_CREATE", serde_json::json!({ "round": round, "n": n }));
            }
        }
        for worker in &mut workers {
            if !worker.wait()?.success() {
                return Err("a worker failed".into());
            }
        }
        let identifies = sim.identifies().len() - identified_before;
        let resumes = sim.resumes().len() - resumed_before;
        let refused = sim.identify_violations().len();
        println!("round {round}: {identifies} identifies, {resumes} resumes, {refused} identifies refused");
    }

    // The session keys expire by themselves; tidy up anyway.
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut redis).await?;
    if !keys.is_empty() {
        let () = redis::cmd("DEL").arg(keys).query_async(&mut redis).await?;
    }
    Ok(())
}

/// One process: shards `first..first + PER_WORKER`, the shared queue and
/// store, until each shard has its messages; then a graceful shutdown.
async fn worker(first: u32, redis_url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let gateway = std::env::var("DGS_GATEWAY")?;
    let prefix = std::env::var("DGS_PREFIX")?;
    // A connection manager reconnects by itself; clones share it.
    let redis = redis::Client::open(redis_url)?.get_connection_manager().await?;
    let limits = IdentifyLimits::new(MAX_CONCURRENCY).with_window(WINDOW);
    let queue = RedisIdentifyQueue::new(redis.clone(), format!("{prefix}:identify"), limits);
    let store = RedisSessionStore::new(redis, format!("{prefix}:sessions"));

    let config = Config::new("simulated-token", Intents::GUILDS | Intents::GUILD_MESSAGES)
        .base_url(gateway)
        // The simulator heartbeats every 500 ms; Discord's floor is 10 s.
        .min_heartbeat_interval(Duration::from_millis(500));
    let mut group = ShardGroup::builder(config, TOTAL)
        .shards(first..first + PER_WORKER)
        .identify_queue(queue)
        .session_store(store)
        .spawn_drivers(|driver| {
            tokio::spawn(driver);
        })
        .build()?;

    let mut messages: BTreeMap<u32, usize> = BTreeMap::new();
    while let Some(item) = group.next().await {
        let dispatch = item?;
        println!("worker {first}: shard {} seq {} {}", dispatch.shard().id, dispatch.seq(), dispatch.event());
        if dispatch.event() == "MESSAGE_CREATE" {
            *messages.entry(dispatch.shard().id).or_default() += 1;
        }
        if messages.len() == PER_WORKER as usize && messages.values().all(|&n| n == MESSAGES) {
            break;
        }
    }
    // Closes with 4000: the sessions stay resumable, and each shard's final
    // session is saved to Redis once what it had received is handled.
    for handle in group.handles() {
        assert!(handle.status() == Status::Active);
    }
    group.shutdown().await;
    while group.next().await.is_some() {}
    Ok(())
}
