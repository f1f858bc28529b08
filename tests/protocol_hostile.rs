//! A broken or hostile gateway against the sans-IO machine, with a fake
//! clock (issue 12): a tiny `heartbeat_interval`, op 1 floods, malformed
//! dispatches and a payload the client can never accept replayed forever.

mod support;

use std::time::Duration;

use discord_gateway_stream::protocol::{
    Command, Config, ConfigError, DisconnectReason, Machine, SEND_LIMIT, SEND_WINDOW,
    DEFAULT_MIN_HEARTBEAT_INTERVAL,
};
use support::*;

fn hello(ms: u64) -> String {
    format!(r#"{{"t":null,"s":null,"op":10,"d":{{"heartbeat_interval":{ms}}}}}"#)
}

/// The most frames sent in any 60 s window.
fn busiest_window(h: &Harness) -> usize {
    let times: Vec<Duration> = h.sent_at.iter().map(|(t, _)| *t).collect();
    (0..times.len()).map(|i| times[i..].iter().take_while(|t| **t < times[i] + SEND_WINDOW).count()).max().unwrap_or(0)
}

// ------------------------------------------------------- 12.4 heartbeat floor

#[test]
fn a_hello_under_the_minimum_interval_is_a_bad_hello() {
    assert_eq!(DEFAULT_MIN_HEARTBEAT_INTERVAL, Duration::from_secs(10));
    for ms in [1, 100, 9_999] {
        let mut h = Harness::new(config());
        h.open();
        h.recv(&hello(ms));
        assert_eq!(h.reconnect_reasons(), [DisconnectReason::BadHello], "{ms} ms");
        assert!(h.sent.is_empty(), "{ms} ms: nothing is sent on a refused Hello");
        // The retry backs off like any refusal instead of spinning.
        assert!(h.reconnect_delays()[0] >= Duration::from_millis(500));
        h.advance(Duration::from_secs(1));
        assert!(h.heartbeats().is_empty());
    }
}

#[test]
fn a_hello_at_the_minimum_interval_is_accepted_and_the_minimum_is_configurable() {
    let mut h = Harness::new(config());
    h.open();
    h.recv(&hello(10_000));
    assert!(h.reconnect_reasons().is_empty());
    assert_eq!(h.sent_ops(), [2], "identified");

    let mut h = Harness::new(config().min_heartbeat_interval(Duration::from_millis(100)));
    h.open();
    h.recv(&hello(100));
    assert!(h.reconnect_reasons().is_empty());
    assert_eq!(h.sent_ops(), [2]);

    // A floor no Hello can meet is refused up front.
    let too_high = config().min_heartbeat_interval(Duration::from_secs(3601));
    assert_eq!(
        Machine::new(too_high, std::time::Instant::now()).err(),
        Some(ConfigError::MinHeartbeatInterval(Duration::from_secs(3601)))
    );
}

/// Active at `interval_ms`, then three minutes of op 1 requests (20 a
/// second), a steady stream of commands, and an ACK for everything.
fn flood(config: Config, interval_ms: u64) -> Harness {
    let mut h = Harness::new(config);
    h.open();
    h.recv(&hello(interval_ms));
    h.ready(1, "s");
    let presence = r#"{"since":null,"activities":[],"status":"online","afk":false}"#;
    for step in 0..1800 {
        h.recv(r#"{"op":1,"d":null}"#);
        h.recv(r#"{"op":1,"d":null}"#);
        if step % 2 == 0 {
            let _ = h.machine.send_command(h.now, Command::new(3, presence).unwrap());
            h.drain();
        }
        h.advance(Duration::from_millis(100));
        h.recv(r#"{"op":11}"#);
    }
    assert!(h.reconnect_reasons().is_empty(), "{:?}", h.reconnect_reasons());
    h
}

#[test]
fn an_op1_flood_at_the_minimum_interval_stays_within_120_frames_per_60s() {
    let h = flood(config(), 10_000);
    assert!(busiest_window(&h) <= SEND_LIMIT, "{} frames in 60 s", busiest_window(&h));
    assert!(busiest_window(&h) >= SEND_LIMIT - 1, "the flood does use the budget");
}

#[test]
fn a_lowered_minimum_still_never_sends_past_120_frames_per_60s() {
    // Periodic heartbeats every 100 ms would be 600 a minute: the ones with
    // no slot left wait for the next one instead of going out anyway.
    let h = flood(config().min_heartbeat_interval(Duration::from_millis(100)), 100);
    assert!(busiest_window(&h) <= SEND_LIMIT, "{} frames in 60 s", busiest_window(&h));
    assert!(h.heartbeats().len() > 300, "heartbeats go on: {}", h.heartbeats().len());
}

// ------------------------------------------------ 12.12 skipped dispatches

#[test]
fn unreadable_payloads_are_counted_and_skipped_without_a_reconnect() {
    let mut h = Harness::active();
    assert_eq!(h.machine.skipped_payloads(), 0);
    h.recv(r#"{"op":0,"t":"MESSAGE_CREATE","s":"#); // cut short
    h.recv(r#"{"op":"0","t":"MESSAGE_CREATE","s":2,"d":{}}"#); // mistyped op
    h.recv(r#"{"op":0,"s":2,"d":{}}"#); // no `t`
    h.recv(r#"{"op":0,"t":"MESSAGE_CREATE","d":{}}"#); // no `s`
    h.recv_binary(b"{\"op\":0,\"t\":\"MESSAGE_CREATE\",\"s\":2,\"d\":\"\xff\"}"); // not UTF-8
    assert_eq!(h.machine.skipped_payloads(), 5);
    // Not counted: a replayed duplicate and an unknown opcode.
    h.dispatch(1, "MESSAGE_CREATE");
    h.recv(r#"{"op":99,"d":{}}"#);
    assert_eq!(h.machine.skipped_payloads(), 5);
    h.dispatch(3, "MESSAGE_CREATE");
    assert_eq!(h.seqs(), [3], "later dispatches still arrive");
    assert!(h.reconnect_reasons().is_empty());
    assert!(h.sent.is_empty());
    // The count outlives the connection.
    h.close(None);
    assert_eq!(h.machine.skipped_payloads(), 5);
}
