//! The twilight-gateway clients (shared with `twilight-stock`), one per way
//! of consuming the shard:
//!
//! - **minimal** (`run`): the cheapest, the shard's `Stream` of raw
//!   `Message`s (no `next_event`, so no twilight-model deserialization); an
//!   opcode-0 dispatch is recognized by finding `"op":0` in the first bytes
//!   of the text, which is where Discord (and our replay server) put it.
//! - **equivalent output** (`run_equivalent`): what a twilight user writes to
//!   get what our `Dispatch` gives: `op`/`s`/`t` from twilight-model's
//!   `GatewayEventDeserializer` (the scan twilight itself uses), and `d` as a
//!   serde_json `&RawValue` span, for opcode-0 payloads only.
//! - **typed** (`run_typed`): `next_event(EventTypeFlags::MESSAGE_CREATE)`
//!   into `Event::MessageCreate`; twilight skips the other event types before
//!   deserializing them.

use std::hint::black_box;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use twilight_gateway::{ConfigBuilder, Event, EventTypeFlags, Intents, Message, Shard, ShardId, StreamExt as _};
use twilight_model::gateway::event::GatewayEventDeserializer;

use crate::report::{ClientArgs, Meter};

/// Cheap opcode-0 check on a raw gateway payload.
#[inline]
pub fn is_dispatch(text: &str) -> bool {
    let head = &text.as_bytes()[..text.len().min(96)];
    memchr::memmem::find(head, br#""op":0"#).is_some()
}

/// The payload's `d`, borrowed from the text (the other fields are skipped).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    d: &'a RawValue,
}

fn on_tokio(args: &ClientArgs) -> (tokio::runtime::Runtime, Shard) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    // twilight chooses compression at compile time: with its `zlib` feature it
    // always asks for `compress=zlib-stream`, with `zstd` (which wins if both
    // are on) for `compress=zstd-stream`. The zstd rows run a `zstd` build;
    // for the uncompressed runs the server sends a `zlib` build text frames
    // anyway, which twilight reads exactly as a build without compression
    // does (binary frames only go to the decompressor).
    let shard = {
        // The config's default identify queue spawns its task right away.
        let _in_runtime = runtime.enter();
        let url = format!("ws://127.0.0.1:{}", args.port);
        Shard::with_config(ShardId::ONE, ConfigBuilder::new("bench".to_owned(), Intents::GUILDS).proxy_url(url).build())
    };
    (runtime, shard)
}

/// Feeds every text message to `count`, which returns the bytes to meter
/// for a dispatch (`None` for anything else), until all expected arrived.
fn consume_text(args: &ClientArgs, how: &str, mut count: impl FnMut(&str) -> Option<usize>) -> ! {
    let (runtime, mut shard) = on_tokio(args);
    runtime.block_on(async {
        let mut meter = Meter::new(args.expect);
        while let Some(item) = shard.next().await {
            match item {
                Ok(Message::Text(text)) => {
                    if let Some(len) = count(&text) {
                        if meter.dispatch(len) {
                            meter.finish(how);
                        }
                    }
                }
                Ok(Message::Close(frame)) => panic!("twilight: closed {frame:?}"),
                Err(error) => panic!("twilight: {error}"),
            }
        }
        panic!("twilight: stream ended");
    })
}

pub fn run(args: &ClientArgs) -> ! {
    consume_text(args, "Stream<Item = Message>, Message::Text + \"op\":0 check", |text| {
        is_dispatch(text).then_some(text.len())
    })
}

pub fn run_equivalent(args: &ClientArgs) -> ! {
    let how = "Stream<Item = Message>, GatewayEventDeserializer::from_json (op/s/t) + serde_json &RawValue d";
    consume_text(args, how, |text| {
        let gateway = GatewayEventDeserializer::from_json(text).expect("twilight: no op in payload");
        if black_box(gateway.op()) != 0 {
            return None;
        }
        black_box(gateway.sequence());
        black_box(gateway.event_type());
        let envelope: Envelope = serde_json::from_str(text).expect("twilight: payload with a valid d");
        Some(envelope.d.get().len())
    })
}

pub fn run_typed(args: &ClientArgs) -> ! {
    let (runtime, mut shard) = on_tokio(args);
    runtime.block_on(async {
        let mut meter = Meter::new(args.expect);
        while let Some(item) = shard.next_event(EventTypeFlags::MESSAGE_CREATE).await {
            match item {
                Ok(Event::MessageCreate(message)) => {
                    if meter.dispatch(black_box(&message).content.len()) {
                        meter.finish("next_event(EventTypeFlags::MESSAGE_CREATE), Event::MessageCreate");
                    }
                }
                Ok(Event::GatewayClose(frame)) => panic!("twilight: closed {frame:?}"),
                Ok(other) => panic!("twilight: unexpected {:?}", other.kind()),
                Err(error) => panic!("twilight: {error}"),
            }
        }
        panic!("twilight: stream ended");
    })
}

/// Runs the twilight client `kind` names (`twilight`, `twilight-equivalent`
/// or `twilight-typed`).
pub fn run_kind(args: &ClientArgs) -> ! {
    match args.kind.as_str() {
        "twilight" => run(args),
        "twilight-equivalent" => run_equivalent(args),
        "twilight-typed" => run_typed(args),
        other => panic!("unknown twilight client {other}"),
    }
}
