//! `docs/connection.md#resume-or-identify` and the close codes of
//! `docs/close-codes.md#gateway-close-codes`, one test per row,
//! driven through the sans-IO machine with a fake clock.

mod support;

use std::time::Duration;

use discord_gateway_stream::protocol::{Action, DisconnectReason, Event, FatalError, Status};
use support::machine::*;

fn assert_resumes(h: &mut Harness, seq: u64) {
    let frame = h.reconnect_and_first_frame();
    assert_eq!(
        frame.to_string(),
        serde_json::from_str::<serde_json::Value>(&resume_frame("sess-1", seq)).unwrap().to_string()
    );
}

fn assert_identifies(h: &mut Harness) {
    let frame = h.reconnect_and_first_frame();
    assert_eq!(frame["op"], 2, "expected Identify, got {frame}");
    assert_eq!(frame["d"]["token"], TOKEN);
}

#[test]
fn op7_reconnect_closes_resumably_and_resumes_at_once_on_the_resume_url() {
    // docs/connection.md#resume-or-identify;
    // docs/close-codes.md#our-own-close-codes: never 1000 on a reconnect;
    // docs/edge-cases.md#resume-url-query: the resume URL gets the query.
    let mut h = Harness::active();
    h.dispatch(2, "MESSAGE_CREATE");
    h.recv(r#"{"t":null,"s":null,"op":7,"d":null}"#);
    assert_eq!(h.actions, [Action::Close { code: 4000 }, Action::Connect { url: RESUME.into() }]);
    assert_eq!(h.reconnect_delays(), [Duration::ZERO]);
    assert_resumes(&mut h, 2);
}

#[test]
fn op7_with_no_session_yet_reconnects_to_the_base_url_and_identifies() {
    // docs/connection.md#resume-or-identify (no session) and
    // docs/edge-cases.md#reconnect-before-hello: op 7 after Identify but before
    // READY.
    let mut h = Harness::new(config());
    h.open();
    h.hello();
    h.clear();
    h.recv(r#"{"op":7,"d":null}"#);
    assert_eq!(h.connects(), [BASE]);
    assert_identifies(&mut h);
}

#[test]
fn zombie_no_ack_before_next_heartbeat_closes_without_waiting_and_resumes() {
    // docs/connection.md#resume-or-identify;
    // docs/connection.md#zombie-connections;
    // docs/edge-cases.md#half-open-connections.
    let mut h = Harness::active();
    h.advance(Duration::from_millis(INTERVAL_MS)); // first heartbeat (jittered) goes out, never ACKed
    assert_eq!(h.heartbeats().len(), 1);
    h.advance(Duration::from_millis(INTERVAL_MS));
    assert_eq!(h.reconnect_reasons(), [DisconnectReason::Zombie]);
    assert_eq!(h.actions, [Action::Close { code: 4000 }, Action::Connect { url: RESUME.into() }]);
    assert_resumes(&mut h, 1);
}

#[test]
fn connection_lost_with_no_close_code_resumes() {
    // docs/connection.md#resume-or-identify: TCP reset, EOF, 1006.
    for code in [None, Some(1006), Some(1005)] {
        let mut h = Harness::active();
        h.close(code);
        assert_eq!(h.actions, [Action::Connect { url: RESUME.into() }], "{code:?}");
        assert_resumes(&mut h, 1);
    }
}

#[test]
fn server_close_with_a_reconnect_code_resumes_or_identifies_per_the_table() {
    // docs/connection.md#resume-or-identify with the "Crate" column of
    // docs/close-codes.md#gateway-close-codes.
    let resume_codes = [4000, 4002, 4008, 1000, 1001, 1011, 4999];
    let identify_codes = [4001, 4003, 4005, 4006, 4007, 4009];
    for code in resume_codes {
        let mut h = Harness::active();
        h.close(Some(code));
        assert_eq!(h.connects(), [RESUME], "close {code}");
        assert_resumes(&mut h, 1);
    }
    for code in identify_codes {
        let mut h = Harness::active();
        h.close(Some(code));
        // docs/connection.md#reconnect-pacing
        assert!(h.connects().is_empty(), "close {code}: re-identify waits 1-5 s");
        let delay = h.reconnect_delays()[0];
        h.advance(delay);
        assert_eq!(h.connects(), [BASE], "close {code} must go to the base URL");
        assert_identifies(&mut h);
    }
}

#[test]
fn op9_true_resumes() {
    // docs/connection.md#resume-or-identify;
    // docs/edge-cases.md#invalid-session-after-resume (`d:true` means resume).
    let mut h = Harness::active();
    h.recv(r#"{"op":9,"d":true}"#);
    assert_eq!(h.reconnect_reasons(), [DisconnectReason::InvalidSession { resumable: true }]);
    assert_eq!(h.actions, [Action::Close { code: 4000 }, Action::Connect { url: RESUME.into() }]);
    assert_resumes(&mut h, 1);
}

#[test]
fn op9_false_waits_one_to_five_seconds_then_identifies_on_the_base_url() {
    // docs/connection.md#resume-or-identify.
    for seed in 0..20 {
        let mut h = Harness::new(config().rng_seed(seed));
        h.open();
        h.hello();
        h.ready(1, "sess-1");
        h.clear();
        h.recv(r#"{"op":9,"d":false}"#);
        let delay = h.reconnect_delays()[0];
        assert!(delay >= Duration::from_secs(1) && delay <= Duration::from_secs(5), "seed {seed}: {delay:?}");
        assert_eq!(h.actions, [Action::Close { code: 4000 }], "no connect before the wait");
        assert!(h.machine.session().is_none(), "op 9 false forgets the session");
        h.advance(delay - Duration::from_millis(1));
        assert!(h.connects().is_empty());
        h.advance(Duration::from_millis(1));
        assert_eq!(h.connects(), [BASE]);
        assert_identifies(&mut h);
    }
}

#[test]
fn close_4007_and_4009_identify_without_trying_a_resume_first() {
    // docs/connection.md#resume-or-identify: peers resume after 4007/4009 and
    // waste a round trip; we identify.
    for code in [4007, 4009] {
        let mut h = Harness::active();
        h.close(Some(code));
        assert!(h.machine.session().is_none(), "{code}");
        let delay = h.reconnect_delays()[0];
        h.advance(delay);
        assert_identifies(&mut h);
        assert!(!h.sent.iter().any(|f| f.contains(r#""op":6"#)), "no Resume after {code}");
    }
}

#[test]
fn close_4004_and_4010_to_4014_stop_for_good() {
    // docs/connection.md#resume-or-identify;
    // docs/edge-cases.md#reconnect-loops: no reconnect loop on fatal codes.
    let table = [
        (4004, FatalError::AuthenticationFailed),
        (4010, FatalError::InvalidShard),
        (4011, FatalError::ShardingRequired),
        (4012, FatalError::InvalidApiVersion),
        (4013, FatalError::InvalidIntents),
        (4014, FatalError::DisallowedIntents),
    ];
    for (code, fatal) in table {
        let mut h = Harness::active();
        h.close(Some(code));
        assert_eq!(h.events, [Event::Fatal(fatal), Event::Status(Status::Fatal(fatal))]);
        assert!(h.actions.is_empty(), "{code}: no reconnect");
        assert_eq!(h.machine.poll_timeout(), None);
        assert!(h.machine.is_finished());
        h.advance(Duration::from_secs(3600));
        assert!(h.actions.is_empty());
    }
}

#[test]
fn fatal_close_before_hello_also_stops() {
    let mut h = Harness::new(config());
    h.open();
    h.close(Some(4004));
    assert!(matches!(h.events.last(), Some(Event::Status(Status::Fatal(FatalError::AuthenticationFailed)))));
    assert_eq!(h.connects(), [BASE], "only the first connect");
}

#[test]
fn resume_attempts_that_keep_failing_fall_back_to_identify() {
    // docs/connection.md#resume-or-identify;
    // docs/edge-cases.md#resumes-that-keep-failing: resumes answered with 1006,
    // again and again.
    let mut h = Harness::active();
    h.close(None);
    for attempt in 1..=3 {
        let resume = h.reconnect_and_first_frame();
        assert_eq!(resume["op"], 6, "attempt {attempt}");
        h.clear();
        h.close(Some(1006));
        let delay = h.reconnect_delays()[0];
        h.advance(delay);
    }
    // Three resumes failed: the next connection identifies on the base URL.
    assert_eq!(h.connects(), [BASE]);
    assert_identifies(&mut h);
}

#[test]
fn op9_after_resume_drops_session_and_resume_url_and_never_resumes_it_again() {
    // docs/edge-cases.md#invalid-session-after-resume: the normal reply when
    // the session expired; nostrum#566 looped resuming.
    let mut h = Harness::active();
    h.close(None);
    let _ = h.reconnect_and_first_frame();
    h.clear();
    h.recv(r#"{"op":9,"d":false}"#);
    let delay = h.reconnect_delays()[0];
    h.advance(delay);
    assert_eq!(h.connects(), [BASE]);
    assert_identifies(&mut h);
}

#[test]
fn op9_true_with_no_session_identifies() {
    // Nothing to resume: treat like d:false (docs/connection.md#resume-or-identify).
    let mut h = Harness::new(config());
    h.open();
    h.hello();
    h.clear();
    h.recv(r#"{"op":9,"d":true}"#);
    let delay = h.reconnect_delays()[0];
    assert!(delay >= Duration::from_secs(1));
    h.advance(delay);
    assert_identifies(&mut h);
}

// ---------------------------------------------------------------- resume URL safety

/// Active after a READY that names `resume_url`, then op 7: the URL of the
/// reconnect (which resumes, carrying the token).
fn resume_connect_after_ready_with(config: discord_gateway_stream::protocol::Config, resume_url: &str) -> String {
    let mut h = Harness::new(config);
    h.open();
    h.hello();
    h.recv(&format!(
        r#"{{"t":"READY","s":1,"op":0,"d":{{"v":10,"session_id":"sess-1","resume_gateway_url":"{resume_url}"}}}}"#
    ));
    h.clear();
    h.recv(r#"{"t":null,"s":null,"op":7,"d":null}"#);
    let resume = h.reconnect_and_first_frame();
    assert_eq!(resume["op"], 6, "still a resume, whatever the URL");
    h.connects().last().expect("a reconnect").to_string()
}

#[test]
fn a_resume_url_weaker_than_the_base_url_is_refused_for_the_base_url() {
    // ws:// after wss:// would send the token in clear text.
    let url = resume_connect_after_ready_with(config(), "ws://gateway-us-east1-c.discord.gg");
    assert_eq!(url, BASE);
    // Even when any host is allowed.
    let any = config().resume_hosts(discord_gateway_stream::protocol::ResumeHosts::Any);
    assert_eq!(resume_connect_after_ready_with(any, "ws://proxy.example.com"), BASE);
}

#[test]
fn a_resume_url_outside_the_base_domain_is_refused_unless_allowed() {
    assert_eq!(resume_connect_after_ready_with(config(), "wss://evil.example.com"), BASE);
    assert_eq!(resume_connect_after_ready_with(config(), "wss://discord.gg.evil.com"), BASE);
    assert_eq!(resume_connect_after_ready_with(config(), RESUME_HOST), RESUME, "Discord's own resume hosts pass");
    let any = config().resume_hosts(discord_gateway_stream::protocol::ResumeHosts::Any);
    assert_eq!(
        resume_connect_after_ready_with(any, "wss://proxy.example.com"),
        "wss://proxy.example.com/?v=10&encoding=json",
        "a proxy's own resume host, when allowed"
    );
}
