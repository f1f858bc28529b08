//! Typed events with twilight-model: the shard delivers only the events you
//! name, and you deserialize `Dispatch::data()` into the model you already
//! use. The crate has no event model of its own; any serde type works.
//!
//! ```text
//! cargo run --example typed            # against the built-in simulator
//! DISCORD_TOKEN=... cargo run --example typed
//! ```
//!
//! Against the simulator it prints the five scripted messages and exits.

use std::time::Duration;

use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::{CloseMode, Config, Intents, Shard};
use futures::StreamExt;
use twilight_model::gateway::payload::incoming::MessageCreate;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (token, url, simulator) = match std::env::var("DISCORD_TOKEN") {
        Ok(token) => (token, discord_gateway_stream::protocol::DEFAULT_GATEWAY_URL.to_owned(), None),
        Err(_) => {
            let sim = Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(500)))?;
            ("simulated-token".to_owned(), sim.url(), Some(sim))
        }
    };

    // Message content also needs the privileged `MESSAGE_CONTENT` intent,
    // enabled for the bot in the developer portal.
    let intents = Intents::GUILDS | Intents::GUILD_MESSAGES;
    // Only MESSAGE_CREATE reaches the stream; READY, RESUMED and sequence
    // tracking are handled inside whatever the filter says.
    let mut config = Config::new(token, intents).base_url(url).events(["MESSAGE_CREATE"]);
    if simulator.is_some() {
        // The simulator heartbeats every 500 ms; Discord's floor is 10 s.
        config = config.min_heartbeat_interval(Duration::from_millis(500));
    }
    let mut shard = Shard::new(config)?;
    // The driver on its own thread keeps heartbeating whatever the consumer does.
    if let Some(driver) = shard.take_driver() {
        std::thread::spawn(move || async_io::block_on(driver));
    }

    if let Some(sim) = &simulator {
        sim.wait_for_live_shards(1, Duration::from_secs(10));
        // Other events are filtered out before they are handed over.
        sim.dispatch("TYPING_START", serde_json::json!({ "channel_id": "1", "user_id": "2", "timestamp": 0 }));
        sim.dispatch_many((0..5).map(|n| ("MESSAGE_CREATE", message(n))));
    }

    let mut seen = 0;
    while let Some(item) = async_io::block_on(shard.next()) {
        let dispatch = item?;
        let message: MessageCreate = dispatch.deserialize()?;
        println!("#{} {}: {}", dispatch.seq(), message.author.name, message.content);
        seen += 1;
        if simulator.is_some() && seen == 5 {
            break;
        }
    }
    async_io::block_on(shard.close(CloseMode::Final));
    Ok(())
}

/// A MESSAGE_CREATE `d` as Discord sends it (the fields twilight-model
/// requires, with realistic values).
fn message(n: u64) -> serde_json::Value {
    serde_json::json!({
        "type": 0,
        "tts": false,
        "timestamp": "2026-11-29T12:00:00.000000+00:00",
        "pinned": false,
        "mentions": [],
        "mention_roles": [],
        "mention_everyone": false,
        "id": (1_300_000_000_000_000_000_u64 + n).to_string(),
        "flags": 0,
        "embeds": [],
        "edited_timestamp": null,
        "content": format!("hello number {n}"),
        "components": [],
        "channel_id": "1300000000000000100",
        "author": {
            "id": "1300000000000000200",
            "username": "ferris",
            "discriminator": "0",
            "global_name": "Ferris",
            "avatar": null,
        },
        "attachments": [],
        "guild_id": "1300000000000000300",
    })
}
