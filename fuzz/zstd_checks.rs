//! The zstd-stream decoder's check, for the `zstd` fuzz target and for
//! `tests/fuzz_corpus.rs`, which pull this file in with `#[path]`.
//!
//! It depends only on the crate's public API and on `zstd-safe`'s
//! compressor (libzstd), which writes the traffic the decoder is fed.

#![allow(dead_code)]

#[path = "payloads.rs"]
mod payloads;

use discord_gateway_stream::fuzzing::{ZstdDecoder, ZstdError, MAX_WINDOW_LOG};
use std::sync::OnceLock;
use zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush;
use zstd_safe::{CCtx, CParameter, InBuffer, OutBuffer};

/// Fixed traffic [`check_zstd`] replays: payloads and their messages (one
/// zstd frame, a flush per payload, as Discord does).
pub struct ZstdCase {
    /// The decompressed payloads, in stream order.
    pub payloads: Vec<Vec<u8>>,
    /// One compressed message per payload.
    pub messages: Vec<Vec<u8>>,
}

/// Compresses `payloads` as one never-ending zstd frame with a flush after
/// each, with a `2^window_log` window: one message per payload.
pub fn zstd_stream(payloads: &[String], window_log: u32) -> Vec<Vec<u8>> {
    let mut cctx = CCtx::create();
    cctx.set_parameter(CParameter::WindowLog(window_log)).expect("window log");
    payloads
        .iter()
        .map(|payload| {
            let mut out: Vec<u8> = Vec::with_capacity(payload.len() / 2 + 64);
            let mut input = InBuffer::around(payload.as_bytes());
            loop {
                if out.capacity() - out.len() < 64 {
                    out.reserve(out.capacity().max(256));
                }
                let len = out.len();
                let left = cctx
                    .compress_stream2(&mut OutBuffer::around_pos(&mut out, len), &mut input, ZSTD_e_flush)
                    .expect("compress");
                if left == 0 && input.pos() == payload.len() {
                    return out;
                }
            }
        })
        .collect()
}

fn case(payloads: Vec<String>, window_log: u32) -> ZstdCase {
    let messages = zstd_stream(&payloads, window_log);
    ZstdCase { payloads: payloads.into_iter().map(String::into_bytes).collect(), messages }
}

/// Hello, READY, message traffic and ACKs: a few KB, so most runs are cheap.
fn small_texts() -> Vec<String> {
    let mut rng = payloads::Rng::new(11);
    let mut texts = payloads::gateway_mix(11, 0, 0);
    for seq in 2..8 {
        texts.push(payloads::message_create(&mut rng, seq));
        texts.push(r#"{"t":null,"s":null,"op":11,"d":null}"#.to_owned());
    }
    texts.push("{}".to_owned());
    texts
}

/// The small traffic (window 2^18, Discord's).
pub fn small_case() -> &'static ZstdCase {
    static CASE: OnceLock<ZstdCase> = OnceLock::new();
    CASE.get_or_init(|| case(small_texts(), 18))
}

/// The small traffic with a 300 KB GUILD_CREATE (three zstd blocks) after READY.
pub fn large_case() -> &'static ZstdCase {
    static CASE: OnceLock<ZstdCase> = OnceLock::new();
    CASE.get_or_init(|| {
        let mut texts = small_texts();
        let mut rng = payloads::Rng::new(12);
        texts.insert(2, payloads::guild_create(&mut rng, 2, 300_000));
        case(texts, 18)
    })
}

/// The small traffic in a frame asking for a window over the decoder's cap.
pub fn wide_window_case() -> &'static ZstdCase {
    static CASE: OnceLock<ZstdCase> = OnceLock::new();
    CASE.get_or_init(|| case(small_texts(), MAX_WINDOW_LOG + 1))
}

