//! The machine on a zlib-stream connection (`docs/compression.md#zlib-stream`,
//! `docs/edge-cases.md#zlib-stream-framing-and-state`): the failures peers get
//! wrong, end to end through the sans-IO core.
#![cfg(feature = "zlib")]

mod support;

use discord_gateway_stream::protocol::{Action, Compression, DisconnectReason};
use flate2::{Compress, Compression as Level, FlushCompress};
use support::machine::*;

/// What Discord does: one zlib stream per connection, a sync flush per payload.
struct Gateway {
    deflate: Compress,
}

impl Gateway {
    fn new() -> Gateway {
        Gateway { deflate: Compress::new(Level::default(), true) }
    }

    fn payload(&mut self, json: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(json.len() + 64);
        self.deflate.compress_vec(json.as_bytes(), &mut out, FlushCompress::Sync).expect("deflate");
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        out
    }
}

fn zlib_harness() -> (Harness, Gateway) {
    let mut h = Harness::new(config().compression(Compression::ZlibStream));
    h.open();
    let mut gw = Gateway::new();
    h.recv_binary(&gw.payload(r#"{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250}}"#));
    h.recv_binary(&gw.payload(
        r#"{"t":"READY","s":1,"op":0,"d":{"session_id":"sess-1","resume_gateway_url":"wss://gateway-us-east1-c.discord.gg"}}"#,
    ));
    assert_eq!(h.seqs(), [1]);
    (h, gw)
}

#[test]
fn connect_url_asks_for_zlib_stream() {
    let h = Harness::new(config().compression(Compression::ZlibStream));
    assert_eq!(h.connects(), ["wss://gateway.discord.gg/?v=10&encoding=json&compress=zlib-stream"]);
}

#[test]
fn a_sync_marker_straddling_two_frames_still_completes_the_payload() {
    // docs/compression.md#zlib-stream,
    // docs/edge-cases.md#zlib-stream-framing-and-state: twilight-gateway and
    // @discordjs/ws stall forever here.
    let (mut h, mut gw) = zlib_harness();
    let mut expected = vec![1];
    for (seq, tail_len) in [(2u64, 1usize), (3, 2), (4, 3), (5, 4)] {
        let bytes = gw.payload(&format!(r#"{{"t":"MESSAGE_CREATE","s":{seq},"op":0,"d":{{"tail":{tail_len}}}}}"#));
        let (head, tail) = bytes.split_at(bytes.len() - tail_len);
        h.recv_binary(head);
        assert_eq!(h.seqs(), expected, "incomplete until the last marker byte arrives");
        h.recv_binary(tail);
        expected.push(seq);
        assert_eq!(h.seqs(), expected, "marker split with {tail_len} byte(s) in the last frame");
    }
}

#[test]
fn one_payload_split_over_many_frames_arrives_once() {
    let (mut h, mut gw) = zlib_harness();
    let big = format!(r#"{{"t":"GUILD_CREATE","s":2,"op":0,"d":{{"members":"{}"}}}}"#, "m".repeat(200_000));
    let bytes = gw.payload(&big);
    for chunk in bytes.chunks(97) {
        h.recv_binary(chunk);
    }
    assert_eq!(h.seqs(), [1, 2]);
    assert_eq!(h.dispatches()[1].data().len(), 200_000 + 14);
}

#[test]
fn a_bad_json_payload_on_the_compressed_path_loses_no_later_event() {
    // A peer loses every later event after one bad JSON frame here.
    let (mut h, mut gw) = zlib_harness();
    h.recv_binary(&gw.payload(r#"{"t":"MESSAGE_CREATE","s":2,"op":0,"d":{"#));
    h.recv_binary(&gw.payload("not json at all"));
    h.recv_binary(&gw.payload(r#"{"t":"MESSAGE_CREATE","s":3,"op":0,"d":{}}"#));
    h.recv_binary(&gw.payload(r#"{"t":"MESSAGE_CREATE","s":4,"op":0,"d":{}}"#));
    assert_eq!(h.seqs(), [1, 3, 4]);
    assert!(h.reconnect_reasons().is_empty());
}

#[test]
fn corrupt_zlib_closes_resumably_and_the_new_connection_gets_a_fresh_inflater() {
    // docs/edge-cases.md#zlib-stream-framing-and-state: a decode failure is a
    // transport error; reusing the inflater across connections gives "data
    // error" (eris#1364).
    let (mut h, mut gw) = zlib_harness();
    h.clear();
    h.recv_binary(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0xff, 0xff]);
    assert!(matches!(h.reconnect_reasons().as_slice(), [DisconnectReason::Decompression { .. }]));
    assert_eq!(h.actions[0], Action::Close { code: 4000 });
    assert_eq!(h.connects(), ["wss://gateway-us-east1-c.discord.gg/?v=10&encoding=json&compress=zlib-stream"]);
    // The old stream continues to exist on the server side; the new socket starts a new one.
    let _ = gw.payload("ignored");
    h.open();
    let mut fresh = Gateway::new();
    h.recv_binary(&fresh.payload(r#"{"op":10,"d":{"heartbeat_interval":41250}}"#));
    assert_eq!(h.sent, [resume_frame("sess-1", 1)]);
    h.recv_binary(&fresh.payload(r#"{"t":"RESUMED","s":2,"op":0,"d":{}}"#));
    assert_eq!(h.seqs(), [2]);
}

#[test]
fn a_decompression_bomb_is_capped_and_resumed_not_fatal() {
    // docs/connection.md#message-size: a separate sanity cap on decompressed output.
    let mut h = Harness::new(config().compression(Compression::ZlibStream).max_message_size(64 * 1024));
    h.open();
    let mut gw = Gateway::new();
    let bomb = format!(r#"{{"op":0,"t":"X","s":1,"d":"{}"}}"#, "0".repeat(10 * 1024 * 1024));
    let bytes = gw.payload(&bomb);
    assert!(bytes.len() < 64 * 1024, "compresses small");
    h.recv_binary(&bytes);
    assert!(matches!(h.reconnect_reasons().as_slice(), [DisconnectReason::Decompression { .. }]));
    assert!(h.seqs().is_empty());
}

#[test]
fn text_frames_still_work_on_a_compressed_connection() {
    let (mut h, _gw) = zlib_harness();
    h.recv(r#"{"t":"MESSAGE_CREATE","s":2,"op":0,"d":{}}"#);
    assert_eq!(h.seqs(), [1, 2]);
}
