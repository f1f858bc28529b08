//! Heartbeating (`docs/connection.md#heartbeating`), identify/resume payloads
//! (`docs/connection.md#identify-and-ready`,
//! `docs/connection.md#resume-and-resumed`), sequence handling
//! (`docs/connection.md#replay-and-duplicates`), send limits
//! (`docs/rate-limits.md#send-limit`), pacing
//! (`docs/connection.md#reconnect-pacing`), closes
//! (`docs/close-codes.md#our-own-close-codes`) and the `docs/edge-cases.md`
//! edge cases, against the sans-IO machine with a fake clock.

mod support;

use std::time::Duration;

use discord_gateway_stream::protocol::{
    Action, CloseMode, Command, CommandError, Compression, Config, ConfigError, DisconnectReason, Event, Machine,
    ReconnectPolicy, Status,
};
use discord_gateway_stream::{Intents, Session};
use support::machine::*;

const INTERVAL: Duration = Duration::from_millis(INTERVAL_MS);

// ----------------------------------------- heartbeats: docs/connection.md#heartbeating

#[test]
fn hello_schedules_the_first_heartbeat_after_interval_times_jitter_then_every_interval() {
    let mut firsts = Vec::new();
    for seed in [1, 2, 3] {
        let mut h = Harness::new(config().rng_seed(seed));
        h.open();
        h.hello();
        h.ready(1, "s");
        let hello_at = h.now - h.start;
        h.advance(INTERVAL * 3);
        // ACK each heartbeat as it goes out so no zombie is detected.
        let times: Vec<Duration> =
            h.sent_at.iter().filter(|(_, f)| f.starts_with(r#"{"op":1"#)).map(|(t, _)| *t).collect();
        assert!(!times.is_empty());
        let first = times[0] - hello_at;
        assert!(first < INTERVAL, "first beat after interval x jitter, jitter in [0,1): {first:?}");
        firsts.push(first);
    }
    assert!(firsts[0] != firsts[1] || firsts[1] != firsts[2], "jitter comes from the seeded generator");

    // Same seed, same schedule; later beats exactly one interval apart while ACKed.
    let mut h = Harness::new(config().rng_seed(7));
    h.open();
    h.hello();
    h.ready(1, "s");
    let mut beats = Vec::new();
    for _ in 0..4 {
        let due = h.machine.poll_timeout().expect("heartbeat scheduled");
        h.advance(due - h.now);
        beats.push(h.now);
        h.recv(r#"{"op":11}"#);
    }
    assert_eq!(h.heartbeats().len(), 4);
    for pair in beats.windows(2) {
        assert_eq!(pair[1] - pair[0], INTERVAL);
    }
}

#[test]
fn heartbeat_d_is_null_before_any_dispatch_then_the_last_sequence() {
    // docs/connection.md#heartbeat-sequence, docs/edge-cases.md#sequence-numbers (twilight#1940).
    let mut h = Harness::new(config());
    h.open();
    h.hello();
    h.advance(INTERVAL);
    assert_eq!(h.heartbeats(), [r#"{"op":1,"d":null}"#]);
    h.recv(r#"{"op":11}"#);
    h.ready(1, "s");
    h.dispatch(2, "GUILD_CREATE");
    h.advance(INTERVAL);
    assert_eq!(h.heartbeats().last().copied(), Some(r#"{"op":1,"d":2}"#));
}

#[test]
fn server_heartbeat_request_is_answered_at_once_with_our_own_sequence() {
    // docs/connection.md#server-heartbeat-requests: not with op 11, not with
    // the server's d (twilight#1968), timer untouched.
    let mut h = Harness::active();
    h.dispatch(5, "MESSAGE_CREATE");
    let due = h.machine.poll_timeout();
    h.recv(r#"{"op":1,"d":999}"#);
    assert_eq!(h.sent, [r#"{"op":1,"d":5}"#]);
    assert_eq!(h.machine.poll_timeout(), due);
}

#[test]
fn ack_clears_the_wait_and_measures_latency() {
    let mut h = Harness::active();
    let due = h.machine.poll_timeout().unwrap();
    h.advance(due - h.now);
    h.advance(Duration::from_millis(120));
    h.recv(r#"{"op":11,"s":null,"t":null}"#);
    assert_eq!(h.machine.latency().last(), Some(Duration::from_millis(120)));
    h.advance(INTERVAL);
    assert_eq!(h.heartbeats().len(), 2, "ACKed: the next beat is sent, not a zombie");
    assert!(h.reconnect_reasons().is_empty());
}

#[test]
fn stray_acks_and_non_dispatch_nulls_change_nothing() {
    // docs/edge-cases.md#heartbeats-around-reconnects (twilight#1969) and
    // docs/edge-cases.md#sequence-numbers (discord.io#208: an ACK with s:null
    // wiped the sequence).
    let mut h = Harness::active();
    h.dispatch(9, "MESSAGE_CREATE");
    h.recv(r#"{"t":null,"s":null,"op":11,"d":null}"#);
    h.recv(r#"{"t":null,"s":null,"op":11}"#);
    assert_eq!(h.machine.last_seq(), Some(9));
    assert!(h.events.iter().all(|e| !matches!(e, Event::Status(Status::Reconnecting { .. }))));
}

#[test]
fn the_old_connections_heartbeat_timer_never_fires_on_the_new_socket() {
    // docs/connection.md#one-timer-per-connection,
    // docs/edge-cases.md#heartbeats-around-reconnects (twilight#1974): nothing
    // is sent before the new Hello.
    let mut h = Harness::active();
    h.recv(r#"{"op":7,"d":null}"#);
    h.open();
    h.clear();
    h.advance(INTERVAL * 2 + Duration::from_secs(1));
    assert!(h.sent.is_empty(), "sent before Hello: {:?}", h.sent);
    // With no Hello, the connection is given up on
    // (docs/edge-cases.md#hello-and-ready-timeouts) instead of idling forever.
    assert_eq!(h.reconnect_reasons().first(), Some(&DisconnectReason::HelloTimeout));
}

// -------------------------- identify and resume: docs/connection.md#identify-and-ready

#[test]
fn identify_sends_token_intents_shard_properties_threshold_and_compress_false() {
    let config = config().shard(discord_gateway_stream::ShardId::new(2, 4).unwrap()).large_threshold(250);
    let mut h = Harness::new(config);
    h.open();
    h.hello();
    let identify: serde_json::Value = serde_json::from_str(&h.sent[0]).unwrap();
    assert_eq!(identify["op"], 2);
    let d = &identify["d"];
    assert_eq!(d["token"], TOKEN);
    assert_eq!(d["intents"], (Intents::GUILDS | Intents::GUILD_MESSAGES).bits());
    assert_eq!(d["shard"], serde_json::json!([2, 4]));
    assert_eq!(d["compress"], false);
    assert_eq!(d["large_threshold"], 250);
    assert_eq!(d["properties"]["browser"], "discord-gateway-stream");
    assert!(d.get("presence").is_none());
    assert_eq!(h.sent.len(), 1, "exactly one Identify per connection (4005)");
}

#[test]
fn resume_sends_token_session_and_stored_seq_only_after_hello() {
    // docs/connection.md#resume-and-resumed,
    // docs/edge-cases.md#resume-only-after-hello (twilight#1973).
    let mut h = Harness::active();
    h.dispatch(2, "A");
    h.dispatch(3, "B");
    h.close(None);
    h.open();
    assert!(h.sent.is_empty());
    h.hello();
    assert_eq!(h.sent, [resume_frame("sess-1", 3)]);
    assert_eq!(h.machine.status(), &Status::Resuming);
}

#[test]
fn a_persisted_session_resumes_in_a_new_machine() {
    // Session is serde: persist, restart, resume without an Identify.
    let mut h = Harness::active();
    h.dispatch(7, "MESSAGE_CREATE");
    let session = h.machine.close(CloseMode::Resumable).expect("session");
    h.drain();
    assert_eq!(h.actions, [Action::Close { code: 4000 }]);
    let saved = serde_json::to_string(&session).unwrap();
    let session: Session = serde_json::from_str(&saved).unwrap();
    assert_eq!((session.id.as_str(), session.seq, session.resume_url.as_deref()), ("sess-1", 7, Some(RESUME_HOST)));

    let mut h2 = Harness::new(config().resume_from(session));
    assert_eq!(h2.connects(), [RESUME]);
    h2.open();
    h2.hello();
    assert_eq!(h2.sent, [resume_frame("sess-1", 7)]);
    h2.dispatch(8, "MESSAGE_CREATE");
    h2.recv(r#"{"t":"RESUMED","s":9,"op":0,"d":{}}"#);
    assert_eq!(h2.seqs(), [8, 9]);
    assert_eq!(h2.machine.status(), &Status::Active);
}

#[test]
fn close_final_sends_1000_and_forgets_the_session() {
    // docs/close-codes.md#our-own-close-codes,
    // docs/edge-cases.md#wrong-close-code: a shutdown that should show the bot
    // offline.
    let mut h = Harness::active();
    assert_eq!(h.machine.close(CloseMode::Final), None);
    h.drain();
    assert_eq!(h.actions, [Action::Close { code: 1000 }]);
    assert_eq!(h.machine.session(), None);
    assert!(h.machine.is_finished());
    assert_eq!(h.machine.poll_timeout(), None);
    let cmd = Command::new(3, r#"{"since":null,"activities":[],"status":"online","afk":false}"#).unwrap();
    assert_eq!(h.machine.send_command(h.now, cmd), Err(CommandError::Closed));
}

#[test]
fn ready_stores_session_and_resume_url_and_restarts_the_sequence() {
    // docs/connection.md#identify-and-ready,
    // docs/edge-cases.md#sequence-numbers: READY's own s is recorded; a new
    // session restarts at READY.
    let mut h = Harness::active();
    h.dispatch(40, "MESSAGE_CREATE");
    h.close(Some(4009));
    let delay = h.reconnect_delays()[0];
    h.advance(delay);
    let _ = h.reconnect_and_first_frame();
    h.ready(1, "sess-2");
    let session = h.machine.session().unwrap();
    assert_eq!((session.id.as_str(), session.seq), ("sess-2", 1));
    assert_eq!(h.seqs(), [40, 1], "READY of the new session is delivered even though 1 < 40");
}

#[test]
fn identify_waits_for_a_permit_when_permits_are_enabled_and_resume_never_does() {
    // docs/connection.md#identify-and-ready,
    // docs/edge-cases.md#identify-collisions: the identify queue is asked
    // before every Identify, never before Resume.
    let mut h = Harness::new(config().identify_permits(true));
    h.open();
    h.hello();
    assert_eq!(h.actions.last(), Some(&Action::RequestIdentifyPermit));
    assert!(h.sent.is_empty());
    h.advance(Duration::from_secs(2));
    h.machine.grant_identify(h.now);
    h.drain();
    assert!(h.sent.iter().any(|f| f.starts_with(r#"{"op":2"#)));
    h.ready(1, "sess-1");
    h.clear();
    h.close(None);
    h.open();
    h.hello();
    assert!(!h.actions.contains(&Action::RequestIdentifyPermit));
    assert_eq!(h.sent.last().map(String::as_str), Some(resume_frame("sess-1", 1).as_str()));
}

#[test]
fn a_permit_for_a_dead_connection_is_ignored() {
    let mut h = Harness::new(config().identify_permits(true));
    h.open();
    h.hello();
    h.close(None);
    h.machine.grant_identify(h.now);
    h.drain();
    assert!(!h.sent.iter().any(|f| f.starts_with(r#"{"op":2"#)));
}

// ---------------------------------- sequence: docs/connection.md#replay-and-duplicates

#[test]
fn replayed_dispatches_at_or_below_the_last_seq_are_not_emitted_twice() {
    let mut h = Harness::active();
    h.dispatch(2, "MESSAGE_CREATE");
    h.dispatch(3, "MESSAGE_CREATE");
    h.close(None);
    let _ = h.reconnect_and_first_frame();
    // The gateway replays from an older point: 2 and 3 were delivered already.
    for seq in [2, 3, 4, 5] {
        h.dispatch(seq, "MESSAGE_CREATE");
    }
    h.dispatch(4, "MESSAGE_CREATE");
    h.recv(r#"{"t":"RESUMED","s":6,"op":0,"d":{"_trace":[]}}"#);
    assert_eq!(h.seqs(), [1, 2, 3, 4, 5, 6][1..].to_vec());
    let names: Vec<&str> = h.dispatches().iter().map(|d| d.event()).collect();
    assert_eq!(names.last(), Some(&"RESUMED"));
    assert_eq!(h.machine.last_seq(), Some(6));
}

#[test]
fn sequence_gaps_are_not_fatal() {
    // docs/edge-cases.md#sequence-numbers (serenity#1082).
    let mut h = Harness::active();
    h.dispatch(5, "X");
    h.dispatch(9, "Y");
    assert_eq!(h.seqs(), [5, 9]);
    assert_eq!(h.machine.status(), &Status::Active);
}

#[test]
fn dispatch_carries_the_untouched_d_and_frame() {
    let mut h = Harness::active();
    let frame = r#"{ "t" : "MESSAGE_CREATE", "s" : 2, "op" : 0, "d" : {"content":"caf\u00e9 \"q\"","n":[1, 2.5e3]} }"#;
    h.recv(frame);
    let d = h.dispatches()[0];
    assert_eq!(d.event(), "MESSAGE_CREATE");
    assert_eq!(d.data(), r#"{"content":"caf\u00e9 \"q\"","n":[1, 2.5e3]}"#);
    assert_eq!(d.frame(), frame);
    assert_eq!(d.shard(), discord_gateway_stream::ShardId::ONE);
}

// ----------------------------------------- send limits: docs/rate-limits.md#send-limit

fn presence(status: &str) -> Command {
    Command::new(3, &format!(r#"{{"since":null,"activities":[],"status":"{status}","afk":false}}"#)).unwrap()
}

#[test]
fn commands_wait_until_the_session_is_active() {
    // docs/edge-cases.md#commands-before-the-session-is-ready: commands before
    // Identify/READY close with 4003.
    let mut h = Harness::new(config());
    h.machine.send_command(h.now, presence("dnd")).unwrap();
    h.open();
    h.hello();
    assert_eq!(h.sent_ops(), [2], "only Identify before READY");
    h.ready(1, "s");
    assert_eq!(h.sent_ops(), [2, 3]);
}

#[test]
fn commands_get_117_slots_a_minute_and_heartbeats_keep_theirs() {
    // docs/rate-limits.md#send-limit /
    // docs/edge-cases.md#send-budget-exhaustion: 120 per 60 s, 3 reserved at a
    // 41.25 s interval; Identify took one of the other 117.
    let mut h = Harness::active();
    for _ in 0..130 {
        h.machine.send_command(h.now, presence("online")).unwrap();
    }
    h.drain();
    assert_eq!(h.sent.len(), 116);
    let due = h.machine.poll_timeout().unwrap();
    h.advance(due - h.now);
    assert_eq!(h.heartbeats().len(), 1, "the heartbeat still goes out");
    h.recv(r#"{"op":1}"#);
    assert_eq!(h.heartbeats().len(), 2, "and a requested one too");
    // The queued 14 go out once the window slides.
    h.advance(Duration::from_secs(61));
    let commands = h.sent.iter().filter(|f| f.starts_with(r#"{"op":3"#)).count();
    assert_eq!(commands, 130);
}

#[test]
fn oversized_and_core_owned_commands_are_refused_and_the_queue_is_bounded() {
    let mut h = Harness::new(config().max_queued_commands(2));
    h.machine.send_command(h.now, presence("a")).unwrap();
    h.machine.send_command(h.now, presence("b")).unwrap();
    assert_eq!(h.machine.send_command(h.now, presence("c")), Err(CommandError::QueueFull { limit: 2 }));
    assert!(matches!(
        Command::new(8, &format!(r#"{{"guild_id":"{}"}}"#, "9".repeat(4096))),
        Err(CommandError::TooLarge { .. })
    ));
    assert_eq!(Command::new(2, "{}"), Err(CommandError::CoreOwnedOpcode(2)));
}

#[test]
fn nothing_but_identify_follows_an_invalid_session() {
    // docs/connection.md#invalid-session-op-9: after op 9, stop draining the
    // command queue (api-docs#318).
    let mut h = Harness::active();
    h.recv(r#"{"op":9,"d":false}"#);
    h.machine.send_command(h.now, presence("idle")).unwrap();
    h.drain();
    assert!(h.sent.is_empty());
    let delay = h.reconnect_delays()[0];
    h.advance(delay);
    h.open();
    h.hello();
    assert_eq!(h.sent_ops(), [2]);
    h.ready(1, "s2");
    assert_eq!(h.sent_ops(), [2, 3]);
}

#[test]
fn the_last_presence_is_sent_again_in_the_next_identify() {
    // docs/edge-cases.md#presence-after-re-identify (twilight#2150): a new
    // session does not keep the runtime presence.
    let mut h = Harness::active();
    h.machine.send_command(h.now, presence("dnd")).unwrap();
    h.close(Some(4003));
    let delay = h.reconnect_delays()[0];
    h.advance(delay);
    let identify = h.reconnect_and_first_frame();
    assert_eq!(identify["d"]["presence"]["status"], "dnd");
}

// ----------------------------------------- pacing: docs/connection.md#reconnect-pacing

#[test]
fn refusals_before_hello_back_off_with_growing_delays() {
    // Peers reconnect with no growing delay when refused before Hello
    // (docs/connection.md#reconnect-pacing,
    // docs/edge-cases.md#reconnect-loops).
    let mut h = Harness::new(config());
    for _ in 0..7 {
        h.connect_failed();
        let delay = *h.reconnect_delays().last().unwrap();
        h.advance(delay);
    }
    let delays = h.reconnect_delays();
    let policy = ReconnectPolicy::default();
    for (n, delay) in delays.iter().enumerate() {
        let ceiling = policy.base * (1 << n);
        assert!(*delay >= policy.floor && *delay <= ceiling.min(policy.cap), "attempt {}: {delay:?}", n + 1);
    }
    assert!(delays[6] > delays[0] * 4, "{delays:?}");
    assert_eq!(h.connects().len(), 8);
}

#[test]
fn a_socket_that_never_sends_hello_is_given_up_on_with_backoff() {
    // docs/edge-cases.md#hello-and-ready-timeouts: one peer waits forever for Hello.
    let mut h = Harness::new(config().hello_timeout(Duration::from_secs(5)));
    for _ in 0..4 {
        h.open();
        h.advance(Duration::from_secs(5));
        let delay = *h.reconnect_delays().last().unwrap();
        assert!(delay >= Duration::from_millis(500));
        h.advance(delay);
    }
    assert_eq!(h.reconnect_reasons(), vec![DisconnectReason::HelloTimeout; 4]);
    assert_eq!(h.actions.iter().filter(|a| **a == Action::Close { code: 4000 }).count(), 4);
    assert_eq!(h.connects().len(), 5);
}

#[test]
fn a_flapping_connection_keeps_backing_off_until_it_stays_healthy() {
    // A connection that dies right after READY must not spin identify calls.
    let mut h = Harness::active();
    for _ in 0..5 {
        h.close(Some(4009));
        let delay = *h.reconnect_delays().last().unwrap();
        h.advance(delay);
        let _ = h.reconnect_and_first_frame();
        h.ready(1, "again");
        h.advance(Duration::from_secs(2));
    }
    let delays = h.reconnect_delays();
    // Each loss ends the session (4009), so every re-identify waits 1-5 s at
    // least, and the backoff under it keeps growing while the flapping lasts.
    assert!(delays.iter().all(|d| *d >= Duration::from_secs(1)), "{delays:?}");
    // Healthy for 30 s: the next loss is immediate again.
    h.advance(Duration::from_secs(30));
    h.clear();
    h.close(None);
    assert_eq!(h.reconnect_delays(), [Duration::ZERO]);
}

#[test]
fn ready_timeout_reconnects_but_a_long_replay_does_not_time_out() {
    // docs/edge-cases.md#hello-and-ready-timeouts (discord.js#8759): stalls
    // after Identify/Resume; but replays can be long.
    let mut h = Harness::new(config().ready_timeout(Duration::from_secs(10)));
    h.open();
    h.hello();
    h.advance(Duration::from_secs(4));
    h.recv(r#"{"op":11}"#);
    h.advance(Duration::from_secs(6));
    assert_eq!(h.reconnect_reasons(), [DisconnectReason::ReadyTimeout]);

    let mut h = Harness::new(config().ready_timeout(Duration::from_secs(10)));
    h.open();
    h.hello();
    h.ready(1, "s");
    h.close(None);
    let _ = h.reconnect_and_first_frame();
    for seq in 2..20 {
        h.advance(Duration::from_secs(5));
        h.recv(r#"{"op":11}"#);
        h.dispatch(seq, "GUILD_CREATE");
    }
    assert_eq!(h.machine.status(), &Status::Resuming);
    assert_eq!(h.reconnect_reasons(), [DisconnectReason::Closed { code: None }]);
}

// ------------------------------------------------------ edge cases: docs/edge-cases.md

#[test]
fn op7_instead_of_hello_reconnects() {
    // docs/edge-cases.md#reconnect-before-hello: a draining node sends op 7 in place of Hello.
    let mut h = Harness::new(config());
    h.open();
    h.recv(r#"{"t":null,"s":null,"op":7,"d":null}"#);
    assert_eq!(h.reconnect_reasons(), [DisconnectReason::Reconnect]);
    assert_eq!(h.connects(), [BASE, BASE]);
}

#[test]
fn an_unusable_resume_gateway_url_falls_back_to_the_base_url_without_panicking() {
    // docs/edge-cases.md#unusable-resume-url: twilight 0.18 panics on op 7
    // after such a READY; another peer idles forever.
    for bad in ["not a url", "https://x", "", "wss://", "wss://\u{0}"] {
        let mut h = Harness::new(config());
        h.open();
        h.hello();
        let ready = serde_json::json!({"t":"READY","s":1,"op":0,"d":{"session_id":"sess-1","resume_gateway_url":bad}});
        h.recv(&ready.to_string());
        h.recv(r#"{"op":7,"d":null}"#);
        assert_eq!(h.connects(), [BASE, BASE], "{bad:?}");
        let frame = h.reconnect_and_first_frame();
        assert_eq!(frame["op"], 6, "a resume is accepted on the base URL too");
    }
}

#[test]
fn a_resume_url_that_cannot_be_reached_is_dropped_for_the_base_url() {
    // docs/connection.md#resume-url (twilight#1942): fall back when connecting
    // to the resume URL fails.
    let mut h = Harness::active();
    h.close(None);
    assert_eq!(h.connects(), [RESUME]);
    h.connect_failed();
    let delay = *h.reconnect_delays().last().unwrap();
    h.advance(delay);
    assert_eq!(h.connects(), [RESUME, BASE]);
    assert_eq!(h.reconnect_and_first_frame()["op"], 6);
}

#[test]
fn malformed_unknown_and_mistyped_payloads_are_skipped() {
    // Never a panic; later events still arrive.
    let mut h = Harness::active();
    for bad in [
        "",
        "not json",
        "{",
        "[]",
        r#"{"op":"0"}"#,
        r#"{"op":0}"#,
        r#"{"op":0,"s":2}"#,
        r#"{"op":0,"t":"X"}"#,
        r#"{"op":0,"t":5,"s":2,"d":{}}"#,
        r#"{"op":250,"d":{}}"#,
        r#"{"op":5,"d":null}"#,
        r#"{"op":10,"d":{"heartbeat_interval":"soon"}}"#,
        r#"{"op":11,"d":{}} trailing"#,
    ] {
        h.recv(bad);
    }
    h.dispatch(2, "MESSAGE_CREATE");
    assert_eq!(h.seqs(), [2]);
    assert_eq!(h.machine.status(), &Status::Active);
    assert!(h.reconnect_reasons().is_empty());
    assert!(h.sent.is_empty());
}

#[test]
fn invalid_session_with_a_non_boolean_d_is_treated_as_not_resumable() {
    // The server said the session is invalid; only an explicit `true` may resume.
    let mut h = Harness::active();
    h.recv(r#"{"op":9,"d":"maybe"}"#);
    assert_eq!(h.reconnect_reasons(), [DisconnectReason::InvalidSession { resumable: false }]);
    assert!(h.machine.session().is_none());
}

#[test]
fn hello_without_a_usable_interval_reconnects() {
    for hello in [r#"{"op":10,"d":{}}"#, r#"{"op":10,"d":{"heartbeat_interval":0}}"#, r#"{"op":10}"#] {
        let mut h = Harness::new(config());
        h.open();
        h.recv(hello);
        assert_eq!(h.reconnect_reasons(), [DisconnectReason::BadHello], "{hello}");
        assert!(h.sent.is_empty());
    }
}

#[test]
fn absurd_numbers_from_the_wire_never_panic() {
    // Instant + Duration overflows on a Hello interval near u64::MAX ms.
    let mut h = Harness::new(config());
    h.open();
    h.recv(&format!(r#"{{"op":10,"d":{{"heartbeat_interval":{}}}}}"#, u64::MAX));
    assert_eq!(h.reconnect_reasons(), [DisconnectReason::BadHello]);
    let mut h = Harness::active();
    h.dispatch(u64::MAX, "MESSAGE_CREATE");
    h.dispatch(u64::MAX, "MESSAGE_CREATE");
    assert_eq!(h.seqs(), [u64::MAX], "delivered once");
    let now = std::time::Instant::now();
    let too_long = config().hello_timeout(Duration::from_secs(u64::MAX / 2));
    assert!(Machine::new(too_long, now).is_err());
}

#[test]
fn server_sent_1000_resumes() {
    // docs/edge-cases.md#server-sent-1000 (api-docs#2922).
    let mut h = Harness::active();
    h.close(Some(1000));
    assert_eq!(h.reconnect_and_first_frame()["op"], 6);
}

#[test]
fn status_events_trace_the_lifecycle() {
    let mut h = Harness::new(config());
    h.open();
    h.hello();
    h.ready(1, "s");
    let statuses: Vec<Status> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Status(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [Status::Connecting { resume: false }, Status::AwaitingHello, Status::Identifying, Status::Active]
    );
}

#[test]
fn configuration_errors_are_reported_up_front() {
    let now = std::time::Instant::now();
    let bad = [
        Config::new("", Intents::GUILDS),
        Config::new("t", Intents::GUILDS).base_url("https://gateway.discord.gg"),
        Config::new("t", Intents::GUILDS).large_threshold(10),
        Config::new("t", Intents::GUILDS).properties(discord_gateway_stream::protocol::IdentifyProperties {
            os: "x".repeat(5000),
            browser: "b".into(),
            device: "d".into(),
        }),
    ];
    for config in bad {
        assert!(Machine::new(config, now).is_err());
    }
    // A payload cap under 64 KiB can refuse READY; one past 1 GiB is no cap.
    for bytes in [0, 4096, 64 * 1024 - 1, (1 << 30) + 1, usize::MAX] {
        let config = Config::new("t", Intents::GUILDS).max_message_size(bytes);
        assert_eq!(Machine::new(config, now).err(), Some(ConfigError::MaxMessageSize(bytes)));
    }
    assert!(Machine::new(Config::new("t", Intents::GUILDS).max_message_size(1 << 30), now).is_ok());
    assert!(Machine::new(Config::new("t", Intents::GUILDS).max_message_size(64 * 1024), now).is_ok());
    // A compression whose cargo feature is off is refused up front, naming the feature.
    for (compression, feature) in [(Compression::ZlibStream, "`zlib`"), (Compression::ZstdStream, "`zstd`")] {
        let message = ConfigError::CompressionUnavailable(compression).to_string();
        assert!(message.contains(feature), "{message}");
        let result = Machine::new(Config::new("t", Intents::GUILDS).compression(compression), now);
        if compression.is_available() {
            assert!(result.is_ok());
        } else {
            assert_eq!(result.err(), Some(ConfigError::CompressionUnavailable(compression)));
        }
    }
}

#[test]
fn the_token_never_appears_in_debug_output() {
    let h = Harness::active();
    let debug = format!("{:?} {:?}", h.machine, config());
    assert!(!debug.contains(TOKEN), "token leaked into Debug");
    let session = h.machine.session().unwrap();
    assert!(!format!("{session:?}").contains("sess-1"));
}

#[test]
fn a_socket_that_never_opens_is_abandoned_and_retried_with_backoff() {
    // A TCP connect or WebSocket upgrade that hangs must not wedge the shard.
    let mut h = Harness::new(config().connect_timeout(Duration::from_secs(10)));
    h.advance(Duration::from_secs(10));
    assert_eq!(h.reconnect_reasons(), [DisconnectReason::ConnectFailed]);
    assert_eq!(h.actions.last(), Some(&Action::Close { code: 4000 }), "tells the driver to drop the attempt");
    let delay = h.reconnect_delays()[0];
    assert!(delay >= Duration::from_millis(500));
    h.advance(delay);
    assert_eq!(h.connects().len(), 2);
}

#[test]
fn resumed_ends_the_replay_whatever_its_seq() {
    // Regression: a RESUMED with an already seen `s` (or none) left the
    // shard Resuming until the ready timeout, holding commands back.
    for resumed in [r#"{"t":"RESUMED","s":2,"op":0,"d":{}}"#, r#"{"t":"RESUMED","s":null,"op":0,"d":{}}"#] {
        let mut h = Harness::active();
        h.dispatch(2, "MESSAGE_CREATE");
        h.close(None);
        let _ = h.reconnect_and_first_frame();
        h.recv(resumed);
        assert_eq!(h.machine.status(), &Status::Active, "{resumed}");
        assert_eq!(h.seqs(), [2], "no duplicate emitted");
    }
}

#[test]
fn commands_not_yet_taken_by_the_driver_survive_a_lost_connection() {
    // Regression: a failed write dropped the commands queued behind it.
    let mut h = Harness::active();
    h.machine.send_command(h.now, presence("dnd")).unwrap();
    h.machine.send_command(h.now, presence("idle")).unwrap();
    // The driver takes nothing (its write would fail); the connection drops.
    h.machine.handle_close(h.now, None);
    h.drain();
    assert!(h.sent.is_empty());
    h.open();
    h.hello();
    h.recv(r#"{"t":"RESUMED","s":2,"op":0,"d":{}}"#);
    let statuses: Vec<serde_json::Value> = h.sent.iter().map(|f| serde_json::from_str(f).unwrap()).collect();
    let sent: Vec<&str> =
        statuses.iter().filter(|v| v["op"] == 3).map(|v| v["d"]["status"].as_str().unwrap()).collect();
    assert_eq!(sent, ["dnd", "idle"], "sent after the resume, in order");
}

#[test]
fn every_reidentify_after_a_lost_session_waits_one_to_five_seconds() {
    // docs/connection.md#reconnect-pacing: every re-identify waits the random
    // 1-5 s first, whatever ended the session, not only op 9.
    for code in [4001, 4003, 4007, 4009] {
        let mut h = Harness::active();
        h.close(Some(code));
        let delay = h.reconnect_delays()[0];
        assert!(delay >= Duration::from_secs(1) && delay <= Duration::from_secs(5), "{code}: {delay:?}");
    }
}

#[test]
fn while_reading_is_paused_heartbeats_continue_and_nothing_is_a_zombie() {
    // Regression: a slow consumer stopped the driver reading, ACKs sat
    // unread, and the connection was declared a zombie and dropped.
    let mut h = Harness::active();
    h.machine.set_reading_paused(h.now, true);
    h.advance(INTERVAL * 4);
    assert!(h.heartbeats().len() >= 3, "heartbeats keep going: {:?}", h.heartbeats());
    assert!(h.reconnect_reasons().is_empty(), "{:?}", h.reconnect_reasons());
    // Reading again: the buffered ACK arrives and all is well.
    h.machine.set_reading_paused(h.now, false);
    h.recv(r#"{"op":11}"#);
    h.advance(INTERVAL);
    assert!(h.reconnect_reasons().is_empty());
    // But a connection that stays silent once reading resumes is a zombie.
    h.advance(INTERVAL * 2);
    assert_eq!(h.reconnect_reasons().first(), Some(&DisconnectReason::Zombie));
}

#[test]
fn a_paused_reader_does_not_time_out_waiting_for_ready() {
    let mut h = Harness::new(config().ready_timeout(Duration::from_secs(10)));
    h.open();
    h.hello();
    h.machine.set_reading_paused(h.now, true);
    h.advance(Duration::from_secs(30));
    assert!(h.reconnect_reasons().is_empty());
    h.machine.set_reading_paused(h.now, false);
    h.advance(Duration::from_secs(9));
    h.recv(r#"{"op":11}"#);
    assert!(h.reconnect_reasons().is_empty(), "the deadline restarted when reading resumed");
    h.advance(Duration::from_secs(2));
    assert_eq!(h.reconnect_reasons(), [DisconnectReason::ReadyTimeout]);
}

// -------------------------------- payload reading: docs/connection.md#payload-envelope

#[test]
fn by_default_a_canonical_dispatch_is_not_validated_and_validate_payloads_checks_it() {
    // `d` is not JSON; the prefix is Discord's canonical form.
    let broken = r#"{"t":"MESSAGE_CREATE","s":2,"op":0,"d":{"content":}}"#;
    let mut h = Harness::active();
    h.recv(broken);
    assert_eq!(h.seqs(), vec![2], "the fast path delivers; the consumer's parser rejects `d`");
    assert!(h.dispatches()[0].deserialize::<serde_json::Value>().is_err());

    let mut h = Harness::new(config().validate_payloads(true));
    h.open();
    h.hello();
    h.ready(1, "sess-1");
    h.clear();
    h.recv(broken);
    assert!(h.seqs().is_empty(), "the strict reader skips a payload that is not JSON");
    h.dispatch(2, "MESSAGE_CREATE");
    assert_eq!(h.seqs(), vec![2], "a skipped payload does not count as delivered");
}

#[test]
fn both_readers_deliver_the_same_dispatches_for_valid_payloads() {
    let payloads = [
        r#"{"t":"MESSAGE_CREATE","s":2,"op":0,"d":{"content":"hi"}}"#,
        r#"{"op":0,"s":3,"t":"TYPING_START","d":{"user_id":"1"}}"#,
        r#"{"t":"GUILD_CREATE", "s":4, "op":0, "d":[1, 2]}"#,
        r#"{"t":"X\u0059","s":5,"op":0,"d":null}"#,
    ];
    let run = |validate: bool| {
        let mut h = Harness::new(config().validate_payloads(validate));
        h.open();
        h.hello();
        h.ready(1, "sess-1");
        h.clear();
        for payload in payloads {
            h.recv(payload);
        }
        h.dispatches().iter().map(|d| (d.seq(), d.event().to_owned(), d.data().to_owned())).collect::<Vec<_>>()
    };
    let fast = run(false);
    assert_eq!(fast.len(), 4);
    assert_eq!(fast[3].1, "XY");
    assert_eq!(fast, run(true));
}

#[test]
fn control_payloads_and_ready_are_always_read_in_full() {
    // A key after `d` would be folded into `d` by the fast path; the core's
    // own payloads never take it, so Hello and READY still work.
    let mut h = Harness::new(config());
    h.open();
    h.recv(&format!(r#"{{"t":null,"s":null,"op":10,"d":{{"heartbeat_interval":{INTERVAL_MS}}},"_trace":{{"a":1}}}}"#));
    assert!(h.sent.iter().any(|f| f.starts_with(r#"{"op":2"#)), "Hello accepted: {:?}", h.sent);
    h.recv(&format!(
        r#"{{"t":"READY","s":1,"op":0,"d":{{"v":10,"session_id":"sess-x","resume_gateway_url":"{RESUME_HOST}"}},"x":{{}}}}"#
    ));
    assert_eq!(h.seqs(), vec![1]);
    assert_eq!(
        h.dispatches()[0].data(),
        format!(r#"{{"v":10,"session_id":"sess-x","resume_gateway_url":"{RESUME_HOST}"}}"#)
    );
    assert_eq!(h.machine.session().map(|s| s.id), Some("sess-x".to_owned()), "READY set up the session");
}

#[test]
fn an_event_filter_delivers_only_the_named_dispatches_and_tracks_every_seq() {
    let mut h = Harness::new(config().events(["MESSAGE_CREATE"]));
    h.open();
    h.hello();
    h.ready(1, "sess-1");
    assert!(h.seqs().is_empty(), "READY is not named: handled, not delivered");
    assert_eq!(h.machine.session().map(|s| s.id), Some("sess-1".to_owned()), "READY still set up the session");
    h.dispatch(2, "GUILD_CREATE");
    h.dispatch(3, "MESSAGE_CREATE");
    h.dispatch(4, "TYPING_START");
    assert_eq!(h.seqs(), vec![3]);
    assert_eq!(h.machine.last_seq(), Some(4), "filtered dispatches still count");
    // Heartbeats and a resume carry the last seq, filtered or not.
    h.clear();
    h.recv(r#"{"t":null,"s":null,"op":1,"d":null}"#);
    assert_eq!(h.sent, vec![r#"{"op":1,"d":4}"#.to_owned()]);
    h.recv(r#"{"t":null,"s":null,"op":7,"d":null}"#);
    let resume = h.reconnect_and_first_frame();
    assert_eq!(resume["d"]["seq"], 4);
}

#[test]
fn a_filtered_resumed_still_ends_the_replay_and_an_empty_filter_delivers_nothing() {
    let mut h = Harness::new(config().events(Vec::<&str>::new()));
    h.open();
    h.hello();
    h.ready(1, "sess-1");
    h.dispatch(2, "MESSAGE_CREATE");
    assert!(h.seqs().is_empty(), "an empty list delivers nothing");
    assert_eq!(h.machine.status(), &Status::Active, "READY still made the shard active");
    h.recv(r#"{"t":null,"s":null,"op":7,"d":null}"#);
    let resume = h.reconnect_and_first_frame();
    assert_eq!(resume["d"]["seq"], 2);
    // A replay of nothing but filtered events, then RESUMED (filtered too).
    h.dispatch(3, "TYPING_START");
    h.recv(r#"{"t":"RESUMED","s":4,"op":0,"d":{}}"#);
    assert_eq!(h.machine.status(), &Status::Active, "RESUMED ended the replay");
    assert!(h.seqs().is_empty());
    // A named event with an s already seen is still a duplicate.
    let mut h = Harness::new(config().events(["MESSAGE_CREATE"]));
    h.open();
    h.hello();
    h.ready(1, "sess-1");
    h.dispatch(2, "TYPING_START");
    h.dispatch(2, "MESSAGE_CREATE");
    h.dispatch(3, "MESSAGE_CREATE");
    assert_eq!(h.seqs(), vec![3]);
}

// ---------------------------------------------------------------- protocol violations

#[test]
fn ready_or_resumed_before_hello_is_a_protocol_violation_not_an_active_shard() {
    for early in [
        r#"{"t":"READY","s":1,"op":0,"d":{"v":10,"session_id":"early","resume_gateway_url":"wss://gateway.discord.gg"}}"#,
        r#"{"t":"RESUMED","s":5,"op":0,"d":{}}"#,
    ] {
        let mut h = Harness::new(config());
        h.open();
        h.recv(early);
        assert!(h.seqs().is_empty(), "nothing delivered");
        assert_ne!(h.machine.status(), &Status::Active, "no Active shard without a heartbeat");
        assert_eq!(
            h.reconnect_reasons(),
            vec![DisconnectReason::ProtocolViolation { what: "READY or RESUMED before our Identify or Resume" }]
        );
        assert!(h.machine.session().is_none(), "an early READY's session is not taken");
    }
}

#[test]
fn a_ready_without_s_still_sets_up_the_session() {
    let mut h = Harness::new(config());
    h.open();
    h.hello();
    h.recv(&format!(
        r#"{{"t":"READY","s":null,"op":0,"d":{{"v":10,"session_id":"sess-n","resume_gateway_url":"{RESUME_HOST}"}}}}"#
    ));
    assert_eq!(h.machine.status(), &Status::Active);
    assert_eq!(h.machine.session().map(|s| s.id), Some("sess-n".to_owned()));
    assert!(h.seqs().is_empty(), "a READY without `s` is not delivered");
    h.dispatch(2, "MESSAGE_CREATE");
    assert_eq!(h.seqs(), vec![2]);
}

#[test]
fn a_presence_update_that_is_not_an_object_is_refused_and_never_poisons_identify() {
    for bad in ["null", "[]", r#""online""#, "1"] {
        assert_eq!(Command::new(3, bad), Err(CommandError::InvalidPresence), "{bad}");
    }
    // A good one is remembered for the next Identify as before.
    let mut h = Harness::active();
    let presence = r#"{"since":null,"activities":[],"status":"idle","afk":false}"#;
    h.machine.send_command(h.now, Command::new(3, presence).expect("an object")).expect("queued");
    h.recv(r#"{"t":null,"s":null,"op":9,"d":false}"#);
    h.advance(Duration::from_secs(6));
    let identify = h.reconnect_and_first_frame();
    assert_eq!(identify["op"], 2);
    assert_eq!(identify["d"]["presence"]["status"], "idle");
}

#[test]
fn ready_while_waiting_for_the_identify_permit_or_resumed_to_an_identify_is_a_violation() {
    // READY answering an Identify we never sent (still waiting for the permit).
    let mut h = Harness::new(config().identify_permits(true));
    h.open();
    h.hello();
    assert_eq!(h.machine.status(), &Status::AwaitingIdentifyPermit);
    h.ready(1, "never-identified");
    assert_ne!(h.machine.status(), &Status::Active);
    assert!(h.machine.session().is_none() && h.seqs().is_empty());
    assert_eq!(h.reconnect_reasons().len(), 1);
    // RESUMED answering an Identify.
    let mut h = Harness::new(config());
    h.open();
    h.hello();
    h.recv(r#"{"t":"RESUMED","s":3,"op":0,"d":{}}"#);
    assert_ne!(h.machine.status(), &Status::Active);
    assert_eq!(h.reconnect_reasons().len(), 1);
}

#[test]
fn a_dispatch_before_our_resume_neither_arrives_nor_moves_the_resume_point() {
    let mut h = Harness::active();
    h.dispatch(2, "MESSAGE_CREATE");
    h.recv(r#"{"t":null,"s":null,"op":7,"d":null}"#);
    h.clear();
    h.open();
    // Before Hello on the new connection: a huge `s` would skip the replay.
    h.dispatch(1_000_000_000, "MESSAGE_CREATE");
    assert!(h.seqs().is_empty());
    h.hello();
    let resume: serde_json::Value = serde_json::from_str(&h.sent[0]).expect("JSON");
    assert_eq!(resume["op"], 6);
    assert_eq!(resume["d"]["seq"], 2, "resumed from the last real dispatch");
}
