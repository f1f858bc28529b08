//! Issue 12.10: a gateway that never stops sending must not starve the
//! driver's timers. An in-memory connector plays a gateway whose socket
//! always has another dispatch ready: after Hello (a 100 ms heartbeat
//! interval) and READY it sends MESSAGE_CREATEs without end. The shard
//! must still send its periodic heartbeats on time, while the application
//! reads the flood as fast as it can.
//!
//! With the event buffer unbounded (`max_buffered(usize::MAX, usize::MAX)`)
//! backpressure never pauses the reading, so only the driver's own order
//! gives the timer its turn: with the socket polled before the timer this
//! test sees 0 heartbeats in 1.5 s (tried); with the timer first, about 15.
//!
//! The driver handles the messages the socket has already read in batches
//! (`BATCH_MESSAGES`, `BATCH_BYTES` in src/shard.rs); the second test holds
//! it to serving the handle's command and close under the same flood (an
//! unbounded batch fails both tests; tried).
#![cfg(feature = "testing")]

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use discord_gateway_stream::transport::Target;
use discord_gateway_stream::{Compression, Config, Intents, Shard};
use futures::io::{AsyncRead, AsyncWrite};
use futures::StreamExt;

/// An unmasked server text frame.
fn frame(text: &str) -> Vec<u8> {
    let mut out = vec![0x81];
    let len = text.len();
    if len < 126 {
        out.push(len as u8);
    } else {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
    out.extend_from_slice(text.as_bytes());
    out
}

/// The client's frames (masked, as clients must), decoded from `bytes`
/// after the HTTP upgrade request.
fn client_texts(bytes: &[u8]) -> Vec<String> {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else { return Vec::new() };
    let mut rest = &bytes[end + 4..];
    let mut texts = Vec::new();
    while rest.len() >= 6 {
        let (mut len, mut at) = (usize::from(rest[1] & 0x7f), 2);
        if len == 126 {
            len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            at = 4;
        }
        let Some(mask) = rest.get(at..at + 4) else { break };
        let Some(payload) = rest.get(at + 4..at + 4 + len) else { break };
        let text: Vec<u8> = payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
        texts.push(String::from_utf8_lossy(&text).into_owned());
        rest = &rest[at + 4 + len..];
    }
    texts
}

#[derive(Default)]
struct Wire {
    /// Everything the client wrote, and when each write came.
    written: Vec<u8>,
    writes: Vec<(Instant, usize)>,
}

/// The gateway's end: answers the upgrade, then Hello, READY and an
/// endless flood, always ready to be read.
struct FloodingGateway {
    wire: Arc<Mutex<Wire>>,
    pending: Vec<u8>,
    upgraded: bool,
    seq: u64,
}

impl AsyncRead for FloodingGateway {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if !this.upgraded {
            let written = this.wire.lock().unwrap().written.clone();
            let request = String::from_utf8_lossy(&written);
            let key = request
                .lines()
                .find_map(|line| line.strip_prefix("Sec-WebSocket-Key: "))
                .or_else(|| request.lines().find_map(|line| line.strip_prefix("sec-websocket-key: ")))
                .expect("the upgrade request comes first");
            let accept = tungstenite::handshake::derive_accept_key(key.trim().as_bytes());
            this.pending.extend_from_slice(
                format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").as_bytes(),
            );
            this.pending.extend(frame(r#"{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":100}}"#));
            this.pending.extend(frame(
                r#"{"t":"READY","s":1,"op":0,"d":{"session_id":"flood","resume_gateway_url":"ws://127.0.0.1:1"}}"#,
            ));
            this.seq = 1;
            this.upgraded = true;
        }
        while this.pending.len() < buf.len() {
            this.seq += 1;
            let dispatch = format!(r#"{{"t":"MESSAGE_CREATE","s":{},"op":0,"d":{{"content":"flood"}}}}"#, this.seq);
            this.pending.extend(frame(&dispatch));
        }
        let n = buf.len().min(this.pending.len());
        buf[..n].copy_from_slice(&this.pending[..n]);
        this.pending.drain(..n);
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for FloodingGateway {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut wire = self.wire.lock().unwrap();
        wire.written.extend_from_slice(buf);
        wire.writes.push((Instant::now(), buf.len()));
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A shard on a [`FloodingGateway`], its driver on a thread of its own (the
/// application reads on the caller's), and what the client writes.
///
/// No backpressure: the event buffer is unbounded and, with the driver on
/// its own thread, rarely holds anything, so nothing but the driver's own
/// order gives the timer and the handle's requests their turn.
fn flooded_shard(seed: u64) -> (Shard, Arc<Mutex<Wire>>) {
    let wire = Arc::new(Mutex::new(Wire::default()));
    let connector_wire = Arc::clone(&wire);
    let connector = move |_target: Target| {
        let wire = Arc::clone(&connector_wire);
        async move { Ok(FloodingGateway { wire, pending: Vec::new(), upgraded: false, seq: 0 }) }
    };
    let config = Config::new("flood-token", Intents::GUILDS)
        .base_url("ws://127.0.0.1:1")
        .compression(Compression::None)
        // The flooding gateway's Hello asks for 100 ms.
        .min_heartbeat_interval(Duration::from_millis(100))
        .max_buffered(usize::MAX, usize::MAX)
        .rng_seed(seed);
    let mut shard = Shard::with_connector(config, connector).expect("shard");
    let driver = shard.take_driver().expect("a driver");
    std::thread::spawn(move || async_io::block_on(driver));
    (shard, wire)
}

#[test]
fn a_gateway_that_never_stops_sending_does_not_starve_heartbeats() {
    let (mut shard, wire) = flooded_shard(3);
    let started = Instant::now();
    let mut dispatches = 0u64;
    async_io::block_on(async {
        // Read the flood as fast as it comes for 1.5 s: the stream is never
        // behind, so the driver never pauses reading for backpressure.
        while started.elapsed() < Duration::from_millis(1500) {
            let dispatch = shard.next().await.expect("stream open").expect("no error");
            dispatches += 1;
            assert_eq!(dispatch.seq(), dispatches, "in order, none lost");
        }
    });
    let texts = client_texts(&wire.lock().unwrap().written);
    let heartbeats = texts.iter().filter(|text| text.starts_with(r#"{"op":1"#)).count();
    assert!(texts.first().is_some_and(|text| text.starts_with(r#"{"op":2"#)), "identified first: {:?}", texts.first());
    assert!(dispatches > 1000, "the flood was read ({dispatches} dispatches)");
    // 1.5 s at a 100 ms interval is about 15 beats; generous bounds.
    assert!(heartbeats >= 5, "{heartbeats} heartbeats in 1.5 s of flood at a 100 ms interval");
}

/// A wake handles a batch of already-read messages before it serves the
/// handle's requests again (`BATCH_MESSAGES` in src/shard.rs). Under a
/// flood that never lets the socket run dry, a command and then a close
/// request must still be served: the command goes out, the close ends the
/// stream, and every dispatch before it arrived in order.
#[test]
fn commands_and_close_are_served_during_an_endless_flood() {
    let (mut shard, wire) = flooded_shard(4);
    let handle = shard.handle();
    let is_command = |text: &String| text.starts_with(r#"{"op":8,"d":{"guild_id":"1""#);
    let closer_wire = Arc::clone(&wire);
    let closer = std::thread::spawn(move || {
        async_io::block_on(async {
            // Well into the flood.
            async_io::Timer::after(Duration::from_millis(300)).await;
            handle.send_raw(8, r#"{"guild_id":"1","query":"","limit":0}"#).expect("command accepted");
            // Close only once the command is on the wire (a close handled
            // first would rightly drop a command still in the outbox).
            let sent = Instant::now();
            while !client_texts(&closer_wire.lock().unwrap().written).iter().any(is_command) {
                assert!(sent.elapsed() < Duration::from_secs(10), "the command was not written during the flood");
                async_io::Timer::after(Duration::from_millis(5)).await;
            }
            handle.close(discord_gateway_stream::CloseMode::Resumable).await
        })
    });
    let mut dispatches = 0u64;
    let started = Instant::now();
    async_io::block_on(async {
        while let Some(item) = shard.next().await {
            let dispatch = item.expect("no error");
            dispatches += 1;
            assert_eq!(dispatch.seq(), dispatches, "in order, none lost");
            // The flood never stops, so a starved request shows up here
            // (generous: the close comes well under a second in).
            assert!(started.elapsed() < Duration::from_secs(20), "the close was not served during the flood");
        }
    });
    // The stream ended (the loop above) because the close was served.
    let session = closer.join().expect("closer thread");
    let session = session.expect("a resumable close hands back the session");
    assert_eq!(session.id, "flood");
    assert_eq!(session.seq, dispatches, "the stream delivered every dispatch the session counts");
    assert!(dispatches > 1000, "the flood was read ({dispatches} dispatches)");
    let texts = client_texts(&wire.lock().unwrap().written);
    assert_eq!(texts.iter().filter(|text| is_command(text)).count(), 1, "the command was written once");
}
