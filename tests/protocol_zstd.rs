//! The machine on a zstd-stream connection (docs/compression.md), end to
//! end through the sans-IO core: one frame per connection that never ends,
//! one flushed payload per message; every failure of the stream is a
//! resumable reconnect with a fresh decoder.
#![cfg(feature = "zstd")]

mod support;

use discord_gateway_stream::protocol::{Action, Compression, DisconnectReason};
use support::machine::*;
use zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush;
use zstd_safe::{CCtx, CParameter, InBuffer, OutBuffer};

/// What Discord does: one zstd frame per connection (window 2^18), a flush per payload.
struct Gateway {
    cctx: CCtx<'static>,
}

impl Gateway {
    fn new() -> Gateway {
        let mut cctx = CCtx::create();
        cctx.set_parameter(CParameter::WindowLog(18)).expect("window log");
        Gateway { cctx }
    }

    fn payload(&mut self, json: &str) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::with_capacity(json.len() + 64);
        let mut input = InBuffer::around(json.as_bytes());
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity());
            }
            let len = out.len();
            let left = self
                .cctx
                .compress_stream2(&mut OutBuffer::around_pos(&mut out, len), &mut input, ZSTD_e_flush)
                .expect("compress");
            if left == 0 && input.pos() == json.len() {
                return out;
            }
        }
    }
}

const HELLO: &str = r#"{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250}}"#;
const READY: &str = r#"{"t":"READY","s":1,"op":0,"d":{"session_id":"sess-1","resume_gateway_url":"wss://gateway-us-east1-c.discord.gg"}}"#;

fn zstd_harness() -> (Harness, Gateway) {
    let mut h = Harness::new(config().compression(Compression::ZstdStream));
    h.open();
    let mut gw = Gateway::new();
    h.recv_binary(&gw.payload(HELLO));
    h.recv_binary(&gw.payload(READY));
    assert_eq!(h.seqs(), [1]);
    (h, gw)
}

#[test]
fn connect_url_asks_for_zstd_stream() {
    let h = Harness::new(config().compression(Compression::ZstdStream));
    assert_eq!(h.connects(), ["wss://gateway.discord.gg/?v=10&encoding=json&compress=zstd-stream"]);
}

