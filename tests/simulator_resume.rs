//! Sessions outlive connections: drop + resume replays exactly what was
//! missed; unknown or ended sessions get op 9 `d:false`.
#![cfg(feature = "testing")]

mod support;

use std::time::Duration;

use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use serde_json::{json, Value};
use support::raw_client::{Client, Received, QUIET, TOKEN, WAIT};

fn sim() -> Simulator {
    Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(250))).expect("start")
}

/// Connects to READY's resume URL with the original query and gets Hello.
fn resume_client(ready: &Value) -> Client {
    let url = ready["d"]["resume_gateway_url"].as_str().expect("resume url");
    let mut c = Client::connect(&format!("{url}?v=10&encoding=json"));
    c.hello();
    c
}

fn session_id(ready: &Value) -> String {
    ready["d"]["session_id"].as_str().expect("session_id").to_owned()
}

fn message(n: u64) -> Value {
    json!({ "content": format!("m{n}") })
}

#[test]
fn drop_then_resume_replays_exactly_the_missed_dispatches() {
    let sim = sim();
    let mut c = Client::plain(&sim.url());
    let ready = c.start_session();
    assert!(sim.wait_until_live(WAIT));
    for n in 1..=3 {
        assert_eq!(sim.dispatch("MESSAGE_CREATE", message(n)), Some(n + 1));
    }
    for s in 2..=4 {
        assert_eq!(c.payload()["s"], s);
    }

    assert!(sim.drop_connection());
    c.expect_dropped();
    assert!(!sim.is_live());
    // Committed while nobody is connected: logged for the resume.
    for n in 4..=6 {
        assert_eq!(sim.dispatch("MESSAGE_CREATE", message(n)), Some(n + 1));
    }

    let mut r = resume_client(&ready);
    r.send_resume(&session_id(&ready), 4);
    for (s, n) in (5..=7).zip(4..) {
        assert_eq!(r.payload(), json!({"t": "MESSAGE_CREATE", "s": s, "op": 0, "d": message(n)}));
    }
    let resumed = r.payload();
    assert_eq!((resumed["t"].clone(), resumed["s"].clone()), (json!("RESUMED"), json!(8)));
    assert!(sim.wait_until_live(WAIT));
    assert_eq!(sim.dispatch("MESSAGE_CREATE", message(7)), Some(9));
    assert_eq!(r.payload()["s"], 9);

    let conns = sim.connections();
    assert_eq!(conns.len(), 2);
    assert!(conns[1].via_resume_url);
    assert_eq!(conns[1].path, "/resumed-host");
    assert_eq!(conns[1].query, "v=10&encoding=json");
    let resumes = sim.resumes();
    assert_eq!(resumes.len(), 1);
    assert_eq!(resumes[0].d(), Some(&json!({ "token": TOKEN, "session_id": session_id(&ready), "seq": 4 })));
    assert_eq!(resumes[0].connection, 1);

    // A second resume from an older seq replays from there (RESUMED 8 is not logged).
    drop(r);
    let mut r = resume_client(&ready);
    r.send_resume(&session_id(&ready), 6);
    let seqs: Vec<Value> = (0..3).map(|_| r.payload()["s"].clone()).collect();
    assert_eq!(seqs, vec![json!(7), json!(9), json!(10)]);
    assert_eq!(r.payloads.last().map(|p| p.contains("RESUMED")), Some(true));
}

#[test]
fn unknown_or_ended_sessions_get_op9_false() {
    let sim = sim();
    let mut c = Client::plain(&sim.url());
    c.hello();
    c.send_resume("no-such-session", 1);
    assert_eq!(c.payload(), json!({"t": null, "s": null, "op": 9, "d": false}));
    // Identify on the same socket after op 9 is allowed.
    c.send_identify(TOKEN, 1);
    let ready = c.payload();
    assert_eq!(ready["t"], "READY");

    sim.invalidate_session();
    assert_eq!(sim.dispatch("X", json!({})), None);
    let mut r = resume_client(&ready);
    r.send_resume(&session_id(&ready), 1);
    assert_eq!(r.payload()["d"], false);
}

