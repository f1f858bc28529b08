//! twilight-gateway with 1,000 shards in one process (shared with the
//! `twilight-heap` package, which builds it with the `zlib` feature, the
//! `zstd` feature or neither).
//!
//! The way twilight's examples run many shards: one `Config` cloned into
//! every `Shard::with_config`, each shard consumed in its own tokio task (a
//! current_thread runtime, like the other clients), as its cheapest
//! `Stream` of raw `Message`s (no `next_event`, so no twilight-model
//! deserialization). Identify pacing is off (`InMemoryQueue` with
//! `max_concurrency` 0), as the server does not rate-limit Identify either.

use futures::StreamExt;
use twilight_gateway::queue::InMemoryQueue;
use twilight_gateway::{ConfigBuilder, Intents, Message, Shard, ShardId};

use super::alloc;
use super::child::{self, ChildArgs, Counter};

/// Cheap opcode-0 check on a raw gateway payload (`"op":0` sits in the
/// first bytes of every payload the server sends).
#[inline]
fn is_dispatch(text: &str) -> bool {
    let head = &text.as_bytes()[..text.len().min(96)];
    head.windows(6).any(|w| w == br#""op":0"#)
}

pub fn run(args: &ChildArgs) -> ! {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let (shards, burst) = (args.shards, args.burst);
    runtime.block_on(async {
        // Built once, cloned per shard (as `twilight_gateway::create_iterator` does).
        let config = ConfigBuilder::new("bench".to_owned(), Intents::GUILDS)
            .proxy_url(format!("ws://127.0.0.1:{}", args.port))
            .queue(InMemoryQueue::new(0, 1_000_000, std::time::Duration::from_secs(86_400), 1_000_000))
            .build();
        // Let the replaced default queue's runner task see its channel close.
        tokio::task::yield_now().await;
        let baseline = alloc::live();
        let (open, gates) = child::gates(shards);
        for (id, gate) in gates.into_iter().enumerate() {
            let config = config.clone();
            tokio::spawn(async move {
                if gate.await.is_err() {
                    return;
                }
                let mut shard = Shard::with_config(ShardId::new(id as u32, shards), config);
                let mut counter = Counter::new(burst);
                while let Some(item) = shard.next().await {
                    match item {
                        Ok(Message::Text(text)) => {
                            if is_dispatch(&text) {
                                counter.dispatch();
                            }
                        }
                        Ok(Message::Close(frame)) => return child::failed(&format!("twilight {id}: closed {frame:?}")),
                        Err(error) => return child::failed(&format!("twilight {id}: {error}")),
                    }
                }
                child::failed(&format!("twilight {id}: stream ended"));
            });
        }
        child::start_controller(args, open, baseline);
        std::future::pending::<()>().await;
    });
    unreachable!("the controller ends the process")
}
