//! A `ShardGroup` end to end against the built-in simulator, no token
//! needed: 8 shards identify paced by their buckets, guild events arrive
//! tagged with their shard, one shard is restarted (it resumes), and the
//! group hands its sessions to a second group that resumes all of them
//! without an Identify: a zero-downtime deploy in miniature.
//!
//! ```text
//! cargo run --example sharded
//! ```

use std::time::{Duration, Instant};

use discord_gateway_stream::identify::{IdentifyLimits, LocalIdentifyQueue};
use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::{Config, Intents, ShardGroup, ShardId, ShardSession};
use futures::StreamExt;
use serde_json::json;

const TOTAL: u32 = 8;
const MAX_CONCURRENCY: u32 = 4;
/// Discord's window is 5 s; the simulator enforces whatever it is told.
const WINDOW: Duration = Duration::from_millis(250);

/// Reads the group until `count` dispatches named `event` have arrived.
async fn until(group: &mut ShardGroup, event: &str, count: usize) {
    let mut seen = 0;
    while seen < count {
        match group.next().await {
            Some(Ok(dispatch)) => {
                println!("{} {:>3} {} {}", dispatch.shard(), dispatch.seq(), dispatch.event(), dispatch.data().len());
                seen += usize::from(dispatch.event() == event);
            }
            Some(Err(stopped)) => eprintln!("{stopped}"),
            None => return,
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = Simulator::start(
        SimulatorConfig::new()
            .heartbeat_interval(Duration::from_secs(5))
            .max_concurrency(MAX_CONCURRENCY)
            .identify_window(WINDOW),
    )?;
    // The simulator heartbeats every 5 s; Discord's floor is 10 s.
    let config = Config::new("simulated-token", Intents::GUILDS)
        .base_url(sim.url())
        .min_heartbeat_interval(Duration::from_secs(5));
    let queue = LocalIdentifyQueue::new(IdentifyLimits::new(MAX_CONCURRENCY).with_window(WINDOW));
    let started = Instant::now();
    let mut group = ShardGroup::builder(config.clone(), TOTAL).identify_queue(queue.clone()).build()?;

    async_io::block_on(async {
        until(&mut group, "READY", TOTAL as usize).await;
        eprintln!("# {TOTAL} shards READY in {:.2?} ({MAX_CONCURRENCY} buckets, {WINDOW:?} window)", started.elapsed());

        for guild in 0..16u64 {
            sim.dispatch_guild(guild << 22, "MESSAGE_CREATE", json!({ "guild_id": (guild << 22).to_string() }));
        }
        until(&mut group, "MESSAGE_CREATE", 16).await;

        let three = ShardId::new(3, TOTAL).ok_or("shard id")?;
        group.restart(three).await?;
        until(&mut group, "RESUMED", 1).await;
        eprintln!("# shard {three} restarted and resumed");

        let sessions: Vec<ShardSession> = group.shutdown().await;
        while let Some(item) = group.next().await {
            item?; // what the shards had already received
        }
        let saved = serde_json::to_string(&sessions)?;
        eprintln!("# shut down; {} sessions saved ({} bytes of JSON)", sessions.len(), saved.len());

        let restored: Vec<ShardSession> = serde_json::from_str(&saved)?;
        let mut next = ShardGroup::builder(config, TOTAL).identify_queue(queue).resume(restored).build()?;
        until(&mut next, "RESUMED", TOTAL as usize).await;
        let identifies = sim.identifies().len();
        if identifies != TOTAL as usize {
            return Err(format!("expected {TOTAL} Identifies, the simulator saw {identifies}").into());
        }
        eprintln!(
            "# a new group resumed all {TOTAL} shards; Identifies in total: {identifies}, none after the handover"
        );
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
