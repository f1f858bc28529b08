//! `compress=zlib-stream`: binary frames, one zlib stream per connection,
//! payloads split across messages (marker included), corrupt frames.
#![cfg(feature = "testing")]

mod support;

use std::time::Duration;

use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use serde_json::json;
use support::raw_client::{Client, Received, WAIT};

fn sim(config: SimulatorConfig) -> Simulator {
    Simulator::start(config.heartbeat_interval(Duration::from_millis(250))).expect("start")
}

#[test]
fn frames_are_binary_and_inflate_to_the_same_json() {
    let sim = sim(SimulatorConfig::new());
    let mut c = Client::zlib(&sim.url());
    c.start_session();
    assert!(sim.wait_until_live(WAIT));
    let big = "y".repeat(200_000);
    sim.dispatch("MESSAGE_CREATE", json!({ "content": big }));
    assert_eq!(c.payload()["d"]["content"].as_str().map(str::len), Some(200_000));
    c.send_text(r#"{"op":1,"d":3}"#);
    assert_eq!(c.payload()["op"], 11);

    assert!(c.messages.iter().all(|(binary, _)| *binary));
    assert_eq!(&c.messages[0].1[..2], &[0x78, 0x9c], "zlib-wrapped stream");
    assert!(c.messages.iter().all(|(_, m)| m.ends_with(&[0, 0, 0xff, 0xff])));
    let sent: Vec<String> = sim.server_frames().into_iter().map(|f| f.text).collect();
    assert_eq!(c.payloads, sent, "inflated text equals what the simulator sent");
    assert!(sim.server_frames().iter().all(|f| f.compressed));
    let conn = &sim.connections()[0];
    assert!(conn.compressed);
    assert_eq!(conn.compress.as_deref(), Some("zlib-stream"));
}

#[test]
fn split_payloads_reassemble_with_the_marker_straddled() {
    let sim = sim(SimulatorConfig::new().split_frames(3));
    let mut c = Client::zlib(&sim.url());
    c.start_session();
    // Hello and READY: three messages each, the last one just `ff ff`.
    assert_eq!(c.messages.len(), 6);
    for payload in c.messages.chunks(3) {
        assert_eq!(payload[2].1, vec![0xff, 0xff]);
        assert!(!payload[1].1.ends_with(&[0, 0, 0xff, 0xff]));
    }
    sim.set_split_frames(2);
    assert!(sim.wait_until_live(WAIT));
    sim.dispatch("MESSAGE_CREATE", json!({ "n": 1 }));
    assert_eq!(c.payload()["d"]["n"], 1);
    assert_eq!(c.messages.len(), 8);
    assert_eq!(c.messages[7].1, vec![0xff, 0xff]);
}

#[test]
fn each_connection_starts_a_fresh_stream() {
    let sim = sim(SimulatorConfig::new());
    for _ in 0..2 {
        let mut c = Client::zlib(&sim.url());
        c.hello();
        assert_eq!(&c.messages[0].1[..2], &[0x78, 0x9c]);
    }
}

#[test]
fn corrupt_frame_fails_to_inflate() {
    let sim = sim(SimulatorConfig::new());
    let mut c = Client::zlib(&sim.url());
    c.hello();
    assert!(sim.send_corrupt_frame());
    let deadline = std::time::Instant::now() + WAIT;
    let bytes = loop {
        match c.ws.read() {
            Ok(tungstenite::Message::Binary(b)) => break b,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::Io(_)) if std::time::Instant::now() < deadline => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(bytes.ends_with(&[0, 0, 0xff, 0xff]));
    assert!(c.try_inflate_raw(&bytes).is_err());
}

#[test]
fn compression_can_be_refused() {
    let sim = sim(SimulatorConfig::new().compression(false));
    let mut c = Client::zlib(&sim.url());
    // The simulator ignores the parameter: text frames.
    assert_eq!(c.payload()["op"], 10);
    assert!(!c.messages[0].0, "a text frame");
    assert!(!sim.connections()[0].compressed);
}

#[test]
fn raw_text_bypasses_compression_raw_payload_does_not() {
    let sim = sim(SimulatorConfig::new());
    let mut c = Client::zlib(&sim.url());
    c.hello();
    assert!(sim.send_raw_text("plain"));
    assert_eq!(c.recv(WAIT), Received::NotJson("plain".into()));
    assert!(sim.send_raw_payload("{\"op\":42}"));
    assert_eq!(c.payload(), json!({ "op": 42 }));
    assert!(c.messages[2].0, "through the zlib stream");
}

/// The next binary message of `c`, read raw.
#[cfg(feature = "zstd")]
fn next_binary(c: &mut Client) -> Vec<u8> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match c.ws.read() {
            Ok(tungstenite::Message::Binary(b)) => return b.to_vec(),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::Io(_)) if std::time::Instant::now() < deadline => continue,
            Err(e) => panic!("{e}"),
        }
    }
}

// docs/compression.md: `compress=zstd-stream` gets one zstd frame for the connection, one
// flushed payload per binary message; a corrupt frame does not decode.
#[cfg(feature = "zstd")]
#[test]
fn zstd_stream_is_one_frame_with_one_payload_per_message() {
    use zstd_safe::{DCtx, InBuffer, OutBuffer};
    let decode = |d: &mut DCtx<'_>, bytes: &[u8]| -> Result<String, usize> {
        let mut out: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut input = InBuffer::around(bytes);
        let hint = d.decompress_stream(&mut OutBuffer::around(&mut out), &mut input)?;
        assert_eq!((input.pos(), hint), (bytes.len(), 3), "consumed whole, between two blocks");
        Ok(String::from_utf8(out).expect("UTF-8"))
    };
    let sim = sim(SimulatorConfig::new().split_frames(3));
    let mut c = Client::connect(&format!("{}/?v=10&encoding=json&compress=zstd-stream", sim.url()));
    let mut d = DCtx::create();
    let hello = next_binary(&mut c);
    assert_eq!(&hello[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame header");
    let hello: serde_json::Value = serde_json::from_str(&decode(&mut d, &hello).unwrap()).unwrap();
    assert_eq!(hello["op"], 10);
    let big = "z".repeat(300_000);
    assert!(sim.send_raw_payload(&json!({ "op": 0, "t": "X", "s": 1, "d": big }).to_string()));
    let payload: serde_json::Value = serde_json::from_str(&decode(&mut d, &next_binary(&mut c)).unwrap()).unwrap();
    assert_eq!(payload["d"].as_str().map(str::len), Some(300_000), "one message although split_frames is 3");
    assert!(sim.send_corrupt_frame());
    assert!(decode(&mut d, &next_binary(&mut c)).is_err());
    let conn = &sim.connections()[0];
    assert!(conn.compressed);
    assert_eq!(conn.compress.as_deref(), Some("zstd-stream"));
}

#[test]
fn an_unknown_compress_value_closes_with_4002() {
    let sim = sim(SimulatorConfig::new());
    let mut c = Client::connect(&format!("{}/?v=10&encoding=json&compress=brotli-stream", sim.url()));
    assert_eq!(c.expect_close(), Some(4002));
}
