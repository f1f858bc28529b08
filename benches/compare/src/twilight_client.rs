//! The twilight-gateway client (shared with `twilight-stock`).
//!
//! Consumed at its cheapest: the shard's `Stream` of raw `Message`s (no
//! `next_event`, so no twilight-model deserialization); an opcode-0 dispatch
//! is recognized by finding `"op":0` in the first bytes of the text, which is
//! where Discord (and our replay server) put it.

use futures::StreamExt;
use twilight_gateway::{ConfigBuilder, Intents, Message, Shard, ShardId};

use crate::report::{ClientArgs, Meter};

/// Cheap opcode-0 check on a raw gateway payload.
#[inline]
fn is_dispatch(text: &str) -> bool {
    let head = &text.as_bytes()[..text.len().min(96)];
    memchr::memmem::find(head, br#""op":0"#).is_some()
}

pub fn run(args: &ClientArgs) -> ! {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async {
        // twilight chooses compression at compile time: with its `zlib` feature it
        // always asks for `compress=zlib-stream`; for the uncompressed runs the
        // server sends text frames anyway, which twilight reads exactly as a
        // build without compression does (binary frames only go to the inflater).
        let config = ConfigBuilder::new("bench".to_owned(), Intents::GUILDS)
            .proxy_url(format!("ws://127.0.0.1:{}", args.port))
            .build();
        let mut shard = Shard::with_config(ShardId::ONE, config);
        let mut meter = Meter::new(args.expect);
        while let Some(item) = shard.next().await {
            match item {
                Ok(Message::Text(text)) => {
                    if is_dispatch(&text) && meter.dispatch(text.len()) {
                        meter.finish("Stream<Item = Message>, Message::Text + \"op\":0 check");
                    }
                }
                Ok(Message::Close(frame)) => panic!("twilight: closed {frame:?}"),
                Err(error) => panic!("twilight: {error}"),
            }
        }
        panic!("twilight: stream ended");
    })
}
