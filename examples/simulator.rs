//! A standalone fake Discord gateway, for trying a client by hand.
//!
//! ```text
//! cargo run --example simulator -- --port 8765 \
//!     [--events N] [--script basic|resume|chaos] [--interval MS] [--exit-after-secs S] \
//!     [--max-concurrency N] [--identify-window-ms MS]
//! ```
//!
//! Point a client at `ws://127.0.0.1:PORT/?v=10&encoding=json[&compress=zlib-stream|zstd-stream]`:
//! the `compress` query parameter picks each connection's compression
//! (zstd-stream needs `--features zstd`; anything else closes with 4002).
//! It serves until Ctrl-C (or `--exit-after-secs`) and prints one line per
//! connection, client frame and scripted event to stderr.
//!
//! `--max-concurrency N` enforces the identify limit of `docs/rate-limits.md#identify-concurrency`
//! (one Identify per `shard_id % N` bucket per `--identify-window-ms`, default
//! 5000; a faster one gets op 9) and prints each rejected Identify.
//!
//! Scripts:
//! - `basic`: READY, then N `MESSAGE_CREATE` dispatches, paced.
//! - `resume`: after N/2 dispatches the TCP connection is dropped; the rest are
//!   committed while the client is away and replayed when it resumes.
//! - `chaos`: dispatches N events with an op 7, op 9 (resumable), resumable
//!   close code or TCP drop every few events.

use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use serde_json::json;

const USAGE: &str = "usage: simulator [--port P] [--events N] [--script basic|resume|chaos] \
                     [--interval MS] [--exit-after-secs S] [--max-concurrency N] [--identify-window-ms MS]";
const TICK: Duration = Duration::from_millis(50);
const PACE: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Script {
    Basic,
    Resume,
    Chaos,
}

struct Args {
    port: u16,
    events: u64,
    script: Script,
    interval_ms: u64,
    exit_after: Option<Duration>,
    max_concurrency: u32,
    identify_window: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 0,
        events: 10,
        script: Script::Basic,
        interval_ms: 41_250,
        exit_after: None,
        max_concurrency: 0,
        identify_window: Duration::from_secs(5),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|_| format!("{flag}: not a number: {value}"));
        match flag.as_str() {
            "--port" => args.port = value.parse().map_err(|_| format!("--port: not a port: {value}"))?,
            "--events" => args.events = number()?,
            "--interval" => args.interval_ms = number()?.max(1),
            "--exit-after-secs" => args.exit_after = Some(Duration::from_secs(number()?)),
            "--max-concurrency" => {
                args.max_concurrency = value.parse().map_err(|_| format!("{flag}: not a number: {value}"))?
            }
            "--identify-window-ms" => args.identify_window = Duration::from_millis(number()?),
            "--script" => {
                args.script = match value.as_str() {
                    "basic" => Script::Basic,
                    "resume" => Script::Resume,
                    "chaos" => Script::Chaos,
                    _ => return Err(format!("--script: unknown script {value}")),
                }
            }
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(args)
}

/// Prints what the simulator recorded since the last call.
#[derive(Default)]
struct Printer {
    connections: usize,
    ended: Vec<bool>,
    frames: usize,
    violations: usize,
}

