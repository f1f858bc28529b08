//! Running a shard on tokio with the `tokio` feature: `Shard::new` connects
//! through tokio's TCP by itself (no connector to write, no compat layer),
//! and the driver is spawned as a tokio task so heartbeats keep going while
//! the consumer is busy.
//!
//! ```text
//! cargo run --example tokio --features tokio            # against the built-in simulator
//! DISCORD_TOKEN=... cargo run --example tokio --features tokio
//! ```

use std::time::Duration;

use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::{CloseMode, Config, Intents, Shard};
use futures::StreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (token, url, simulator) = match std::env::var("DISCORD_TOKEN") {
        Ok(token) => (token, discord_gateway_stream::protocol::DEFAULT_GATEWAY_URL.to_owned(), None),
        Err(_) => {
            let sim = Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(500)))?;
            ("simulated-token".to_owned(), sim.url(), Some(sim))
        }
    };

    let mut config = Config::new(token, Intents::GUILDS | Intents::GUILD_MESSAGES).base_url(url);
    if simulator.is_some() {
        // The simulator heartbeats every 500 ms; Discord's floor is 10 s.
        config = config.min_heartbeat_interval(Duration::from_millis(500));
    }
    // Inside a tokio runtime the default connector opens tokio TCP streams
    // (no Nagle delay, TCP keepalive); `wss://` gets rustls on top.
    let mut shard = Shard::new(config)?;
    if let Some(driver) = shard.take_driver() {
        tokio::spawn(driver);
    }

    let mut seen = 0;
    while let Some(item) = shard.next().await {
        let dispatch = item?;
        println!("{} {} {} {}", dispatch.shard().id, dispatch.seq(), dispatch.event(), dispatch.data().len());
        seen += 1;
        if let Some(sim) = &simulator {
            if seen == 1 {
                sim.dispatch_many((0..5).map(|i| ("MESSAGE_CREATE", serde_json::json!({ "n": i }))));
            }
            if seen == 6 {
                break;
            }
        }
    }
    shard.close(CloseMode::Final).await;
    Ok(())
}
