//! A broken or hostile gateway against the sans-IO machine, with a fake
//! clock (issue 12): a tiny `heartbeat_interval`, op 1 floods, malformed
//! dispatches and a payload the client can never accept replayed forever.

mod support;

use std::time::Duration;

use discord_gateway_stream::protocol::{
    Command, Config, ConfigError, DisconnectReason, Machine, Status, DEFAULT_MIN_HEARTBEAT_INTERVAL, SEND_LIMIT,
    SEND_WINDOW,
};
use support::machine::*;

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

// ------------------------------------- 12.3 a payload that can never be accepted

/// How a connection of the loop below fails.
#[derive(Clone, Copy)]
enum Failure {
    /// The driver reports a message over `max_message_size` (uncompressed).
    TooLarge(usize),
    /// A zlib-compressed payload inflates past the cap.
    #[cfg(feature = "zlib")]
    Bomb,
    /// The zlib stream breaks.
    #[cfg(feature = "zlib")]
    Corrupt,
}

#[cfg(feature = "zlib")]
fn deflate(stream: &mut flate2::Compress, json: &str) -> Vec<u8> {
    let start = stream.total_in();
    let mut out = Vec::with_capacity(json.len() / 100 + 256);
    loop {
        let offset = usize::try_from(stream.total_in() - start).unwrap();
        out.reserve(64 * 1024);
        stream.compress_vec(&json.as_bytes()[offset..], &mut out, flate2::FlushCompress::Sync).unwrap();
        // All input taken and room left over: the sync flush is complete.
        if stream.total_in() - start == json.len() as u64 && out.len() < out.capacity() {
            assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
            return out;
        }
    }
}

/// A gateway that sends `failure` on every connection, right after READY
/// (`in_ready`: instead of READY) and as the first replay of every resume.
/// Runs until the machine finishes or 60 connections have opened; returns
/// the harness and the opcodes of every frame the client sent.
fn replay_forever(config: Config, failure: Failure, in_ready: bool) -> Harness {
    let mut h = Harness::new(config);
    for _ in 0..60 {
        if h.machine.is_finished() {
            break;
        }
        h.open();
        #[cfg(feature = "zlib")]
        let mut stream = flate2::Compress::new(flate2::Compression::default(), true);
        let mut send = |h: &mut Harness, json: &str| {
            #[cfg(feature = "zlib")]
            if !matches!(failure, Failure::TooLarge(_)) {
                let bytes = deflate(&mut stream, json);
                h.recv_binary(&bytes);
                return;
            }
            h.recv(json);
        };
        let before = h.sent.len();
        send(&mut h, &hello(41_250));
        let first = h.sent.get(before).cloned().unwrap_or_default();
        if first.starts_with(r#"{"op":2"#) && !in_ready {
            send(
                &mut h,
                r#"{"t":"READY","s":1,"op":0,"d":{"session_id":"stuck","resume_gateway_url":"wss://gateway.discord.gg"}}"#,
            );
        }
        if h.machine.is_finished() || first.is_empty() {
            continue;
        }
        match failure {
            Failure::TooLarge(size) => {
                h.machine.handle_message_too_large(h.now, size);
                h.drain();
            }
            #[cfg(feature = "zlib")]
            Failure::Bomb => {
                let bomb = format!(r#"{{"t":"GUILD_CREATE","s":2,"op":0,"d":"{}"}}"#, "0".repeat(200 * 1024));
                send(&mut h, &bomb);
            }
            #[cfg(feature = "zlib")]
            Failure::Corrupt => h.recv_binary(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0xff, 0xff]),
        }
        wait_for_connect(&mut h);
    }
    h
}

/// Waits out the reconnect delay, if any, up to the next `Connect`.
fn wait_for_connect(h: &mut Harness) {
    while !h.machine.is_finished() && !matches!(h.machine.status(), Status::Connecting { .. }) {
        let Some(at) = h.machine.poll_timeout() else { return };
        h.advance(at.saturating_duration_since(h.now));
    }
}

fn fatal(h: &Harness) -> Option<discord_gateway_stream::protocol::FatalError> {
    h.events.iter().find_map(|e| match e {
        discord_gateway_stream::protocol::Event::Fatal(fatal) => Some(*fatal),
        _ => None,
    })
}

fn count_ops(h: &Harness, op: u64) -> usize {
    h.sent_ops().into_iter().filter(|o| *o == op).count()
}