#[test]
fn resume_seq_from_the_future_closes_4007_and_ends_the_session() {
    let sim = sim();
    let mut c = Client::plain(&sim.url());
    let ready = c.start_session();
    c.close(4000);
    let mut r = resume_client(&ready);
    r.send_resume(&session_id(&ready), 99);
    assert_eq!(r.expect_close(), Some(4007));
    let mut r = resume_client(&ready);
    r.send_resume(&session_id(&ready), 1);
    assert_eq!(r.payload()["op"], 9);
}

#[test]
fn reconnect_op7_then_resume_loses_nothing() {
    let sim = sim();
    let mut c = Client::plain(&sim.url());
    let ready = c.start_session();
    assert!(sim.wait_until_live(WAIT));
    assert!(sim.reconnect());
    assert_eq!(c.payload(), json!({"t": null, "s": null, "op": 7, "d": null}));
    // After op 7 dispatches only go to the log.
    assert_eq!(sim.dispatch("MESSAGE_CREATE", message(1)), Some(2));
    assert_eq!(c.recv(QUIET), Received::Timeout);
    c.close(4000);
    assert!(sim.wait_for_client_closes(1, WAIT));

    let mut r = resume_client(&ready);
    r.send_resume(&session_id(&ready), 1);
    assert_eq!(r.payload()["s"], 2);
    assert_eq!(r.payload()["t"], "RESUMED");
}

#[test]
fn invalid_session_true_keeps_and_false_ends_the_session() {
    let sim = sim();
    let mut c = Client::plain(&sim.url());
    let ready = c.start_session();
    assert!(sim.wait_until_live(WAIT));
    assert!(sim.invalid_session(true));
    assert_eq!(c.payload()["d"], true);
    c.close(4000);
    let mut r = resume_client(&ready);
    r.send_resume(&session_id(&ready), 1);
    assert_eq!(r.payload()["t"], "RESUMED");

    assert!(sim.wait_until_live(WAIT));
    assert!(sim.invalid_session(false));
    assert_eq!(r.payload(), json!({"t": null, "s": null, "op": 9, "d": false}));
    // op 9 revokes authentication on this socket: a command now gets 4003.
    r.send_text(r#"{"op":3,"d":{"since":null,"activities":[],"status":"idle","afk":false}}"#);
    assert_eq!(r.expect_close(), Some(4003));
    let mut r = resume_client(&ready);
    r.send_resume(&session_id(&ready), 1);
    assert_eq!(r.payload()["d"], false);
}

#[test]
fn client_close_1000_ends_the_session_4000_does_not() {
    let sim = sim();
    let mut c = Client::plain(&sim.url());
    let ready = c.start_session();
    c.close(4000);
    let mut r = resume_client(&ready);
    r.send_resume(&session_id(&ready), 1);
    assert_eq!(r.payload()["t"], "RESUMED");
    r.close(1000);
    assert!(sim.wait_for_client_closes(2, WAIT));
    let mut r = resume_client(&ready);
    r.send_resume(&session_id(&ready), 1);
    assert_eq!(r.payload()["d"], false);
}

#[test]
fn resume_url_override_is_sent_verbatim() {
    let sim = Simulator::start(SimulatorConfig::new().resume_url("not a url")).expect("start");
    let mut c = Client::plain(&sim.url());
    let ready = c.start_session();
    assert_eq!(ready["d"]["resume_gateway_url"], "not a url");
    // Resuming on the base URL works too.
    c.close(4000);
    let mut r = Client::plain(&sim.url());
    r.hello();
    r.send_resume(&session_id(&ready), 1);
    assert_eq!(r.payload()["t"], "RESUMED");
    assert!(!sim.connections()[1].via_resume_url);
}
