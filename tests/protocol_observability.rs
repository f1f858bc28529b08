//! What the sans-IO machine reports about itself: heartbeat latency from the
//! `now` it is fed, and its counters, with exact values on a fake clock.

mod support;

use std::time::Duration;

use discord_gateway_stream::protocol::Latency;
use support::machine::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Moves the clock on until the machine asks for a new connection.
fn until_connect(h: &mut Harness) {
    let connects = h.connects().len();
    for _ in 0..120 {
        if h.connects().len() > connects {
            return;
        }
        h.advance(ms(500));
    }
    panic!("no new connection within a minute");
}

/// Waits for the next periodic heartbeat, then ACKs it `rtt` later.
fn beat_and_ack(h: &mut Harness, rtt: Duration) {
    let due = h.machine.poll_timeout().expect("a heartbeat is scheduled");
    let before = h.heartbeats().len();
    h.advance(due - h.now);
    assert_eq!(h.heartbeats().len(), before + 1, "a periodic heartbeat went out");
    h.advance(rtt);
    h.recv(r#"{"op":11}"#);
}

#[test]
fn latency_is_measured_from_the_fed_clock() {
    let mut h = Harness::active();
    assert_eq!(*h.machine.latency(), Latency::default());
    assert_eq!((h.machine.latency().last(), h.machine.latency().average()), (None, None));

    beat_and_ack(&mut h, ms(120));
    assert_eq!(h.machine.latency().last(), Some(ms(120)));
    assert_eq!(h.machine.latency().recent(), &[ms(120)]);
    assert_eq!(h.machine.latency().average(), Some(ms(120)));

    beat_and_ack(&mut h, ms(80));
    let sent = h.now - ms(100);
    beat_and_ack(&mut h, ms(100));
    let latency = *h.machine.latency();
    assert_eq!(latency.recent(), &[ms(100), ms(80), ms(120)], "newest first");
    assert_eq!(latency.average(), Some(ms(100)));
    assert_eq!((latency.heartbeats_sent(), latency.heartbeats_acked()), (3, 3));
    assert_eq!(latency.acked_at(), Some(h.now));
    assert_eq!(latency.sent_at(), Some(h.now - ms(100)));
    assert!(latency.sent_at() > Some(sent));
}

#[test]
fn the_average_is_over_the_last_five_round_trips() {
    let mut h = Harness::active();
    for rtt in [500, 10, 20, 30, 40, 50] {
        beat_and_ack(&mut h, ms(rtt));
    }
    let latency = h.machine.latency();
    assert_eq!(Latency::RECENT_LEN, 5);
    assert_eq!(latency.recent(), &[ms(50), ms(40), ms(30), ms(20), ms(10)]);
    assert_eq!(latency.average(), Some(ms(30)), "the 500 ms outlier has left the window");
    assert_eq!(latency.heartbeats_acked(), 6);
}

#[test]
fn requested_heartbeats_and_stray_acks_are_counted_but_not_measured() {
    let mut h = Harness::active();
    h.recv(r#"{"op":1,"d":null}"#);
    assert_eq!(h.machine.latency().heartbeats_sent(), 1);
    assert_eq!(h.machine.latency().sent_at(), Some(h.now));
    h.advance(ms(30));
    h.recv(r#"{"op":11}"#);
    assert_eq!(h.machine.latency().heartbeats_acked(), 0, "no periodic heartbeat was awaited");
    assert_eq!(h.machine.latency().last(), None);
    let stats = h.machine.stats();
    assert_eq!((stats.heartbeats_sent, stats.heartbeats_acked), (1, 0));
}

#[test]
fn latency_outlives_a_reconnect() {
    let mut h = Harness::active();
    beat_and_ack(&mut h, ms(70));
    h.recv(r#"{"op":7,"d":null}"#);
    if h.connects().is_empty() {
        until_connect(&mut h);
    }
    h.open();
    h.hello();
    assert_eq!(h.machine.latency().last(), Some(ms(70)), "kept across connections");
    h.recv(r#"{"t":"RESUMED","s":2,"op":0,"d":{}}"#);
    beat_and_ack(&mut h, ms(90));
    assert_eq!(h.machine.latency().recent(), &[ms(90), ms(70)]);
    assert_eq!(h.machine.latency().average(), Some(ms(80)));
}

#[test]
fn counters_after_a_scripted_session() {
    let mut h = Harness::new(config());
    h.open();
    let hello = format!(r#"{{"t":null,"s":null,"op":10,"d":{{"heartbeat_interval":{INTERVAL_MS},"_trace":["gw"]}}}}"#);
    let mut wire = hello.len();
    h.hello();
    let before = h.machine.stats();
    h.ready(1, "sess-1");
    wire += (h.machine.stats().bytes_received - before.bytes_received) as usize;
    for seq in 2..=11 {
        let payload = format!(r#"{{"t":"MESSAGE_CREATE","s":{seq},"op":0,"d":{{"n":{seq}}}}}"#);
        wire += payload.len();
        h.recv(&payload);
    }
    // A duplicate (delivered already) and an unreadable payload.
    let duplicate = r#"{"t":"MESSAGE_CREATE","s":5,"op":0,"d":{}}"#;
    let garbage = "{not json";
    wire += duplicate.len() + garbage.len();
    h.recv(duplicate);
    h.recv(garbage);
    // op 7: the shard reconnects and resumes.
    let reconnect = r#"{"op":7,"d":null}"#;
    wire += reconnect.len();
    h.recv(reconnect);
    if h.connects().len() < 2 {
        until_connect(&mut h);
    }
    h.open();
    wire += hello.len();
    h.hello();
    let resumed = r#"{"t":"RESUMED","s":12,"op":0,"d":{}}"#;
    wire += resumed.len();
    h.recv(resumed);
    beat_and_ack(&mut h, ms(40));
    wire += r#"{"op":11}"#.len();

    let stats = h.machine.stats();
    assert_eq!(stats.dispatches, 1 + 10 + 1, "READY, 10 MESSAGE_CREATE, RESUMED");
    assert_eq!(stats.messages, 2 + 10 + 2 + 1 + 2 + 1);
    assert_eq!((stats.bytes_received, stats.bytes_decompressed), (wire as u64, wire as u64));
    assert_eq!((stats.reconnects, stats.identifies, stats.resumes), (1, 1, 1));
    assert_eq!((stats.heartbeats_sent, stats.heartbeats_acked), (1, 1));
    assert_eq!(stats.skipped_payloads, 1);
    assert_eq!(stats.skipped_payloads, h.machine.skipped_payloads());
    assert_eq!(h.dispatches().len() as u64, stats.dispatches);
}

#[test]
fn a_failed_connect_is_a_reconnect_and_a_lost_session_an_identify() {
    let mut h = Harness::active();
    h.close(Some(4009));
    until_connect(&mut h);
    h.connect_failed();
    until_connect(&mut h);
    h.open();
    h.hello();
    h.ready(1, "sess-2");
    let stats = h.machine.stats();
    assert_eq!((stats.reconnects, stats.identifies, stats.resumes), (2, 2, 0));
    assert_eq!(stats.dispatches, 2, "both READYs");
}
