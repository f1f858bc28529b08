//! A fake-clock harness around the sans-IO machine: it records every action,
//! frame and event so tests can assert exact bytes and transitions.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use discord_gateway_stream::protocol::{
    Action, Compression, Config, DisconnectReason, Event, Incoming, Machine, Status,
};
use discord_gateway_stream::{Dispatch, Intents};

pub const TOKEN: &str = "test-token";
pub const INTERVAL_MS: u64 = 41_250;
pub const BASE: &str = "wss://gateway.discord.gg/?v=10&encoding=json";
pub const RESUME_HOST: &str = "wss://gateway-us-east1-c.discord.gg";
pub const RESUME: &str = "wss://gateway-us-east1-c.discord.gg/?v=10&encoding=json";

pub fn config() -> Config {
    Config::new(TOKEN, Intents::GUILDS | Intents::GUILD_MESSAGES).compression(Compression::None).rng_seed(42)
}

pub struct Harness {
    pub machine: Machine,
    pub now: Instant,
    pub start: Instant,
    pub actions: Vec<Action>,
    pub sent: Vec<String>,
    /// (time since start, frame) for every frame sent.
    pub sent_at: Vec<(Duration, String)>,
    pub events: Vec<Event>,
}

impl Harness {
    pub fn new(config: Config) -> Harness {
        let now = Instant::now();
        let machine = Machine::new(config, now).expect("valid config");
        let mut h =
            Harness { machine, now, start: now, actions: vec![], sent: vec![], sent_at: vec![], events: vec![] };
        h.drain();
        h
    }

    pub fn drain(&mut self) {
        while let Some(action) = self.machine.poll_action() {
            self.actions.push(action);
        }
        while let Some(frame) = self.machine.poll_transmit() {
            self.sent_at.push((self.now - self.start, frame.clone()));
            self.sent.push(frame);
        }
        while let Some(event) = self.machine.poll_event() {
            self.events.push(event);
        }
    }

    pub fn open(&mut self) {
        self.machine.handle_open(self.now);
        self.drain();
    }

    pub fn recv(&mut self, json: &str) {
        self.machine.handle_message(self.now, Incoming::Text(json));
        self.drain();
    }

    pub fn recv_binary(&mut self, bytes: &[u8]) {
        self.machine.handle_message(self.now, Incoming::Binary(bytes));
        self.drain();
    }

    pub fn close(&mut self, code: Option<u16>) {
        self.machine.handle_close(self.now, code);
        self.drain();
    }

    pub fn connect_failed(&mut self) {
        self.machine.handle_connect_failed(self.now);
        self.drain();
    }

    /// Moves the fake clock forward by `by`, firing every deadline on the way
    /// at its exact instant.
    pub fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        for _ in 0..100_000 {
            match self.machine.poll_timeout() {
                Some(deadline) if deadline <= target => {
                    self.now = self.now.max(deadline);
                    self.machine.handle_timeout(self.now);
                    self.drain();
                }
                _ => {
                    self.now = target;
                    return;
                }
            }
        }
        panic!("deadline loop: the machine keeps asking for a timeout without progress");
    }

    pub fn hello(&mut self) {
        self.recv(&format!(
            r#"{{"t":null,"s":null,"op":10,"d":{{"heartbeat_interval":{INTERVAL_MS},"_trace":["gw"]}}}}"#
        ));
    }

    pub fn ready(&mut self, seq: u64, session_id: &str) {
        self.recv(&format!(
            r#"{{"t":"READY","s":{seq},"op":0,"d":{{"v":10,"session_id":"{session_id}","resume_gateway_url":"{RESUME_HOST}","user":{{"id":"1"}},"guilds":[]}}}}"#
        ));
    }

    pub fn dispatch(&mut self, seq: u64, event: &str) {
        self.recv(&format!(r#"{{"t":"{event}","s":{seq},"op":0,"d":{{"n":{seq}}}}}"#));
    }

    /// Connect → open → Hello → Identify → READY(s=1, "sess-1").
    pub fn active() -> Harness {
        let mut h = Harness::new(config());
        h.open();
        h.hello();
        h.ready(1, "sess-1");
        h.clear();
        h
    }

    pub fn clear(&mut self) {
        self.actions.clear();
        self.sent.clear();
        self.sent_at.clear();
        self.events.clear();
    }

    pub fn dispatches(&self) -> Vec<&Dispatch> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Dispatch(d) => Some(d),
                _ => None,
            })
            .collect()
    }

    pub fn seqs(&self) -> Vec<u64> {
        self.dispatches().iter().map(|d| d.seq()).collect()
    }

    pub fn connects(&self) -> Vec<&str> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Connect { url } => Some(url.as_str()),
                _ => None,
            })
            .collect()
    }

    pub fn reconnect_delays(&self) -> Vec<Duration> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Status(Status::Reconnecting { delay, .. }) => Some(*delay),
                _ => None,
            })
            .collect()
    }

    pub fn reconnect_reasons(&self) -> Vec<DisconnectReason> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Status(Status::Reconnecting { reason, .. }) => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn heartbeats(&self) -> Vec<&str> {
        self.sent.iter().map(String::as_str).filter(|f| f.starts_with(r#"{"op":1,"#)).collect()
    }

    /// The opcode of every frame sent, in order.
    pub fn sent_ops(&self) -> Vec<u64> {
        self.sent
            .iter()
            .map(|f| {
                let v: serde_json::Value = serde_json::from_str(f).expect("client sends JSON");
                v["op"].as_u64().expect("op")
            })
            .collect()
    }

    /// After a reconnect: open the socket, send Hello, return the first frame sent.
    pub fn reconnect_and_first_frame(&mut self) -> serde_json::Value {
        let before = self.sent.len();
        self.open();
        // docs/edge-cases.md#resume-only-after-hello
        assert_eq!(self.sent.len(), before, "nothing may be sent before Hello");
        self.hello();
        let frame = self.sent.get(before).expect("a frame after Hello");
        serde_json::from_str(frame).expect("JSON")
    }
}

pub fn resume_frame(session: &str, seq: u64) -> String {
    format!(r#"{{"op":6,"d":{{"token":"{TOKEN}","session_id":"{session}","seq":{seq}}}}}"#)
}
