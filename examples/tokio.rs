//! Running a shard on tokio: a connector built from tokio's `TcpStream`
//! through tokio-util's compat layer, and the driver spawned as a tokio task
//! so heartbeats keep going while the consumer is busy.
//!
//! ```text
//! cargo run --example tokio            # against the built-in simulator
//! DISCORD_TOKEN=... cargo run --example tokio
//! ```

use std::time::Duration;

use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::transport::Target;
use discord_gateway_stream::{CloseMode, Config, Intents, Shard};
use futures::StreamExt;
use tokio_util::compat::TokioAsyncReadCompatExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (token, url, simulator) = match std::env::var("DISCORD_TOKEN") {
        Ok(token) => (token, discord_gateway_stream::protocol::DEFAULT_GATEWAY_URL.to_owned(), None),
        Err(_) => {
            let sim = Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(500)))?;
            ("simulated-token".to_owned(), sim.url(), Some(sim))
        }
    };

    // Any futures-io stream works; tokio's needs the compat adapter. The TCP
    // settings are the default connector's: no Nagle delay, and keepalive
    // probes after 60 s of silence, every 10 s, to find a vanished peer.
    let connector = |target: Target| async move {
        let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await?;
        tcp.set_nodelay(true)?;
        let keepalive =
            socket2::TcpKeepalive::new().with_time(Duration::from_secs(60)).with_interval(Duration::from_secs(10));
        socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive)?;
        Ok(tcp.compat())
    };
    let mut config = Config::new(token, Intents::GUILDS | Intents::GUILD_MESSAGES).base_url(url);
    if simulator.is_some() {
        // The simulator heartbeats every 500 ms; Discord's floor is 10 s.
        config = config.min_heartbeat_interval(Duration::from_millis(500));
    }
    let mut shard = Shard::with_connector(config, connector)?;
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
