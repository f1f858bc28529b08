//! discord-gateway-stream clients (each runs in its own child process).

use discord_gateway_stream::transport::Target;
use discord_gateway_stream::{Compression, Config, Intents, Shard};
use futures::StreamExt;
use tokio_util::compat::TokioAsyncReadCompatExt;

use crate::report::{ClientArgs, Meter};

fn config(args: &ClientArgs) -> Config {
    Config::new("bench", Intents::GUILDS).base_url(format!("ws://127.0.0.1:{}", args.port)).compression(if args.zlib {
        Compression::ZlibStream
    } else {
        Compression::None
    })
}

async fn consume(shard: &mut Shard, expect: u64, how: &str) -> ! {
    let mut meter = Meter::new(expect);
    while let Some(item) = shard.next().await {
        let dispatch = item.expect("fatal close");
        if meter.dispatch(dispatch.data().len()) {
            meter.finish(how);
        }
    }
    panic!("shard stream ended");
}

/// tokio current_thread runtime, tokio TcpStream through tokio-util compat,
/// driver spawned as a task (examples/tokio.rs).
pub fn run_tokio(args: &ClientArgs) -> ! {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async {
        let connector = |target: Target| async move {
            let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await?;
            tcp.set_nodelay(true)?;
            Ok(tcp.compat())
        };
        let mut shard = Shard::with_connector(config(args), connector).expect("shard");
        tokio::spawn(shard.take_driver().expect("driver"));
        consume(&mut shard, args.expect, "Shard stream, driver spawned on tokio current_thread").await
    })
}

/// The default connector (async-std TCP), not spawned: polling the stream
/// drives the connection, all on the thread in `async_io::block_on`.
pub fn run_async_std(args: &ClientArgs) -> ! {
    let mut shard = Shard::new(config(args)).expect("shard");
    async_io::block_on(consume(&mut shard, args.expect, "Shard stream driving itself, async_io::block_on"))
}