#[test]
fn an_oversized_payload_replayed_on_every_resume_stops_the_shard_after_two_identifies() {
    use discord_gateway_stream::protocol::{Action, FatalError};
    let h = replay_forever(config(), Failure::TooLarge(200_000_000), false);
    assert!(h.machine.is_finished(), "still looping after {} connections", h.connects().len());
    let limit = 64 * 1024 * 1024;
    // One failure live, three resumes, a new session (the second Identify),
    // its failure and three resumes: 8 in a row after s=1.
    assert_eq!(
        fatal(&h),
        Some(FatalError::PayloadTooLarge { after_seq: Some(1), size: Some(200_000_000), limit, failures: 8 })
    );
    assert_eq!(count_ops(&h, 2), 2, "Identifies");
    assert_eq!(count_ops(&h, 6), 6, "Resumes");
    assert_eq!(h.actions.last(), Some(&Action::Close { code: 1000 }));
    let message = fatal(&h).unwrap().to_string();
    assert!(message.contains("200000000 bytes") && message.contains("Config::max_message_size"), "{message}");
    assert_eq!(fatal(&h).unwrap().close_code(), None);
    assert_eq!(h.machine.poll_timeout(), None);
}

#[test]
fn a_ready_too_large_for_every_session_costs_at_most_two_more_identifies() {
    use discord_gateway_stream::protocol::FatalError;
    let h = replay_forever(config(), Failure::TooLarge(70_000_000), true);
    assert!(h.machine.is_finished(), "still looping after {} connections", h.connects().len());
    assert_eq!(count_ops(&h, 2), 3, "the first Identify and two more, never a fourth");
    assert!(matches!(
        fatal(&h),
        Some(FatalError::PayloadTooLarge { after_seq: None, size: Some(70_000_000), failures: 3, .. })
    ));
}

#[cfg(feature = "zlib")]
#[test]
fn a_decompression_bomb_or_a_broken_stream_replayed_forever_stops_the_shard() {
    use discord_gateway_stream::protocol::{Compression, FatalError};
    let config = || config().compression(Compression::ZlibStream).max_message_size(64 * 1024);
    let h = replay_forever(config(), Failure::Bomb, false);
    assert_eq!(
        fatal(&h),
        Some(FatalError::PayloadTooLarge { after_seq: Some(1), size: None, limit: 64 * 1024, failures: 8 })
    );
    assert_eq!(count_ops(&h, 2), 2);
    let h = replay_forever(config(), Failure::Corrupt, false);
    assert_eq!(fatal(&h), Some(FatalError::PayloadUndecodable { after_seq: Some(1), failures: 8 }));
    assert_eq!(count_ops(&h, 2), 2);
    assert!(fatal(&h).unwrap().to_string().contains("Compression::None"));
}

#[test]
fn an_oversized_payload_a_new_session_does_not_resend_costs_one_identify_and_no_stop() {
    let mut h = Harness::active();
    h.dispatch(57, "MESSAGE_CREATE");
    // Live, then on each of the three resumes.
    for _ in 0..4 {
        h.machine.handle_message_too_large(h.now, 100_000_000);
        h.drain();
        wait_for_connect(&mut h);
        h.open();
        h.hello();
    }
    assert_eq!(h.sent_ops().iter().filter(|op| **op == 2).count(), 1, "a new session");
    h.ready(1, "fresh");
    for seq in 2..200 {
        h.dispatch(seq, "MESSAGE_CREATE");
    }
    assert!(!h.machine.is_finished());
    assert_eq!(h.machine.last_seq(), Some(199));
}

