//! What the heap bench's server sends, built once and byte-identical for
//! every client: Hello, a READY per shard, heartbeat ACKs, and the burst of
//! dispatches (GUILD_CREATEs of 75–394 KB, then small events), each as
//! ready-to-write WebSocket frames, plain or zlib-stream.
//!
//! zlib-stream: every connection is one zlib stream, and every payload ends
//! in a sync flush (`00 00 ff ff`), as Discord sends it. To keep the burst
//! precomputed (1,000 connections would otherwise need 1,000 compressors in
//! the server), each piece is deflated by a fresh compressor: Hello with the
//! zlib header, then READY, each ACK and the burst as raw deflate that never
//! refers back before its own start, so any order of pieces is a valid
//! continuation of the stream. Within the burst the dictionary carries over
//! from payload to payload as on Discord; it does not across pieces (a
//! slightly worse ratio, the same inflater work and memory on the client).

use std::sync::Arc;

use flate2::{Compress, Compression, FlushCompress};

use super::payloads;
use crate::wire::push_frame;

pub const HELLO: &str = r#"{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250,"_trace":["[\"gateway-prd-us-east1-b-0568\",{\"micros\":0.0}]"]}}"#;
pub const ACK: &str = r#"{"t":null,"s":null,"op":11,"d":null}"#;

/// GUILD_CREATEs per shard in the burst, sized evenly from 75 KB to 394 KB.
pub const GUILD_CREATES: usize = 8;
const GUILD_MIN: usize = 75_000;
const GUILD_MAX: usize = 394_000;

/// The burst one shard gets (every shard the same): `GUILD_CREATES` guilds,
/// then small events (70% MESSAGE_CREATE, 30% TYPING_START/PRESENCE_UPDATE),
/// `s` from 2 (READY is 1).
pub fn burst(dispatches: usize) -> Vec<String> {
    let mut rng = payloads::Rng::new(0x4ea9);
    let guilds = GUILD_CREATES.min(dispatches);
    let mut texts = Vec::with_capacity(dispatches);
    for n in 0..guilds {
        let size = GUILD_MIN + n * (GUILD_MAX - GUILD_MIN) / (guilds.max(2) - 1);
        texts.push(payloads::guild_create(&mut rng, 2 + n as u64, size));
    }
    for n in guilds..dispatches {
        let seq = 2 + n as u64;
        texts.push(if rng.chance(70) {
            payloads::message_create(&mut rng, seq)
        } else {
            payloads::small_event(&mut rng, seq)
        });
    }
    texts
}

/// The guild ids of the burst's GUILD_CREATEs (listed unavailable in READY).
pub fn guild_ids(burst: &[String]) -> Vec<String> {
    burst
        .iter()
        .filter(|text| text.starts_with(r#"{"t":"GUILD_CREATE""#))
        .filter_map(|text| {
            let at = text.find(r#""d":{"id":""#)? + 11;
            Some(text[at..].split('"').next()?.to_owned())
        })
        .collect()
}

/// READY for one shard.
pub fn ready(port: u16, shard: u32, total: u32, guilds: &[String]) -> String {
    let guilds: Vec<String> = guilds.iter().map(|id| format!(r#"{{"id":"{id}","unavailable":true}}"#)).collect();
    format!(
        r#"{{"t":"READY","s":1,"op":0,"d":{{"v":10,"user":{{"id":"1234567890123456789","username":"bench","bot":true,"discriminator":"0","global_name":null,"avatar":null}},"session_type":"normal","session_id":"{:032x}","resume_gateway_url":"ws://127.0.0.1:{port}","guilds":[{}],"shard":[{shard},{total}],"application":{{"id":"1234567890123456789","flags":0}}}}}}"#,
        (0x5e55_u128 << 64) | u128::from(shard),
        guilds.join(",")
    )
}

/// `texts` as frames: text frames, or binary frames of one fresh deflate
/// stream (with the zlib header if `header`) with a sync flush per payload.
pub fn frames<T: AsRef<str>>(texts: &[T], zlib: bool, header: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if !zlib {
        for text in texts {
            push_frame(&mut out, 1, text.as_ref().as_bytes());
        }
        return out;
    }
    let mut compress = Compress::new(Compression::default(), header);
    let mut buf = Vec::new();
    for text in texts {
        let mut input = text.as_ref().as_bytes();
        buf.clear();
        buf.reserve(input.len() / 2 + 64);
        loop {
            let before = compress.total_in();
            compress.compress_vec(input, &mut buf, FlushCompress::Sync).expect("compress");
            input = &input[(compress.total_in() - before) as usize..];
            if input.is_empty() && buf.len() < buf.capacity() {
                break;
            }
            buf.reserve(buf.capacity().max(64));
        }
        debug_assert!(buf.ends_with(&[0, 0, 0xff, 0xff]));
        push_frame(&mut out, 2, &buf);
    }
    out
}

/// The pieces the server writes, for one compression.
pub struct Traffic {
    pub zlib: bool,
    pub hello: Vec<u8>,
    pub ack: Vec<u8>,
    /// The whole burst, as frames (shared with the server's writer threads).
    pub burst: Arc<Vec<u8>>,
}

impl Traffic {
    pub fn new(burst: &[String], zlib: bool) -> Traffic {
        Traffic {
            zlib,
            hello: frames(&[HELLO], zlib, true),
            ack: frames(&[ACK], zlib, false),
            burst: Arc::new(frames(burst, zlib, false)),
        }
    }

    /// READY for one shard, as a frame.
    pub fn ready(&self, text: &str) -> Vec<u8> {
        frames(&[text], self.zlib, false)
    }
}