#[test]
fn every_message_is_one_payload_in_order() {
    let (mut h, mut gw) = zstd_harness();
    for seq in 2..=50_u64 {
        h.recv_binary(&gw.payload(&format!(r#"{{"t":"MESSAGE_CREATE","s":{seq},"op":0,"d":{{"n":{seq}}}}}"#)));
    }
    assert_eq!(h.seqs(), (1..=50).collect::<Vec<_>>());
    assert_eq!(h.dispatches()[49].data(), r#"{"n":50}"#);
    assert!(h.reconnect_reasons().is_empty());
}

// A payload larger than a zstd block (128 KiB) is several blocks in one message.
#[test]
fn a_payload_of_many_blocks_arrives_whole() {
    let (mut h, mut gw) = zstd_harness();
    let members: String = (0..40_000).map(|n| format!(r#"{{"id":"{}"}},"#, 80_000_000_000_u64 + n * 7919)).collect();
    let big = format!(r#"{{"t":"GUILD_CREATE","s":2,"op":0,"d":{{"members":[{members}{{}}]}}}}"#);
    assert!(big.len() > 3 * 128 * 1024);
    h.recv_binary(&gw.payload(&big));
    h.recv_binary(&gw.payload(r#"{"t":"MESSAGE_CREATE","s":3,"op":0,"d":{}}"#));
    assert_eq!(h.seqs(), [1, 2, 3]);
    assert_eq!(h.dispatches()[1].data().len(), members.len() + 2 + 2 + r#"{"members":}"#.len());
}

#[test]
fn a_bad_json_payload_on_the_zstd_path_loses_no_later_event() {
    let (mut h, mut gw) = zstd_harness();
    h.recv_binary(&gw.payload(r#"{"t":"MESSAGE_CREATE","s":2,"op":0,"d":{"#));
    h.recv_binary(&gw.payload("not json at all"));
    h.recv_binary(&gw.payload(r#"{"t":"MESSAGE_CREATE","s":3,"op":0,"d":{}}"#));
    assert_eq!(h.seqs(), [1, 3]);
    assert!(h.reconnect_reasons().is_empty());
}

/// After the stream failed: the close, a connect to the resume URL with the
/// same query, and a resume on a fresh frame that the new decoder reads.
fn assert_resumes_on_a_fresh_stream(h: &mut Harness) {
    assert!(matches!(h.reconnect_reasons().as_slice(), [DisconnectReason::Decompression { .. }]));
    assert_eq!(h.actions[0], Action::Close { code: 4000 });
    assert_eq!(h.connects(), ["wss://gateway-us-east1-c.discord.gg/?v=10&encoding=json&compress=zstd-stream"]);
    h.open();
    let mut fresh = Gateway::new();
    h.recv_binary(&fresh.payload(HELLO));
    assert_eq!(h.sent, [resume_frame("sess-1", 1)]);
    h.recv_binary(&fresh.payload(r#"{"t":"MESSAGE_CREATE","s":2,"op":0,"d":{}}"#));
    h.recv_binary(&fresh.payload(r#"{"t":"RESUMED","s":3,"op":0,"d":{}}"#));
    assert_eq!(h.seqs(), [2, 3]);
}

#[test]
fn corrupt_zstd_closes_resumably_and_the_new_connection_gets_a_fresh_decoder() {
    let (mut h, _gw) = zstd_harness();
    h.clear();
    // A block header of the reserved block type.
    h.recv_binary(&[0x06, 0x00, 0x00, 0xde, 0xad]);
    assert_resumes_on_a_fresh_stream(&mut h);
}

// A message that ends inside a block is refused, not taken as a payload
// continued in the next message: the resume replays it whole.
#[test]
fn a_truncated_message_closes_resumably() {
    let (mut h, mut gw) = zstd_harness();
    h.clear();
    let bytes = gw.payload(r#"{"t":"MESSAGE_CREATE","s":2,"op":0,"d":{"content":"cut short"}}"#);
    h.recv_binary(&bytes[..bytes.len() - 3]);
    assert_resumes_on_a_fresh_stream(&mut h);
}

// Reusing the decoder on a new connection without a reset would fail on
// the new frame's header: the first payload of every connection decodes.
#[test]
fn every_connection_starts_a_fresh_frame() {
    let (mut h, _gw) = zstd_harness();
    h.close(Some(4000));
    h.clear();
    let delay = h.reconnect_delays();
    h.advance(delay.into_iter().next().unwrap_or_default());
    h.open();
    let mut fresh = Gateway::new();
    h.recv_binary(&fresh.payload(HELLO));
    assert_eq!(h.sent, [resume_frame("sess-1", 1)]);
    assert!(h.reconnect_reasons().is_empty());
}

#[test]
fn a_decompression_bomb_is_capped_and_resumed_not_fatal() {
    let mut h = Harness::new(config().compression(Compression::ZstdStream).max_message_size(64 * 1024));
    h.open();
    let mut gw = Gateway::new();
    let bomb = format!(r#"{{"op":0,"t":"X","s":1,"d":"{}"}}"#, "0".repeat(10 * 1024 * 1024));
    let bytes = gw.payload(&bomb);
    assert!(bytes.len() < 64 * 1024, "compresses small");
    h.recv_binary(&bytes);
    assert!(matches!(h.reconnect_reasons().as_slice(), [DisconnectReason::Decompression { .. }]));
    assert!(h.seqs().is_empty());
}

// libzstd accepts windows up to 128 MiB by default: a frame asking for more
// than the cap is refused before anything is allocated for it.
#[test]
fn a_frame_asking_for_a_huge_window_is_refused() {
    let mut h = Harness::new(config().compression(Compression::ZstdStream));
    h.open();
    let mut gw = Gateway::new();
    gw.cctx.set_parameter(CParameter::WindowLog(27)).expect("window log");
    h.recv_binary(&gw.payload(HELLO));
    assert!(matches!(h.reconnect_reasons().as_slice(), [DisconnectReason::Decompression { .. }]));
}

#[test]
fn text_frames_still_work_on_a_zstd_connection() {
    let (mut h, _gw) = zstd_harness();
    h.recv(r#"{"t":"MESSAGE_CREATE","s":2,"op":0,"d":{}}"#);
    assert_eq!(h.seqs(), [1, 2]);
}

// The decoder's working buffer stays warm through a burst and is released
// one second after the last compressed payload (docs/compression.md): the
// machine asks for that timeout, and nothing is sent at it.
#[test]
fn the_working_buffer_is_released_a_second_after_the_last_payload() {
    let (mut h, mut gw) = zstd_harness();
    // READY itself left a release due now + 1 s; half a second later:
    h.advance(std::time::Duration::from_millis(500));
    let before = h.machine.poll_timeout();
    h.recv_binary(&gw.payload(&format!(r#"{{"t":"MESSAGE_CREATE","s":2,"op":0,"d":"{}"}}"#, "x".repeat(5000))));
    let release = h.now + std::time::Duration::from_secs(1);
    // The release moves to a second after this payload.
    let expected = before.map_or(release, |due| {
        if due == h.now + std::time::Duration::from_millis(500) {
            release
        } else {
            due.min(release)
        }
    });
    assert_eq!(h.machine.poll_timeout(), Some(expected));
    if expected == release {
        h.clear();
        h.advance(std::time::Duration::from_secs(1));
        assert!(h.sent.is_empty() && h.actions.is_empty(), "the release is silent");
        assert!(h.machine.poll_timeout().is_some_and(|due| due > release), "released, not asked for again");
    }
    // Any payload, a heartbeat ACK too, asks for the release a second later.
    h.recv_binary(&gw.payload(r#"{"t":null,"s":null,"op":11,"d":null}"#));
    let release = h.now + std::time::Duration::from_secs(1);
    assert!(h.machine.poll_timeout().is_some_and(|due| due <= release));
    h.recv_binary(&gw.payload(r#"{"t":"MESSAGE_CREATE","s":3,"op":0,"d":{}}"#));
    assert_eq!(h.seqs().last(), Some(&3));
    assert!(h.reconnect_reasons().is_empty());
}

// A busy shard gives a burst's large buffer back too: ordinary events after
// a large payload do not push the release further out.
#[test]
fn small_events_after_a_large_payload_do_not_keep_its_buffer() {
    let (mut h, mut gw) = zstd_harness();
    h.advance(std::time::Duration::from_secs(2));
    let big = format!(r#"{{"t":"GUILD_CREATE","s":2,"op":0,"d":"{}"}}"#, "g".repeat(1 << 20));
    h.recv_binary(&gw.payload(&big));
    let release = h.now + std::time::Duration::from_secs(1);
    for seq in 3..8 {
        h.advance(std::time::Duration::from_millis(150));
        h.recv_binary(&gw.payload(&format!(r#"{{"t":"MESSAGE_CREATE","s":{seq},"op":0,"d":{{}}}}"#)));
        assert!(h.machine.poll_timeout().is_some_and(|due| due <= release), "seq {seq}");
    }
    assert_eq!(h.seqs().last(), Some(&7));
}