/// Dispatch `seq`, then a payload over the cap: the connection is lost; the
/// resume replays past it (`seq + 1`, RESUMED) and the connection lives on.
fn refused_then_resumed_past(h: &mut Harness, seq: u64) {
    h.dispatch(seq, "MESSAGE_CREATE");
    h.machine.handle_message_too_large(h.now, 70_000_000);
    h.drain();
    wait_for_connect(h);
    h.open();
    h.hello();
    h.dispatch(seq + 1, "MESSAGE_CREATE");
    h.recv(r#"{"t":"RESUMED","s":null,"op":0,"d":{}}"#);
    h.advance(Duration::from_secs(40));
    h.recv(r#"{"op":11}"#);
}

#[test]
fn oversized_payloads_at_different_points_never_stop_the_shard() {
    // A cap set a little low: now and then a payload is refused, and the
    // resume goes past it. Each failure is at a new point.
    let mut h = Harness::active();
    for round in 0..30u64 {
        let seq = 2 + round * 2;
        refused_then_resumed_past(&mut h, seq);
    }
    assert!(!h.machine.is_finished());
    assert_eq!(h.sent_ops().iter().filter(|op| **op == 2).count(), 0, "never re-identified");
}

// Regression (a chaos soak stopped a healthy shard): after a payload failed
// at s=500 and the session was given up, the new session's seq starts again
// from 1, so every later failure at a new point below 500 counted as the same
// stuck payload, although the stream moved past each one; eight of them
// stopped the shard with `PayloadTooLarge`.
#[test]
fn failures_at_new_points_of_a_new_session_never_stop_the_shard() {
    let mut h = Harness::active();
    h.dispatch(500, "MESSAGE_CREATE");
    // Live, then on each of the three resumes: the session is given up.
    for _ in 0..4 {
        h.machine.handle_message_too_large(h.now, 100_000_000);
        h.drain();
        wait_for_connect(&mut h);
        h.open();
        h.hello();
    }
    assert_eq!(count_ops(&h, 2), 1, "a new session");
    h.ready(1, "fresh");
    for round in 0..30u64 {
        let seq = 2 + round * 2;
        refused_then_resumed_past(&mut h, seq);
    }
    assert_eq!(fatal(&h), None);
    assert!(!h.machine.is_finished());
    assert_eq!(count_ops(&h, 2), 1, "no more Identifies");
    assert_eq!(h.machine.last_seq(), Some(61));
}

// Review of 11b47c9: a payload every session reaches, at a point that
// alternates between sessions (GUILD_CREATEs come in any order: here after
// s=8, then s=5, then 8, …), each resume refused (op 9). Re-basing the point
// down to 5 let the next session's s=6 count as progress past it, so the
// failure at 8 started a fresh count and the loop spent Identifies forever
// (until the daily limit); it must stop before a third Identify, as it did.
#[test]
fn a_payload_every_session_reaches_at_alternating_points_still_stops_the_shard() {
    use discord_gateway_stream::protocol::FatalError;
    let mut h = Harness::new(config());
    for _ in 0..60 {
        if h.machine.is_finished() {
            break;
        }
        let Some(identified) = open_and_hello(&mut h) else { continue };
        if identified {
            let point = if count_ops(&h, 2) % 2 == 1 { 8 } else { 5 };
            for seq in 2..=point {
                h.dispatch(seq, "GUILD_CREATE");
            }
            h.machine.handle_message_too_large(h.now, 90_000_000);
            h.drain();
        } else {
            h.recv(r#"{"op":9,"d":false}"#);
        }
        wait_for_connect(&mut h);
    }
    assert!(matches!(fatal(&h), Some(FatalError::PayloadTooLarge { .. })), "{:?}", fatal(&h));
    assert!(count_ops(&h, 2) <= 3, "{} Identifies", count_ops(&h, 2));
}

// Review of 11b47c9: one payload refused at s=500 (the resume after it is
// refused, op 9), then healthy sessions that never fail but are each
// invalidated (op 9) before they reach s=500. The stuck point of the first
// session was never cleared, every later Identify counted against it, and
// the third was refused: the shard stopped with `PayloadTooLarge` although
// only one payload ever failed.
#[test]
fn sessions_that_never_fail_do_not_spend_the_identifies_of_an_old_stuck_point() {
    let mut h = Harness::active();
    h.dispatch(500, "MESSAGE_CREATE");
    h.machine.handle_message_too_large(h.now, 100_000_000);
    h.drain();
    wait_for_connect(&mut h);
    h.open();
    h.hello();
    assert_eq!(h.sent_ops(), [6], "a Resume");
    h.recv(r#"{"op":9,"d":false}"#);
    for session in 0..5u64 {
        wait_for_connect(&mut h);
        h.open();
        h.hello();
        assert_eq!(count_ops(&h, 2), usize::try_from(session + 1).unwrap(), "{:?}", fatal(&h));
        h.ready(1, "healthy");
        for seq in 2..100 {
            h.dispatch(seq, "MESSAGE_CREATE");
        }
        h.recv(r#"{"op":9,"d":false}"#);
    }
    assert_eq!(fatal(&h), None);
    assert!(!h.machine.is_finished());
}

// ------------------------------------------------ 12.3 daily identify guard

#[test]
fn a_shard_stops_before_identifying_more_than_the_daily_limit() {
    use discord_gateway_stream::protocol::{FatalError, DEFAULT_MAX_IDENTIFIES_PER_DAY};
    assert_eq!(DEFAULT_MAX_IDENTIFIES_PER_DAY, 50);
    // Every session is invalidated right after READY (op 9 false).
    let mut h = Harness::new(config());
    for _ in 0..200 {
        if h.machine.is_finished() {
            break;
        }
        h.open();
        h.hello();
        h.ready(1, "doomed");
        h.recv(r#"{"op":9,"d":false}"#);
        wait_for_connect(&mut h);
    }
    assert_eq!(count_ops(&h, 2), 50);
    assert_eq!(fatal(&h), Some(FatalError::TooManyIdentifies { limit: 50 }));
    assert!(fatal(&h).unwrap().to_string().contains("Config::max_identifies_per_day"));
}

#[test]
fn the_daily_identify_limit_is_a_sliding_24_hour_window() {
    let mut h = Harness::new(config().max_identifies_per_day(3));
    let cycle = |h: &mut Harness| {
        h.open();
        h.hello();
        h.ready(1, "s");
        h.recv(r#"{"op":9,"d":false}"#);
        wait_for_connect(h);
    };
    for _ in 0..3 {
        cycle(&mut h);
    }
    // A day later the old Identifies no longer count (the shard waited in
    // a reconnect delay: the connection is not opened meanwhile).
    h.advance(Duration::from_secs(24 * 3600));
    wait_for_connect(&mut h);
    for _ in 0..3 {
        cycle(&mut h);
    }
    assert!(!h.machine.is_finished());
    assert_eq!(count_ops(&h, 2), 6);
    cycle(&mut h);
    assert!(h.machine.is_finished());
    assert_eq!(count_ops(&h, 2), 6, "the seventh was never sent");
}

/// Opens a connection and sends Hello. `Some(true)`: the shard identified,
/// and got READY (s=1, session "stuck") back; `Some(false)`: it resumed;
/// `None`: it has stopped, or sent nothing.
fn open_and_hello(h: &mut Harness) -> Option<bool> {
    h.open();
    let before = h.sent.len();
    h.recv(&hello(41_250));
    let first = h.sent.get(before).cloned().unwrap_or_default();
    if h.machine.is_finished() || first.is_empty() {
        return None;
    }
    let identified = first.starts_with(r#"{"op":2"#);
    if identified {
        h.recv(
            r#"{"t":"READY","s":1,"op":0,"d":{"session_id":"stuck","resume_gateway_url":"wss://gateway.discord.gg"}}"#,
        );
    }
    Some(identified)
}

// Regression: a session that replays dispatches before the bad payload
// (READY, then s = 2, 3, 4, then the payload it can never accept) passed
// "other points" on the way and never reached the stop; it spent 50
// Identifies instead of two.
#[test]
fn a_payload_refused_after_several_dispatches_of_every_session_still_stops_the_shard() {
    use discord_gateway_stream::protocol::FatalError;
    let mut h = Harness::new(config());
    for _ in 0..60 {
        if h.machine.is_finished() {
            break;
        }
        let Some(identified) = open_and_hello(&mut h) else { continue };
        if identified {
            for seq in 2..=4 {
                h.dispatch(seq, "GUILD_CREATE");
            }
        }
        h.machine.handle_message_too_large(h.now, 90_000_000);
        h.drain();
        wait_for_connect(&mut h);
    }
    assert!(matches!(fatal(&h), Some(FatalError::PayloadTooLarge { after_seq: Some(4), .. })), "{:?}", fatal(&h));
    assert_eq!(count_ops(&h, 2), 2, "Identifies");
}

// Regression: failed connects after a drop counted as failed resumes,
// so a short network blip threw the session away and re-identified.
#[test]
fn failed_connects_are_not_failed_resumes() {
    let mut h = Harness::active();
    h.close(None);
    for _ in 0..6 {
        wait_for_connect(&mut h);
        h.connect_failed();
    }
    wait_for_connect(&mut h);
    h.clear();
    h.open();
    h.hello();
    assert_eq!(h.sent_ops(), [6], "the session is kept: a Resume, no Identify");
}