/// [`ZstdDecoder`] against known traffic, with the case, split points, one
/// corruption and the size cap chosen by `data`.
///
/// - nothing panics; a payload never exceeds the cap;
/// - whole, uncorrupted messages come out exactly, one payload each; a
///   payload over the cap is `MessageTooLarge`; a frame asking for a window
///   over `MAX_WINDOW_LOG` fails on its first message;
/// - a message cut into pieces (which Discord never does) either fails or
///   yields, piece by piece, parts that put together are its payload
///   (a cut between two blocks passes the blocks before it on);
/// - after any error, every push is `Poisoned` until `reset`;
/// - after `reset`, the clean stream decodes exactly again.
pub fn check_zstd(data: &[u8]) {
    let mut plan = payloads::Plan::new(data, 331);
    let control = plan.next();
    let corrupt = control & 1 == 1;
    let cap = if control & 2 == 2 { usize::from(plan.next()) * 256 } else { 1 << 20 };
    let split = control & 4 == 4;
    let case = match control >> 3 {
        0b11111 => wide_window_case(),
        bits if bits & 0b111 == 0b111 => large_case(),
        _ => small_case(),
    };
    let wide = std::ptr::eq(case, wide_window_case());
    let stream_len: usize = case.messages.iter().map(Vec::len).sum();
    let corrupt_at = usize::from(u16::from_le_bytes([plan.next(), plan.next()])) * 7 % stream_len;
    let corrupt_with = plan.next() | 1;

    let mut decoder = ZstdDecoder::new(cap);
    let mut offset = 0;
    let mut failed = false;
    'messages: for (message, payload) in case.messages.iter().zip(&case.payloads) {
        let mut rest: &[u8] = message;
        let mut got: Vec<u8> = Vec::new();
        while !rest.is_empty() {
            let take = if split { plan.piece_len().min(rest.len()) } else { rest.len() };
            let (piece, tail) = rest.split_at(take);
            rest = tail;
            let mut piece = piece.to_vec();
            if corrupt && (offset..offset + piece.len()).contains(&corrupt_at) {
                piece[corrupt_at - offset] ^= corrupt_with;
            }
            offset += piece.len();
            let pristine = !corrupt || offset <= corrupt_at;
            match decoder.push_owned(&piece) {
                Ok(out) => {
                    let out = out.unwrap_or_default();
                    assert!(out.len() <= cap, "payload of {} bytes over the {cap}-byte cap", out.len());
                    got.extend_from_slice(&out);
                    if pristine {
                        assert!(!wide, "a frame with a window over the cap was decoded");
                        assert!(payload.starts_with(&got), "decoded bytes are not the payload's");
                        if rest.is_empty() {
                            assert!(got == *payload, "a whole message decoded to part of its payload");
                        }
                    }
                }
                Err(error) => {
                    if pristine && !wide {
                        match error {
                            ZstdError::MessageTooLarge { limit } => {
                                assert_eq!(limit, cap);
                                assert!(payload.len() > cap, "a {}-byte payload is not over {cap}", payload.len());
                            }
                            ZstdError::Truncated { .. } => assert!(!rest.is_empty(), "a whole message is truncated"),
                            other => panic!("clean traffic failed: {other}"),
                        }
                    }
                    failed = true;
                    break 'messages;
                }
            }
        }
    }
    assert!(failed || !wide || corrupt, "a frame with a window over the cap was accepted");
    if failed {
        assert_eq!(decoder.push_owned(&case.messages[0]), Err(ZstdError::Poisoned));
    }

    decoder.reset();
    for (message, payload) in case.messages.iter().zip(&case.payloads) {
        let result = decoder.push_owned(message);
        if wide {
            assert!(matches!(result, Err(ZstdError::Corrupt { .. })), "wide window after reset: {result:?}");
            break;
        }
        if payload.len() > cap {
            assert_eq!(result, Err(ZstdError::MessageTooLarge { limit: cap }));
            break;
        }
        assert!(result == Ok(Some(payload.clone())), "clean stream after reset");
    }
}
