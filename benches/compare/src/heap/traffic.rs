//! What the heap bench's server sends, built once and byte-identical for
//! every client: Hello, a READY per shard, heartbeat ACKs, and the burst of
//! dispatches (GUILD_CREATEs of 75–394 KB, then small events), each as
//! ready-to-write WebSocket frames, plain, zlib-stream or zstd-stream.
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
//!
//! zstd-stream: every connection is one zstd frame (window log 18, as
//! Discord's frames declare), every payload flushed into one message. A
//! compressed zstd block depends on more than the bytes before it (the
//! three repeat offsets and the entropy tables carry over from block to
//! block), so only one compressed piece can be precomputed for any
//! connection: the burst, compressed by a fresh compressor (level 3, a
//! flush per payload, its frame header cut off), is valid right after any
//! number of Raw blocks. Hello (after the frame header), READY and the ACKs
//! are stored as Raw blocks, which the decoder copies into its window
//! without touching that state. The client's decoder allocates the same
//! window and does the same work on the burst as on Discord's traffic;
//! Hello, READY and ACKs cost it a copy instead of a decode.

use std::sync::Arc;

use flate2::{Compress, Compression, FlushCompress};

use super::payloads;
use crate::compression::Codec;
use crate::wire::{push_frame, ZstdStream, ZSTD_WINDOW_LOG};

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

/// The zstd frame header every zstd-stream connection starts with: magic,
/// a frame header descriptor with nothing optional (no content size, no
/// checksum, no dictionary) and the window descriptor of window log 18.
const ZSTD_HEADER: [u8; 6] = [0x28, 0xb5, 0x2f, 0xfd, 0x00, ((ZSTD_WINDOW_LOG - 10) << 3) as u8];

/// Largest zstd block (`min(window, 128 KiB)`).
const ZSTD_MAX_BLOCK: usize = 128 * 1024;

/// `text` as Raw zstd blocks (never the last block), after `prefix`, as one
/// binary frame.
fn zstd_raw(prefix: &[u8], text: &str) -> Vec<u8> {
    let mut message = prefix.to_vec();
    for chunk in text.as_bytes().chunks(ZSTD_MAX_BLOCK) {
        // Block header, 3 bytes little-endian: size << 3 | type Raw (0) << 1 | not last.
        message.extend_from_slice(&((chunk.len() as u32) << 3).to_le_bytes()[..3]);
        message.extend_from_slice(chunk);
    }
    let mut out = Vec::new();
    push_frame(&mut out, 2, &message);
    out
}

/// `texts` compressed by one fresh zstd-stream compressor, a flush per
/// payload, without its frame header: valid after Raw blocks only.
fn zstd_compressed<T: AsRef<str>>(texts: &[T]) -> Vec<u8> {
    let mut zstd = ZstdStream::new();
    let mut out = Vec::new();
    for (n, text) in texts.iter().enumerate() {
        let mut message = zstd.push(text.as_ref().as_bytes());
        if n == 0 {
            assert_eq!(message[..ZSTD_HEADER.len()], ZSTD_HEADER, "zstd frame header");
            message = &message[ZSTD_HEADER.len()..];
        }
        push_frame(&mut out, 2, message);
    }
    out
}

/// The pieces the server writes, for one compression.
pub struct Traffic {
    pub codec: Codec,
    pub hello: Vec<u8>,
    pub ack: Vec<u8>,
    /// The whole burst, as frames (shared with the server's writer threads).
    pub burst: Arc<Vec<u8>>,
}

impl Traffic {
    pub fn new(burst: &[String], codec: Codec) -> Traffic {
        let traffic = match codec {
            Codec::Zlib | Codec::None => {
                let zlib = codec == Codec::Zlib;
                Traffic {
                    codec,
                    hello: frames(&[HELLO], zlib, true),
                    ack: frames(&[ACK], zlib, false),
                    burst: Arc::new(frames(burst, zlib, false)),
                }
            }
            Codec::Zstd => Traffic {
                codec,
                hello: zstd_raw(&ZSTD_HEADER, HELLO),
                ack: zstd_raw(&[], ACK),
                burst: Arc::new(zstd_compressed(burst)),
            },
        };
        if codec == Codec::Zstd {
            traffic.check_zstd(burst);
        }
        traffic
    }

    /// READY for one shard, as a frame.
    pub fn ready(&self, text: &str) -> Vec<u8> {
        match self.codec {
            Codec::Zstd => zstd_raw(&[], text),
            codec => frames(&[text], codec == Codec::Zlib, false),
        }
    }

    /// Decodes Hello, a READY, an ACK, the burst and an ACK as one zstd
    /// stream, message by message, and checks every payload comes back.
    fn check_zstd(&self, burst: &[String]) {
        let ready = ready(1, 0, 1, &[]);
        let mut wire = self.hello.clone();
        wire.extend_from_slice(&self.ready(&ready));
        wire.extend_from_slice(&self.ack);
        wire.extend_from_slice(&self.burst);
        wire.extend_from_slice(&self.ack);
        let mut expected = vec![HELLO, &ready, ACK];
        expected.extend(burst.iter().map(String::as_str));
        expected.push(ACK);

        let mut dctx = zstd_safe::DCtx::create();
        let mut out = vec![0u8; 1 << 20];
        let mut at = 0;
        for text in expected {
            // Server frames as `push_frame` writes them: FIN|2, then the length.
            assert_eq!(wire[at], 0x82);
            let (len, header) = match wire[at + 1] {
                126 => (u16::from_be_bytes([wire[at + 2], wire[at + 3]]) as usize, 4),
                127 => (u64::from_be_bytes(wire[at + 2..at + 10].try_into().unwrap()) as usize, 10),
                len => (len as usize, 2),
            };
            let message = &wire[at + header..at + header + len];
            at += header + len;
            let mut input = zstd_safe::InBuffer::around(message);
            let mut output = zstd_safe::OutBuffer::around(&mut out[..]);
            while input.pos() < message.len() {
                dctx.decompress_stream(&mut output, &mut input)
                    .unwrap_or_else(|code| panic!("zstd traffic: {}", zstd_safe::get_error_name(code)));
            }
            assert!(output.pos() < output.capacity(), "zstd traffic: a payload over 1 MiB");
            assert!(output.as_slice() == text.as_bytes(), "zstd traffic decodes to another payload");
        }
        assert_eq!(at, wire.len());
    }
}
