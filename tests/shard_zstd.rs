//! The real `Shard` and `ShardGroup` on zstd-stream against the simulator's
//! own zstd compressor (docs/compression.md): streaming, a dropped
//! connection resumed with an exact replay, a corrupt frame, an oversized
//! payload, and a group of shards.
#![cfg(all(feature = "testing", feature = "async-std", feature = "zstd"))]

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

mod support;

use discord_gateway_stream::identify::IdentifyLimits;
use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::{
    shard_for_guild, Compression, Config, Dispatch, Intents, LocalIdentifyQueue, Shard, ShardError, ShardGroup,
};
use futures::StreamExt;
use serde_json::json;
use support::client::sim_config;

const WAIT: Duration = Duration::from_secs(20);

fn simulator() -> Simulator {
    Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(400))).expect("simulator starts")
}

fn config(sim: &Simulator) -> Config {
    sim_config(sim.url(), Intents::GUILDS | Intents::GUILD_MESSAGES).compression(Compression::ZstdStream).rng_seed(7)
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    async_io::block_on(future)
}

async fn next_dispatch(shard: &mut Shard) -> Dispatch {
    let timeout = async_io::Timer::after(WAIT);
    let item: Option<Result<Dispatch, ShardError>> = futures::select! {
        item = shard.next() => item,
        _ = futures::FutureExt::fuse(timeout) => panic!("no stream item within {WAIT:?}"),
    };
    item.expect("stream ended").expect("no error")
}

/// Reads until `count` MESSAGE_CREATEs arrived; returns everything read.
async fn collect_messages(shard: &mut Shard, count: usize) -> Vec<Dispatch> {
    let mut all = Vec::new();
    while all.iter().filter(|d: &&Dispatch| d.event() == "MESSAGE_CREATE").count() < count {
        all.push(next_dispatch(shard).await);
    }
    all
}

fn message_seqs(dispatches: &[Dispatch]) -> Vec<u64> {
    dispatches.iter().filter(|d| d.event() == "MESSAGE_CREATE").map(|d| d.seq()).collect()
}

