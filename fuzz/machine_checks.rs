//! Invariants of the sans-IO protocol machine on any input sequence, shared
//! by the `machine` fuzz target and `tests/protocol_invariants.rs`. The
//! including crate provides `harness` (tests/support/machine.rs: the fake-clock
//! harness).
#![allow(dead_code)]

use std::time::Duration;

use discord_gateway_stream::protocol::{Action, CloseMode, Command, Event, Status, MAX_OUTBOUND_SIZE};

use super::harness::{config, Harness};

/// One input to the machine.
#[derive(Debug, Clone, arbitrary::Arbitrary)]
pub enum Step {
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
    /// Milliseconds of fake time (taken modulo 90 s).
    Advance(u64),
    Command,
    Grant,
    CloseResumable,
}

/// Invariants over one connection's frames.
#[derive(Default)]
struct Connection {
    hello_seen: bool,
    identifies: usize,
    sends: Vec<Duration>,
    heartbeats_unacked: usize,
}

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Runs `steps` and checks after each one: no panic; nothing sent before
/// Hello; one Identify per connection; never two periodic heartbeats in
/// flight without a zombie close; frames ≤ 4096 bytes and ≤ 120 per 60 s;
/// delivered `s` strictly increasing within a session; fatal codes finish
/// the machine; nothing happens after it finished.
pub fn check_machine(steps: &[Step], permits: bool) -> Result<(), String> {
    let mut h = Harness::new(config().identify_permits(permits));
    let mut conn = Connection::default();
    let mut finished = false;
    let mut last_seq_in_session: Option<u64> = None;
    for step in steps {
        let (sent_before, actions_before, events_before) = (h.sent.len(), h.actions.len(), h.events.len());
        let had_socket = matches!(
            h.machine.status(),
            Status::AwaitingHello
                | Status::AwaitingIdentifyPermit
                | Status::Identifying
                | Status::Resuming
                | Status::Active
        );
        match step {
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
            Step::Advance(ms) => h.advance(Duration::from_millis(ms % 90_000)),
            Step::Command => {
                let cmd = Command::new(3, r#"{"since":null,"activities":[],"status":"online","afk":false}"#)
                    .map_err(|e| e.to_string())?;
                let _ = h.machine.send_command(h.now, cmd);
                h.drain();
            }
            Step::Grant => {
                h.machine.grant_identify(h.now);
                h.drain();
            }
            Step::CloseResumable => {
                let _ = h.machine.close(CloseMode::Resumable);
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
            check!(!finished, "sent after the machine finished: {frame}");
            check!(frame.len() <= MAX_OUTBOUND_SIZE, "frame over 4096 bytes");
            check!(conn.hello_seen || matches!(step, Step::Hello), "sent before Hello: {frame}");
            let value: serde_json::Value = serde_json::from_str(frame).map_err(|e| format!("not JSON: {e}"))?;
            match value["op"].as_u64() {
                Some(2) => {
                    conn.identifies += 1;
                    check!(conn.identifies == 1, "second Identify on one connection (4005)");
                    last_seq_in_session = None;
                }
                Some(1) if !matches!(step, Step::HeartbeatRequest) => {
                    conn.heartbeats_unacked += 1;
                    check!(conn.heartbeats_unacked == 1, "two periodic heartbeats in flight without a zombie close");
                }
                _ => {}
            }
            conn.sends.push(*sent_at);
        }
        for (i, start) in conn.sends.iter().enumerate() {
            let in_window = conn.sends[i..].iter().take_while(|t| **t < *start + Duration::from_secs(60)).count();
            check!(in_window <= 120, "{in_window} frames in 60 s");
        }
        // A socket change resets the per-connection view; frames of this step
        // belonged to the old socket (a new one sends nothing before it opens).
        for action in &h.actions[actions_before..] {
            check!(!finished, "action after the machine finished: {action:?}");
            if matches!(action, Action::Connect { .. } | Action::Close { .. }) {
                conn = Connection::default();
            }
        }
        for event in &h.events[events_before..] {
            match event {
                Event::Dispatch(d) if d.event() == "READY" => last_seq_in_session = Some(d.seq()),
                Event::Dispatch(d) => {
                    if let Some(last) = last_seq_in_session {
                        check!(d.seq() > last, "seq {} delivered after {}", d.seq(), last);
                    }
                    last_seq_in_session = Some(d.seq());
                }
                Event::Fatal(_) | Event::Status(Status::Closed) => finished = true,
                // Events added later carry nothing these checks follow.
                _ => {}
            }
        }
        if let (Step::Close(Some(code)), true, false) = (step, had_socket, h.machine.is_finished()) {
            check!(!matches!(code, 4004 | 4010..=4014), "fatal code {code} did not finish the machine");
        }
        if h.machine.is_finished() {
            check!(h.machine.poll_timeout().is_none(), "a finished machine still asks for timeouts");
        }
    }
    Ok(())
}
