//! discord-gateway-stream with 1,000 shards in one process, two ways.

use discord_gateway_stream::transport::Target;
use discord_gateway_stream::{Compression, Config, Intents, Shard, ShardId};
use futures::channel::oneshot;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio_util::compat::TokioAsyncReadCompatExt;

use super::alloc;
use super::child::{self, ChildArgs, Counter};
use super::compression::Codec;

/// What a shard's config is made of (copied into each shard's task, so the
/// `Config` itself is built only once the shard's gate opens).
#[derive(Clone, Copy)]
struct Setup {
    port: u16,
    compression: Compression,
    shards: u32,
    burst: u64,
}

impl Setup {
    fn new(args: &ChildArgs) -> Setup {
        let compression = match args.codec {
            Codec::Zlib => Compression::ZlibStream,
            Codec::Zstd => Compression::ZstdStream,
            Codec::None => Compression::None,
        };
        Setup { port: args.port, compression, shards: args.shards, burst: args.burst }
    }

    fn config(self, id: u32) -> Config {
        Config::new("bench", Intents::GUILDS)
            .base_url(format!("ws://127.0.0.1:{}", self.port))
            .compression(self.compression)
            .shard(ShardId::new(id, self.shards).expect("shard id below total"))
    }
}

async fn consume(shard: &mut Shard, burst: u64) {
    let mut counter = Counter::new(burst);
    while let Some(item) = shard.next().await {
        match item {
            Ok(_dispatch) => counter.dispatch(),
            Err(error) => return child::failed(&format!("shard {:?}: {error}", shard.id())),
        }
    }
    child::failed(&format!("shard {:?}: stream ended", shard.id()));
}

/// `Shard::new` (the default connector, async-io TCP), nothing spawned: every
/// shard's stream sits in one `FuturesUnordered` polled by
/// `async_io::block_on` on the main thread, and polling a stream drives its
/// connection.
pub fn run_async_std(args: &ChildArgs) -> ! {
    let setup = Setup::new(args);
    let baseline = alloc::live();
    let (open, gates) = child::gates(args.shards);
    let shards: FuturesUnordered<_> = gates
        .into_iter()
        .enumerate()
        .map(|(id, gate): (usize, oneshot::Receiver<()>)| async move {
            if gate.await.is_err() {
                return;
            }
            let mut shard = Shard::new(setup.config(id as u32)).expect("shard");
            consume(&mut shard, setup.burst).await;
        })
        .collect();
    child::start_controller(args, open, baseline);
    async_io::block_on(shards.collect::<Vec<()>>());
    child::failed("every shard ended");
    std::process::exit(1)
}

/// `Shard::with_connector` with tokio's `TcpStream` through tokio-util
/// compat, on a tokio current_thread runtime: per shard, the driver is
/// spawned as one task and the stream is consumed in another.
pub fn run_tokio(args: &ChildArgs) -> ! {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let setup = Setup::new(args);
    runtime.block_on(async {
        let baseline = alloc::live();
        let (open, gates) = child::gates(args.shards);
        for (id, gate) in gates.into_iter().enumerate() {
            tokio::spawn(async move {
                if gate.await.is_err() {
                    return;
                }
                let connector = |target: Target| async move {
                    let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await?;
                    tcp.set_nodelay(true)?;
                    Ok(tcp.compat())
                };
                let mut shard = Shard::with_connector(setup.config(id as u32), connector).expect("shard");
                tokio::spawn(shard.take_driver().expect("driver"));
                consume(&mut shard, setup.burst).await;
            });
        }
        child::start_controller(args, open, baseline);
        std::future::pending::<()>().await;
    });
    unreachable!("the controller ends the process")
}