impl Printer {
    fn poll(&mut self, sim: &Simulator) {
        let conns = sim.connections();
        for c in &conns[self.connections..] {
            eprintln!(
                "conn #{}: {}?{}{}{}",
                c.index,
                c.path,
                c.query,
                if c.via_resume_url { " (resume URL)" } else { "" },
                match (c.compressed, c.compress.as_deref()) {
                    (true, Some(mode)) => format!(" ({mode})"),
                    _ => String::new(),
                },
            );
        }
        self.connections = conns.len();
        let frames = sim.client_frames();
        for f in &frames[self.frames..] {
            let mut shown = f.value.clone().unwrap_or_else(|| json!(f.raw));
            if let Some(token) = shown.pointer_mut("/d/token") {
                *token = json!("<redacted>");
            }
            let mut text = shown.to_string();
            if text.len() > 200 {
                let cut = (0..=200).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
                text.truncate(cut);
                text.push('…');
            }
            let op = f.op.map_or_else(|| "?".to_owned(), |op| op.to_string());
            eprintln!("conn #{} -> op {op}: {text}", f.connection);
        }
        self.frames = frames.len();
        let violations = sim.identify_violations();
        for v in violations.iter().skip(self.violations) {
            let shard = v.shard.map_or_else(|| "none".to_owned(), |s| s.to_string());
            let bucket = v.bucket.map_or_else(|| "-".to_owned(), |b| b.to_string());
            eprintln!("conn #{}: identify too fast (shard {shard}, bucket {bucket}): rejected", v.connection);
        }
        self.violations = violations.len();
        self.ended.resize(conns.len(), false);
        for c in &conns {
            if let (Some(end), false) = (&c.end, self.ended[c.index]) {
                if c.ended_at.is_some() {
                    eprintln!("conn #{}: ended: {end:?}", c.index);
                    self.ended[c.index] = true;
                }
            }
        }
    }
}

/// Drives the chosen script one tick at a time.
struct Runner {
    script: Script,
    events: u64,
    committed: u64,
    dropped: bool,
    next_at: Instant,
    chaos_step: usize,
}

impl Runner {
    fn tick(&mut self, sim: &Simulator) {
        if self.committed >= self.events || Instant::now() < self.next_at {
            return;
        }
        // `basic` and `chaos` only send while a session is live; `resume`
        // keeps committing while the client is away.
        let may_commit = match self.script {
            Script::Resume if self.dropped => sim.session_id().is_some(),
            _ => sim.is_live(),
        };
        if !may_commit {
            return;
        }
        let n = self.committed + 1;
        let d = json!({
            "id": (1_000_000 + n).to_string(),
            "channel_id": "2000",
            "content": format!("message {n}"),
            "author": { "id": "3000", "username": "someone" },
        });
        let Some(seq) = sim.dispatch("MESSAGE_CREATE", d) else {
            return;
        };
        self.committed = n;
        self.next_at = Instant::now() + PACE;
        let live = if sim.is_live() { "" } else { " (logged for replay)" };
        eprintln!("dispatch MESSAGE_CREATE s={seq} ({n}/{}){live}", self.events);
        match self.script {
            Script::Basic => {}
            Script::Resume => {
                if !self.dropped && n == self.events / 2 {
                    self.dropped = sim.drop_connection();
                    eprintln!("script: dropped the connection; committing the rest");
                }
            }
            Script::Chaos => {
                if n.is_multiple_of(4) {
                    let (what, done) = match self.chaos_step % 5 {
                        0 => ("op 7 reconnect", sim.reconnect()),
                        1 => ("op 9 d:true", sim.invalid_session(true)),
                        2 => ("close 4000", sim.close(4000)),
                        3 => ("TCP drop", sim.drop_connection()),
                        _ => ("close 4008", sim.close(4008)),
                    };
                    self.chaos_step += 1;
                    eprintln!("script: {what} (sent: {done})");
                }
            }
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("{e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = SimulatorConfig::new()
        .heartbeat_interval(Duration::from_millis(args.interval_ms))
        .max_concurrency(args.max_concurrency)
        .identify_window(args.identify_window);
    let sim = match Simulator::start_on(args.port, config) {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:{}: {e}", args.port);
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "gateway simulator on {} (script {:?}, {} events, heartbeat {} ms)",
        sim.url(),
        args.script,
        args.events,
        args.interval_ms
    );
    eprintln!("connect to {}/?v=10&encoding=json[&compress=zlib-stream|zstd-stream]", sim.url());
    let deadline = args.exit_after.map(|d| Instant::now() + d);
    let mut printer = Printer::default();
    let mut runner = Runner {
        script: args.script,
        events: args.events,
        committed: 0,
        dropped: false,
        next_at: Instant::now(),
        chaos_step: 0,
    };
    while deadline.is_none_or(|d| Instant::now() < d) {
        printer.poll(&sim);
        runner.tick(&sim);
        thread::sleep(TICK);
    }
    printer.poll(&sim);
    eprintln!("exiting");
    ExitCode::SUCCESS
}
