//! The simulator speaks the gateway faithfully (no compression): Hello,
//! Identify → READY, heartbeats, dispatch order, close codes, records.
#![cfg(feature = "testing")]

mod support;

use std::time::Duration;

use discord_gateway_stream::testing::{ConnectionEnd, OnConnect, Simulator, SimulatorConfig};
use serde_json::{json, Value};
use support::raw_client::{Client, Received, INTENTS, QUIET, TOKEN, WAIT};

fn sim(config: SimulatorConfig) -> Simulator {
    Simulator::start(config.heartbeat_interval(Duration::from_millis(250))).expect("start")
}

#[test]
fn hello_identify_ready_and_records() {
    let sim = sim(SimulatorConfig::new().guilds([5 << 22, 6 << 22]));
    assert!(sim.url().starts_with("ws://127.0.0.1:"));
    let mut c = Client::plain(&sim.url());

    let hello = c.payload();
    assert_eq!(c.payloads[0], r#"{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":250}}"#);
    assert_eq!(hello["d"]["heartbeat_interval"], 250);

    let identify = json!({
        "op": 2,
        "d": {
            "token": TOKEN,
            "properties": { "os": "linux", "browser": "x", "device": "x" },
            "intents": INTENTS,
            "shard": [1, 2],
        }
    });
    let raw = identify.to_string();
    c.send_text(&raw);
    let ready = c.payload();
    assert_eq!((ready["op"].clone(), ready["t"].clone(), ready["s"].clone()), (json!(0), json!("READY"), json!(1)));
    let d = &ready["d"];
    assert_eq!(d["v"], 10);
    assert_eq!(d["shard"], json!([1, 2]));
    let session_id = d["session_id"].as_str().expect("session_id");
    assert!(!session_id.is_empty());
    assert_eq!(Some(session_id.to_owned()), sim.session_id());
    assert_eq!(d["resume_gateway_url"], sim.resume_url());
    assert!(sim.resume_url().starts_with(&sim.url()));
    // Only the shard's guild (5 << 22 is on shard 1 of 2) is listed, then created.
    assert_eq!(d["guilds"], json!([{ "id": (5u64 << 22).to_string(), "unavailable": true }]));
    let create = c.payload();
    assert_eq!((create["t"].clone(), create["s"].clone()), (json!("GUILD_CREATE"), json!(2)));
    assert!(sim.wait_until_live(WAIT));

    let ids = sim.identifies();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].raw, raw);
    assert_eq!(ids[0].d(), identify.get("d"));
    assert_eq!(ids[0].connection, 0);
    let conns = sim.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!((conns[0].path.as_str(), conns[0].query.as_str()), ("/", "v=10&encoding=json"));
    assert_eq!(conns[0].version.as_deref(), Some("10"));
    assert!(!conns[0].compressed && !conns[0].via_resume_url && conns[0].handshake);
    assert_eq!(conns[0].session_id.as_deref(), Some(session_id));

    c.close(4000);
    assert!(sim.wait_for_connection_end(0, WAIT));
    let closes = sim.client_closes();
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0].code, Some(4000));
    assert!(closes[0].initiated_by_client);
    assert_eq!(sim.connections()[0].end, Some(ConnectionEnd::ClientClose(Some(4000))));
    // 4000 keeps the session.
    assert_eq!(sim.session_id().as_deref(), Some(session_id));
}