#[test]
fn identify_ready_and_dispatches_in_order_exactly_once_over_zstd_stream() {
    let sim = simulator();
    let mut shard = Shard::new(config(&sim)).unwrap();
    block_on(async {
        let ready = next_dispatch(&mut shard).await;
        assert_eq!((ready.event(), ready.seq()), ("READY", 1));
        let big = "g".repeat(400_000);
        sim.dispatch("GUILD_CREATE", json!({ "blob": big }));
        for i in 0..20 {
            sim.dispatch("MESSAGE_CREATE", json!({"content": format!("m{i}"), "n": i}));
        }
        let got = collect_messages(&mut shard, 20).await;
        assert_eq!(got[0].event(), "GUILD_CREATE");
        assert_eq!(got[0].data().len(), r#"{"blob":""}"#.len() + 400_000);
        assert_eq!(message_seqs(&got), (3..23).collect::<Vec<_>>());
        assert_eq!(got[1].data(), r#"{"content":"m0","n":0}"#);
    });
    let record = &sim.connections()[0];
    assert!(record.compressed);
    assert_eq!(record.compress.as_deref(), Some("zstd-stream"));
    assert!(sim.server_frames().iter().all(|f| f.compressed));
}

#[test]
fn network_drop_resumes_on_a_fresh_stream_and_replays_exactly_what_was_missed() {
    let sim = simulator();
    let mut shard = Shard::new(config(&sim)).unwrap();
    block_on(async {
        next_dispatch(&mut shard).await;
        sim.dispatch("MESSAGE_CREATE", json!({"n": 0}));
        let mut seen = collect_messages(&mut shard, 1).await;
        assert!(sim.drop_connection());
        sim.dispatch_many((1..8).map(|i| ("MESSAGE_CREATE", json!({ "n": i }))));
        seen.extend(collect_messages(&mut shard, 7).await);
        while !seen.iter().any(|d| d.event() == "RESUMED") {
            seen.push(next_dispatch(&mut shard).await);
        }
        assert_eq!(message_seqs(&seen), (2..10).collect::<Vec<_>>());
    });
    let connections = sim.connections();
    assert_eq!(connections.len(), 2);
    assert!(connections[1].via_resume_url);
    assert_eq!(connections[1].compress.as_deref(), Some("zstd-stream"), "same query on resume");
    assert_eq!(sim.resumes()[0].d().unwrap()["seq"], 2);
    assert_eq!(sim.identifies().len(), 1);
}

#[test]
fn a_corrupt_frame_resumes_with_a_fresh_decoder() {
    let sim = simulator();
    let mut shard = Shard::new(config(&sim)).unwrap();
    block_on(async {
        next_dispatch(&mut shard).await;
        assert!(sim.send_corrupt_frame());
        sim.dispatch("MESSAGE_CREATE", json!({"after": "corruption"}));
        let seen = collect_messages(&mut shard, 1).await;
        assert_eq!(message_seqs(&seen), [2]);
    });
    assert_eq!(sim.resumes().len(), 1);
    assert_eq!(sim.identifies().len(), 1);
    assert!(sim.server_frames().iter().any(|f| f.text == "<corrupt zstd frame>"));
}

// A payload over `max_message_size` (not a committed dispatch, so the resume
// does not replay it) ends the connection; the shard resumes and loses nothing.
#[test]
fn an_oversized_payload_is_refused_and_the_shard_resumes() {
    let sim = simulator();
    let mut shard = Shard::new(config(&sim).max_message_size(64 * 1024)).unwrap();
    block_on(async {
        next_dispatch(&mut shard).await;
        let big = format!(r#"{{"t":"MESSAGE_CREATE","s":99,"op":0,"d":{{"blob":"{}"}}}}"#, "z".repeat(200_000));
        assert!(sim.send_raw_payload(&big));
        sim.dispatch_many((0..3).map(|i| ("MESSAGE_CREATE", json!({ "n": i }))));
        let seen = collect_messages(&mut shard, 3).await;
        assert_eq!(message_seqs(&seen), [2, 3, 4]);
    });
    assert_eq!(sim.connections().len(), 2);
    assert_eq!(sim.resumes().len(), 1);
    assert_eq!(sim.identifies().len(), 1, "the session was kept");
    // The close frame (4000) can be lost to a TCP reset: the shard drops the
    // socket with dispatches still unread. It must never be 1000.
    assert!(sim.client_closes().iter().all(|c| c.code != Some(1000)));
}

#[test]
fn a_shard_group_on_zstd_streams_every_shard_exactly_once() {
    let sim = Simulator::start(
        SimulatorConfig::new()
            .heartbeat_interval(Duration::from_millis(500))
            .max_concurrency(4)
            .identify_window(Duration::from_millis(300)),
    )
    .expect("simulator starts");
    let queue = LocalIdentifyQueue::new(IdentifyLimits::new(4).with_window(Duration::from_millis(300)));
    let mut group = ShardGroup::builder(config(&sim), 4)
        .identify_queue(queue)
        .spawn_drivers(|driver| {
            async_std::task::spawn(driver);
        })
        .build()
        .expect("group builds");
    let next = |group: &mut ShardGroup| {
        let timeout = async_io::Timer::after(WAIT);
        let item = block_on(futures::future::select(group.next(), timeout));
        match item {
            futures::future::Either::Left((Some(Ok(dispatch)), _)) => dispatch,
            futures::future::Either::Left((other, _)) => panic!("group stream: {other:?}"),
            futures::future::Either::Right(_) => panic!("no group item within {WAIT:?}"),
        }
    };
    let mut waiting: BTreeSet<u32> = (0..4).collect();
    while !waiting.is_empty() {
        let dispatch = next(&mut group);
        if dispatch.event() == "READY" {
            waiting.remove(&dispatch.shard().id);
        }
    }
    let guilds: Vec<u64> = (0..12u64).map(|i| (i * 7 + 3) << 22).collect();
    for guild in &guilds {
        assert_eq!(sim.dispatch_guild(*guild, "MESSAGE_CREATE", json!({ "guild_id": guild.to_string() })).len(), 1);
    }
    let mut seen = Vec::new();
    while seen.len() < guilds.len() {
        let dispatch = next(&mut group);
        if dispatch.event() == "MESSAGE_CREATE" {
            let value: serde_json::Value = dispatch.deserialize().unwrap();
            let guild: u64 = value["guild_id"].as_str().unwrap().parse().unwrap();
            assert_eq!(Some(dispatch.shard()), shard_for_guild(guild, 4));
            seen.push(guild);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, guilds, "each dispatch exactly once");
    let compressed: Vec<Option<String>> = sim.connections().iter().map(|c| c.compress.clone()).collect();
    assert_eq!(compressed, vec![Some("zstd-stream".to_owned()); 4]);
}
