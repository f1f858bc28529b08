//! Random sequences of socket events, payloads, commands and time through the
//! machine, with the protocol's invariants checked after every step.

mod support;

use std::time::Duration;

use discord_gateway_stream::protocol::{Action, CloseMode, Command, Event, Status, MAX_OUTBOUND_SIZE};
use proptest::prelude::*;
use support::*;

#[derive(Debug, Clone)]
enum Step {
    Open,
    ConnectFailed,
    Hello,
    Ready(u64),
    Dispatch(u64),
    Resumed(u64),
    Ack,
    HeartbeatRequest,
    Reconnect,
    InvalidSession(bool),
    Close(Option<u16>),
    Garbage(String),
    Advance(u64),
    Command,
    Grant,
    CloseResumable,
}

fn step() -> impl Strategy<Value = Step> {
    let codes = prop_oneof![
        Just(None),
        (4000u16..4016).prop_map(Some),
        prop::sample::select(vec![1000u16, 1001, 1005, 1006, 1009, 1011]).prop_map(Some),
    ];
    prop_oneof![
        4 => Just(Step::Open),
        1 => Just(Step::ConnectFailed),
        4 => Just(Step::Hello),
        2 => (0u64..50).prop_map(Step::Ready),
        8 => (0u64..60).prop_map(Step::Dispatch),
        1 => (0u64..60).prop_map(Step::Resumed),
        4 => Just(Step::Ack),
        2 => Just(Step::HeartbeatRequest),
        1 => Just(Step::Reconnect),
        1 => any::<bool>().prop_map(Step::InvalidSession),
        2 => codes.prop_map(Step::Close),
        2 => ".{0,40}".prop_map(Step::Garbage),
        6 => (0u64..90_000).prop_map(Step::Advance),
        4 => Just(Step::Command),
        1 => Just(Step::Grant),
        1 => Just(Step::CloseResumable),
    ]
}

/// Invariants over one connection's frames.
#[derive(Default)]
struct Connection {
    hello_seen: bool,
    identifies: usize,
    sends: Vec<Duration>,
    heartbeats_unacked: usize,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_machine_keeps_its_invariants_on_any_input(steps in prop::collection::vec(step(), 1..120), permits in any::<bool>()) {
        let mut h = Harness::new(config().identify_permits(permits));
        let mut conn = Connection::default();
        let mut finished = false;
        let mut last_seq_in_session: Option<u64> = None;
        for step in steps {
            let (sent_before, actions_before, events_before) = (h.sent.len(), h.actions.len(), h.events.len());
            let had_socket = matches!(
                h.machine.status(),
                Status::AwaitingHello | Status::AwaitingIdentifyPermit | Status::Identifying | Status::Resuming | Status::Active
            );
            match &step {
                Step::Open => h.open(),
                Step::ConnectFailed => h.connect_failed(),
                Step::Hello => h.hello(),
                Step::Ready(seq) => h.ready(*seq, "s"),
                Step::Dispatch(seq) => h.dispatch(*seq, "MESSAGE_CREATE"),
                Step::Resumed(seq) => h.recv(&format!(r#"{{"t":"RESUMED","s":{seq},"op":0,"d":{{}}}}"#)),
                Step::Ack => h.recv(r#"{"op":11}"#),
                Step::HeartbeatRequest => h.recv(r#"{"op":1,"d":null}"#),
                Step::Reconnect => h.recv(r#"{"op":7,"d":null}"#),
                Step::InvalidSession(resumable) => h.recv(&format!(r#"{{"op":9,"d":{resumable}}}"#)),
                Step::Close(code) => h.close(*code),
                Step::Garbage(text) => h.recv(text),
                Step::Advance(ms) => h.advance(Duration::from_millis(*ms)),
                Step::Command => {
                    let cmd = Command::new(3, r#"{"since":null,"activities":[],"status":"online","afk":false}"#).unwrap();
                    let _ = h.machine.send_command(h.now, cmd);
                    h.drain();
                }
                Step::Grant => {
                    h.machine.grant_identify(h.now);
                    h.drain();
                }
                Step::CloseResumable => {
                    let _ = h.machine.close(h.now, CloseMode::Resumable);
                    h.drain();
                }
            }
            let after_hello = matches!(
                h.machine.status(),
                Status::AwaitingIdentifyPermit | Status::Identifying | Status::Resuming | Status::Active
            );
            if matches!(step, Step::Hello) && after_hello {
                conn.hello_seen = true;
            }
            if matches!(step, Step::Ack) {
                conn.heartbeats_unacked = 0;
            }
            for (sent_at, frame) in &h.sent_at[sent_before..] {
                prop_assert!(!finished, "nothing is sent after the machine finished");
                prop_assert!(frame.len() <= MAX_OUTBOUND_SIZE);
                prop_assert!(conn.hello_seen || matches!(step, Step::Hello), "sent before Hello: {frame}");
                let value: serde_json::Value = serde_json::from_str(frame).expect("valid JSON");
                match value["op"].as_u64() {
                    Some(2) => {
                        conn.identifies += 1;
                        prop_assert!(conn.identifies == 1, "second Identify on one connection (4005)");
                        last_seq_in_session = None;
                    }
                    Some(1) if !matches!(step, Step::HeartbeatRequest) => {
                        conn.heartbeats_unacked += 1;
                        prop_assert!(conn.heartbeats_unacked == 1, "two periodic heartbeats in flight without a zombie close");
                    }
                    _ => {}
                }
                conn.sends.push(*sent_at);
            }
            for (i, start) in conn.sends.iter().enumerate() {
                let in_window = conn.sends[i..].iter().take_while(|t| **t < *start + Duration::from_secs(60)).count();
                prop_assert!(in_window <= 120, "{in_window} frames in 60 s");
            }
            // A socket change resets the per-connection view; frames of this step
            // belonged to the old socket (a new one sends nothing before it opens).
            for action in &h.actions[actions_before..] {
                match action {
                    Action::Connect { .. } | Action::Close { .. } => conn = Connection::default(),
                    Action::RequestIdentifyPermit => {}
                }
                prop_assert!(!finished, "no action after the machine finished: {action:?}");
            }
            for event in &h.events[events_before..] {
                match event {
                    Event::Dispatch(d) => {
                        if d.event() == "READY" {
                            last_seq_in_session = Some(d.seq());
                        } else if let Some(last) = last_seq_in_session {
                            prop_assert!(d.seq() > last, "seq {} after {}", d.seq(), last);
                            last_seq_in_session = Some(d.seq());
                        } else {
                            last_seq_in_session = Some(d.seq());
                        }
                    }
                    Event::Fatal(_) => finished = true,
                    Event::Status(Status::Closed) => finished = true,
                    Event::Status(_) => {}
                }
            }
            if let (Step::Close(Some(code)), true, false) = (&step, had_socket, h.machine.is_finished()) {
                prop_assert!(!matches!(code, 4004 | 4010..=4014), "fatal code {code} must finish the machine");
            }
            if h.machine.is_finished() {
                prop_assert_eq!(h.machine.poll_timeout(), None);
            }
        }
    }
}
