//! discord-gateway-stream clients (each runs in its own child process), shared
//! by `compare` and `ours-stock` through `#[path]`.

use std::hint::black_box;

use discord_gateway_stream::transport::Target;
use discord_gateway_stream::{Compression, Config, Intents, Shard};
use futures::StreamExt;
use tokio_util::compat::TokioAsyncReadCompatExt;
use twilight_model::gateway::payload::incoming::MessageCreate;

use crate::compression::Codec;
use crate::report::{ClientArgs, Meter};

fn config(args: &ClientArgs) -> Config {
    let compression = match args.codec {
        Codec::Zlib => Compression::ZlibStream,
        Codec::Zstd => Compression::ZstdStream,
        Codec::None => Compression::None,
    };
    Config::new("bench", Intents::GUILDS).base_url(format!("ws://127.0.0.1:{}", args.port)).compression(compression)
}

/// Every dispatch, as the stream hands it over: `t`, `s` and the span of `d`.
async fn consume(shard: &mut Shard, expect: u64, how: &str) -> ! {
    let mut meter = Meter::new(expect);
    while let Some(item) = shard.next().await {
        let dispatch = item.expect("fatal close");
        black_box(dispatch.event());
        black_box(dispatch.seq());
        if meter.dispatch(dispatch.data().len()) {
            meter.finish(how);
        }
    }
    panic!("shard stream ended");
}

/// MESSAGE_CREATE only, deserialized into twilight-model's `MessageCreate`.
async fn consume_typed(shard: &mut Shard, expect: u64, how: &str) -> ! {
    let mut meter = Meter::new(expect);
    while let Some(item) = shard.next().await {
        let dispatch = item.expect("fatal close");
        if dispatch.event() != "MESSAGE_CREATE" {
            continue;
        }
        let message: MessageCreate = dispatch.deserialize().expect("MESSAGE_CREATE as twilight-model MessageCreate");
        if meter.dispatch(black_box(&message).content.len()) {
            meter.finish(how);
        }
    }
    panic!("shard stream ended");
}

/// A shard for a tokio current_thread runtime, tokio TcpStream through
/// tokio-util compat, driver spawned as a task (examples/tokio.rs); the
/// driver runs while the caller blocks on its consumer.
fn on_tokio(config: Config) -> (tokio::runtime::Runtime, Shard) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let connector = |target: Target| async move {
        let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await?;
        tcp.set_nodelay(true)?;
        Ok(tcp.compat())
    };
    let mut shard = Shard::with_connector(config, connector).expect("shard");
    runtime.spawn(shard.take_driver().expect("driver"));
    (runtime, shard)
}

pub fn run_tokio(args: &ClientArgs) -> ! {
    let (runtime, mut shard) = on_tokio(config(args));
    runtime.block_on(consume(&mut shard, args.expect, "Shard stream, driver spawned on tokio current_thread"))
}

/// As `run_tokio`, validating every payload in full (`Config::validate_payloads(true)`).
pub fn run_strict(args: &ClientArgs) -> ! {
    let (runtime, mut shard) = on_tokio(config(args).validate_payloads(true));
    runtime.block_on(consume(&mut shard, args.expect, "Shard stream, driver spawned, validate_payloads(true)"))
}

pub fn run_typed(args: &ClientArgs) -> ! {
    // Like twilight's `EventTypeFlags`, the filter drops other events in the
    // core, before a dispatch is built.
    let (runtime, mut shard) = on_tokio(config(args).events(["MESSAGE_CREATE"]));
    runtime.block_on(consume_typed(
        &mut shard,
        args.expect,
        "Shard stream (tokio, driver spawned), `Config::events([\"MESSAGE_CREATE\"])`, `deserialize::<MessageCreate>()`",
    ))
}

/// The default connector (async-io TCP), not spawned: polling the stream
/// drives the connection, all on the thread in `async_io::block_on`.
pub fn run_async_std(args: &ClientArgs) -> ! {
    let mut shard = Shard::new(config(args)).expect("shard");
    async_io::block_on(consume(&mut shard, args.expect, "Shard stream driving itself, async_io::block_on"))
}

/// `client ours-tokio|ours-async-std|ours-typed|ours-strict ...`.
pub fn run_kind(args: &ClientArgs) -> ! {
    match args.kind.as_str() {
        "ours-tokio" => run_tokio(args),
        "ours-async-std" => run_async_std(args),
        "ours-typed" => run_typed(args),
        "ours-strict" => run_strict(args),
        other => panic!("unknown ours client {other}"),
    }
}