#[test]
fn heartbeats_are_acked_unless_withheld() {
    let sim = sim(SimulatorConfig::new());
    let mut c = Client::plain(&sim.url());
    c.hello();
    c.send_text(r#"{"op":1,"d":null}"#);
    c.payload();
    assert_eq!(c.payloads.last().map(String::as_str), Some(r#"{"t":null,"s":null,"op":11,"d":null}"#));

    sim.withhold_acks(true);
    c.send_text(r#"{"op":1,"d":null}"#);
    assert_eq!(c.recv(QUIET), Received::Timeout);
    sim.withhold_acks(false);
    c.send_text(r#"{"op":1,"d":null}"#);
    assert_eq!(c.payload()["op"], 11);

    assert!(sim.request_heartbeat());
    assert_eq!(c.payload(), json!({"t": null, "s": null, "op": 1, "d": null}));
    let beats = sim.heartbeats();
    assert_eq!(beats.len(), 3);
    assert!(beats.iter().all(|b| b.d() == Some(&Value::Null)));
}

#[test]
fn dispatches_arrive_in_order_with_increasing_s() {
    let sim = sim(SimulatorConfig::new().initial_dispatch("GUILD_CREATE", json!({"id": "9"})));
    assert_eq!(sim.dispatch("NOBODY", json!({})), None, "no session yet");
    let mut c = Client::plain(&sim.url());
    c.start_session();
    assert_eq!(c.payload()["s"], 2);
    assert!(sim.wait_until_live(WAIT));
    assert_eq!(sim.dispatch("MESSAGE_CREATE", json!({"n": 1})), Some(3));
    assert_eq!(sim.dispatch_many((2..=4).map(|n| ("MESSAGE_CREATE", json!({ "n": n })))), vec![4, 5, 6]);
    for (s, n) in (3..=6).zip(1..) {
        let p = c.payload();
        assert_eq!(p, json!({"t": "MESSAGE_CREATE", "s": s, "op": 0, "d": { "n": n }}));
    }
    assert_eq!(sim.last_seq(), Some(6));
    let log = sim.session_log();
    assert_eq!(log.iter().map(|l| l.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(log[5].frame, *c.payloads.last().expect("payload"));
}

/// Identify with `d`, return the close code.
fn identify_close(config: SimulatorConfig, d: Value) -> Option<u16> {
    let sim = sim(config);
    let mut c = Client::plain(&sim.url());
    c.hello();
    c.send(&json!({ "op": 2, "d": d }));
    c.expect_close()
}

fn identify_d(token: &str, intents: u64) -> Value {
    json!({ "token": token, "properties": { "os": "l", "browser": "b", "device": "d" }, "intents": intents })
}

#[test]
fn identify_validation_close_codes() {
    let strict = || SimulatorConfig::new().token("right");
    assert_eq!(identify_close(strict(), identify_d("wrong", INTENTS)), Some(4004));
    assert_eq!(identify_close(SimulatorConfig::new(), identify_d("", INTENTS)), Some(4004));
    // Undocumented bit 17 → 4013; MESSAGE_CONTENT not allowed → 4014.
    assert_eq!(identify_close(strict(), identify_d("right", 1 << 17)), Some(4013));
    assert_eq!(identify_close(strict(), identify_d("right", 1 << 15)), Some(4014));
    let mut d = identify_d("right", 1);
    d["shard"] = json!([2, 2]);
    assert_eq!(identify_close(strict(), d), Some(4010));

    // Allowed privileged intents and a "Bot " prefix are accepted.
    let sim = sim(strict().allow_privileged_intents(1 << 15));
    let mut c = Client::plain(&sim.url());
    c.hello();
    c.send(&json!({ "op": 2, "d": identify_d("Bot right", (1 << 15) | 1) }));
    assert_eq!(c.payload()["t"], "READY");
    // A second Identify on the same connection → 4005.
    c.send(&json!({ "op": 2, "d": identify_d("right", 1) }));
    assert_eq!(c.expect_close(), Some(4005));
    assert!(sim.wait_for_connection_end(0, WAIT));
    assert_eq!(sim.connections()[0].end, Some(ConnectionEnd::ServerClose(Some(4005))));
    assert_eq!(sim.session_id(), None, "4005 ends the session");
}

fn first_frame_close(sim: &Simulator, text: &str) -> Option<u16> {
    let mut c = Client::plain(&sim.url());
    c.hello();
    c.send_text(text);
    c.expect_close()
}

#[test]
fn protocol_violations_close_codes() {
    let sim = sim(SimulatorConfig::new());
    let presence = r#"{"op":3,"d":{"since":null,"activities":[],"status":"online","afk":false}}"#;
    assert_eq!(first_frame_close(&sim, presence), Some(4003));
    assert_eq!(first_frame_close(&sim, r#"{"op":5,"d":null}"#), Some(4001));
    assert_eq!(first_frame_close(&sim, r#"{"op":1,"d":null"#), Some(4002));
    let big = format!(r#"{{"op":1,"d":null,"pad":"{}"}}"#, "x".repeat(4100));
    assert_eq!(first_frame_close(&sim, &big), Some(4002));

    let mut c = Client::connect(&format!("{}/?v=9&encoding=json", sim.url()));
    assert_eq!(c.expect_close(), Some(4012));
    let mut c = Client::connect(&format!("{}/?v=10&encoding=etf", sim.url()));
    assert_eq!(c.expect_close(), Some(4002));
}

#[test]
fn send_rate_limit_closes_4008() {
    let sim = sim(SimulatorConfig::new().send_limit(5, Duration::from_secs(60)));
    let mut c = Client::plain(&sim.url());
    c.hello();
    for _ in 0..6 {
        c.send_text(r#"{"op":1,"d":null}"#);
    }
    assert_eq!(c.expect_close(), Some(4008));
    assert_eq!(sim.heartbeats().len(), 6);
}

#[test]
fn server_closes_stale_heartbeats_when_enforced() {
    let sim = Simulator::start(
        SimulatorConfig::new().heartbeat_interval(Duration::from_millis(100)).enforce_heartbeats(true),
    )
    .expect("start");
    let mut c = Client::plain(&sim.url());
    c.hello();
    // docs/connection.md#missed-heartbeats /
    // docs/edge-cases.md#server-sent-1000: the server closes and the session
    // stays resumable.
    assert_eq!(c.expect_close(), Some(1000));
}

#[test]
fn scripted_connect_behaviours() {
    let sim = sim(SimulatorConfig::new()
        .on_next_connect(OnConnect::Reconnect)
        .on_next_connect(OnConnect::Close(4000))
        .on_next_connect(OnConnect::RefuseHandshake(503))
        .on_next_connect(OnConnect::DropTcp)
        .on_next_connect(OnConnect::Silence));
    let url = format!("{}/?v=10&encoding=json", sim.url());

    let mut c = Client::connect(&url);
    assert_eq!(c.payload(), json!({"t": null, "s": null, "op": 7, "d": null}));
    c.close(4000);

    assert_eq!(Client::connect(&url).expect_close(), Some(4000));

    match Client::try_connect(&url) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 503),
        Err(e) => panic!("expected HTTP 503, got {e}"),
        Ok(_) => panic!("expected HTTP 503, got a connection"),
    }
    assert!(Client::try_connect(&url).is_err(), "TCP dropped before the upgrade");

    let mut c = Client::connect(&url);
    assert_eq!(c.recv(QUIET), Received::Timeout, "silence: no Hello");

    // The queue is used up: back to Hello.
    Client::connect(&url).hello();
    assert!(sim.wait_for_connections(6, WAIT));
    assert!(sim.wait_for_connection_end(3, WAIT));
    let conns = sim.connections();
    assert_eq!(conns[2].end, Some(ConnectionEnd::Refused(503)));
    assert_eq!(conns[2].path, "/");
    assert_eq!(conns[3].end, Some(ConnectionEnd::ServerDrop));
    assert!(!conns[3].handshake);

    // set_on_connect is persistent.
    sim.set_on_connect(OnConnect::Close(4000));
    assert_eq!(Client::connect(&url).expect_close(), Some(4000));
    assert_eq!(Client::connect(&url).expect_close(), Some(4000));
}

#[test]
fn heartbeat_interval_changes_for_later_connections() {
    let sim = sim(SimulatorConfig::new());
    let mut first = Client::plain(&sim.url());
    assert_eq!(first.hello(), 250);
    sim.set_heartbeat_interval(Duration::from_millis(3));
    let mut second = Client::plain(&sim.url());
    assert_eq!(second.hello(), 3);
    sim.set_heartbeat_interval(Duration::from_millis(250));
    assert_eq!(Client::plain(&sim.url()).hello(), 250);
    // A connection opened before the change is unaffected by it.
    first.send_identify(TOKEN, INTENTS);
    assert_eq!(first.payload()["t"], "READY");
    assert!(sim.wait_until_live(WAIT));
    second.close(1000);
}

#[test]
fn raw_frames_and_server_closes() {
    let sim = sim(SimulatorConfig::new());
    let mut c = Client::plain(&sim.url());
    c.start_session();
    assert!(sim.send_raw_text("{not json"));
    assert_eq!(c.recv(WAIT), Received::NotJson("{not json".into()));
    assert!(sim.send_raw_payload(r#"{"t":null,"s":null,"op":99,"d":null}"#));
    assert_eq!(c.payload()["op"], 99);
    assert!(sim.close_without_code());
    assert_eq!(c.expect_close(), None);
    assert!(sim.wait_for_client_closes(1, WAIT));
    assert!(!sim.client_closes()[0].initiated_by_client);
    assert!(!sim.close(4000), "no open connection left");
    assert!(sim.session_id().is_some(), "an empty close keeps the session");
}

#[test]
fn drop_stops_threads_and_closes_the_listener() {
    let sim = sim(SimulatorConfig::new());
    let url = sim.url();
    let mut c = Client::plain(&url);
    c.start_session();
    let started = std::time::Instant::now();
    drop(sim);
    assert!(started.elapsed() < Duration::from_secs(2), "drop is prompt");
    c.expect_dropped();
    assert!(Client::try_connect(&format!("{url}/?v=10&encoding=json")).is_err());
}

#[test]
fn simulator_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Simulator>();
}
