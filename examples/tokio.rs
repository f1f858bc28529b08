//! A tokio bot that survives restarts: a `ShardGroup` on tokio (the `tokio`
//! feature: no connector to write, no compat layer), drivers spawned as
//! tokio tasks, sessions checkpointed to a directory, and a graceful
//! shutdown on Ctrl-C that hands every session to the next start.
//!
//! ```text
//! cargo run --example tokio --features tokio            # against the built-in simulator
//! DISCORD_TOKEN=... SHARDS=2 cargo run --example tokio --features tokio
//! ```
//!
//! With a token it runs until Ctrl-C, then closes every shard with 4000
//! (the session stays resumable), handles what was already received and
//! exits; started again within a few minutes, every shard resumes from the
//! session store instead of identifying. Without a token it shows the same
//! on the built-in simulator in one process: a first run that "receives
//! Ctrl-C" after 10 dispatches, then a second run that resumes every shard
//! with zero Identifies and gets the dispatches sent in between.

use std::path::PathBuf;
use std::time::Duration;

use discord_gateway_stream::store::FileSessionStore;
use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::{Config, Intents, ShardGroup, ShardId, Status};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sessions = std::env::var_os("SESSION_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("dgs-tokio-example-{}", std::process::id())));
    match std::env::var("DISCORD_TOKEN") {
        Ok(token) => {
            let shards = std::env::var("SHARDS").ok().and_then(|n| n.parse().ok()).unwrap_or(1);
            run(Config::new(token, Intents::GUILDS | Intents::GUILD_MESSAGES), shards, &sessions, None).await?;
        }
        Err(_) => {
            let sim = Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(500)))?;
            let config = Config::new("simulated-token", Intents::GUILDS | Intents::GUILD_MESSAGES)
                .base_url(sim.url())
                // The simulator heartbeats every 500 ms; Discord's floor is 10 s.
                .min_heartbeat_interval(Duration::from_millis(500));
            println!("first run");
            run(config.clone(), 2, &sessions, Some(&sim)).await?;
            // Dispatches sent while no process runs: the resume replays them.
            for id in 0..2 {
                let shard = ShardId::new(id, 2).expect("in range");
                sim.dispatch_to_shard(shard, "MESSAGE_CREATE", serde_json::json!({ "while": "restarting" }));
            }
            println!("second run");
            run(config, 2, &sessions, Some(&sim)).await?;
            let _ = std::fs::remove_dir_all(&sessions);
        }
    }
    Ok(())
}

/// Streams until Ctrl-C (or, on the simulator, 10 dispatches), then shuts
/// the group down so the sessions are saved for the next start.
async fn run(
    config: Config,
    shards: u32,
    sessions: &std::path::Path,
    sim: Option<&Simulator>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut group = ShardGroup::builder(config, shards)
        // A crash keeps the last checkpoint (every 2 s); a graceful
        // shutdown saves each shard's final session.
        .session_store(FileSessionStore::new(sessions)?)
        // Heartbeats keep going on tokio tasks while this task is busy.
        .spawn_drivers(|driver| {
            tokio::spawn(driver);
        })
        .build()?;
    if let Some(sim) = sim {
        // Once every shard is Active (READY or RESUMED), five messages each.
        for handle in group.handles() {
            tokio::time::timeout(Duration::from_secs(10), handle.wait_for_status(|s| *s == Status::Active)).await?;
            for n in 0..5 {
                sim.dispatch_to_shard(handle.id(), "MESSAGE_CREATE", serde_json::json!({ "n": n }));
            }
        }
    }

    let mut messages = 0;
    loop {
        let ctrl_c = async {
            if sim.is_some() && messages == 5 * shards {
                return; // the simulated Ctrl-C
            }
            if sim.is_some() || tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            item = group.next() => match item {
                Some(Ok(dispatch)) => {
                    println!("{} {} {} {}", dispatch.shard().id, dispatch.seq(), dispatch.event(), summary(&dispatch));
                    messages += u32::from(dispatch.data().starts_with(r#"{"n":"#));
                }
                Some(Err(error)) => eprintln!("shard {} stopped: {}", error.shard, error.error),
                None => return Ok(()),
            },
            () = ctrl_c => break,
        }
    }

    let (mut identifies, mut resumes) = (0, 0);
    for handle in group.handles() {
        let stats = handle.stats();
        identifies += stats.identifies;
        resumes += stats.resumes;
    }
    // Every shard closes with 4000, which keeps its session resumable; what
    // the group had already received is still handed out below, and each
    // shard's final session is saved once it has been.
    let closed = group.shutdown().await;
    while let Some(item) = group.next().await {
        if let Ok(dispatch) = item {
            let (shard, seq, event) = (dispatch.shard().id, dispatch.seq(), dispatch.event());
            println!("{shard} {seq} {event} {} (after shutdown)", summary(&dispatch));
        }
    }
    println!("shut down: {} sessions saved, {identifies} identifies, {resumes} resumes", closed.len());
    Ok(())
}

/// `d` itself when short, else its length.
fn summary(dispatch: &discord_gateway_stream::Dispatch) -> String {
    let d = dispatch.data();
    if d.len() <= 40 {
        d.to_owned()
    } else {
        format!("({} bytes)", d.len())
    }
}
