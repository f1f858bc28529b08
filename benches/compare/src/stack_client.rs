//! The least a client on our WebSocket stack does (`client stack`): the
//! `Shard`'s transport without the `Shard`. async-tungstenite over tokio's
//! `TcpStream` through tokio-util compat, with the shard's `WebSocketConfig`,
//! on a current_thread runtime, all in one task; each binary message goes
//! through the row's decompressor into one reused buffer (our `Inflater` for
//! zlib-stream, the limit row's zstd `DCtx` for zstd-stream), is checked as
//! UTF-8 and counted when `"op":0` is in its head: twilight's minimal
//! consumer, on our stack. No envelope, no `Dispatch`, no copy, no hand-off
//! between tasks, no heartbeats (the replay ends long before one is due).
//!
//! Ours against this row is what the crate adds to its transport; this row
//! against decompression alone is what the transport costs.

use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::Message;
use futures::StreamExt;
use tokio_util::compat::TokioAsyncReadCompatExt;

use crate::compression::Codec;
use crate::report::{ClientArgs, Meter};
use crate::twilight_client::is_dispatch;
use crate::Decoder;

pub fn run(args: &ClientArgs) -> ! {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", args.port)).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let compress = match args.codec {
            Codec::Zlib => "&compress=zlib-stream",
            Codec::Zstd => "&compress=zstd-stream",
            Codec::None => "",
        };
        let url = format!("ws://127.0.0.1:{}/?v=10&encoding=json{compress}", args.port);
        // As `Shard` configures it (src/shard.rs).
        let config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(discord_gateway_stream::protocol::DEFAULT_MAX_MESSAGE_SIZE))
            .max_frame_size(Some(discord_gateway_stream::protocol::DEFAULT_MAX_MESSAGE_SIZE));
        let (mut ws, _) = async_tungstenite::client_async_with_config(url, tcp.compat(), Some(config))
            .await
            .expect("WebSocket handshake");
        ws.send(Message::text(r#"{"op":2,"d":{"token":"bench","properties":{},"intents":1}}"#))
            .await
            .expect("identify");
        let mut decoder = Decoder::new(args.codec);
        let mut meter = Meter::new(args.expect);
        while let Some(message) = ws.next().await {
            let counted = match message.expect("read") {
                Message::Text(text) => is_dispatch(text.as_str()).then_some(text.len()),
                Message::Binary(bytes) => {
                    let decoder = decoder.as_mut().expect("binary message on an uncompressed row");
                    decoder.payload(&bytes).and_then(|payload| {
                        let text = std::str::from_utf8(payload).expect("UTF-8 payload");
                        is_dispatch(text).then_some(text.len())
                    })
                }
                Message::Close(frame) => panic!("stack: closed {frame:?}"),
                _ => None,
            };
            if let Some(len) = counted {
                if meter.dispatch(len) {
                    meter.finish("async-tungstenite + decompression into one buffer, one task");
                }
            }
        }
        panic!("stack: stream ended");
    })
}
