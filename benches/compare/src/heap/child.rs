//! The client side of the heap bench, shared by every client kind (and by
//! the `twilight-heap` package): arguments, per-shard counters, connect
//! pacing and the measuring controller thread.
//!
//! Protocol with the parent, one line each on stdout:
//! `IDLE ...` once every shard is READY and the process has settled (the
//! parent then sends the burst), `RESULT ...` once every shard has received
//! the whole burst and the process has settled again.

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::channel::oneshot;

use super::alloc;
use super::compression::Codec;

/// Parsed `child <kind> --port P --shards N --burst B --max-connecting C --settle-ms S --compression zlib|zstd|none`.
pub struct ChildArgs {
    pub kind: String,
    pub port: u16,
    pub shards: u32,
    /// Dispatches per shard in the burst (READY not included).
    pub burst: u64,
    pub max_connecting: usize,
    pub settle: Duration,
    pub codec: Codec,
}

impl ChildArgs {
    /// Parses `args` after the `child` word.
    pub fn parse(mut args: impl Iterator<Item = String>) -> ChildArgs {
        let kind = args.next().expect("client kind");
        let mut parsed = ChildArgs {
            kind,
            port: 0,
            shards: 0,
            burst: 0,
            max_connecting: 50,
            settle: Duration::from_secs(2),
            codec: Codec::Zlib,
        };
        while let Some(flag) = args.next() {
            let value = args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
            match flag.as_str() {
                "--port" => parsed.port = value.parse().expect("port"),
                "--shards" => parsed.shards = value.parse().expect("shards"),
                "--burst" => parsed.burst = value.parse().expect("burst"),
                "--max-connecting" => parsed.max_connecting = value.parse().expect("max-connecting"),
                "--settle-ms" => parsed.settle = Duration::from_millis(value.parse().expect("settle-ms")),
                "--compression" => {
                    parsed.codec = Codec::parse(&value).unwrap_or_else(|| panic!("unknown compression {value}"))
                }
                other => panic!("unknown child flag {other}"),
            }
        }
        parsed
    }
}

/// Shards that received READY.
static READY: AtomicUsize = AtomicUsize::new(0);
/// Shards that received READY and the whole burst.
static DONE: AtomicUsize = AtomicUsize::new(0);
/// Dispatches received by all shards (READY included).
static DISPATCHES: AtomicU64 = AtomicU64::new(0);
/// Shards whose stream failed or ended.
static FAILED: AtomicUsize = AtomicUsize::new(0);

/// One shard's dispatch count, as its consumer sees dispatches.
pub struct Counter {
    seen: u64,
    done_at: u64,
}

impl Counter {
    pub fn new(burst: u64) -> Counter {
        Counter { seen: 0, done_at: 1 + burst }
    }

    /// Records one dispatch (READY is the first).
    #[inline]
    pub fn dispatch(&mut self) {
        self.seen += 1;
        DISPATCHES.fetch_add(1, Ordering::Relaxed);
        if self.seen == 1 {
            READY.fetch_add(1, Ordering::Relaxed);
        }
        if self.seen == self.done_at {
            DONE.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A shard's stream ended or failed: the run is void.
pub fn failed(why: &str) {
    eprintln!("heap child: {why}");
    FAILED.fetch_add(1, Ordering::Relaxed);
}

/// One gate per shard: a shard does not exist (not even its config) until
/// its gate opens, and the controller opens gates so that at most
/// `max_connecting` shards are between "created" and "READY".
pub fn gates(n: u32) -> (Vec<oneshot::Sender<()>>, Vec<oneshot::Receiver<()>>) {
    (0..n).map(|_| oneshot::channel()).unzip()
}

/// VmRSS and VmHWM of this process, KiB.
pub fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        if FAILED.load(Ordering::Relaxed) > 0 {
            eprintln!("heap child: a shard failed while waiting for {what}");
            std::process::exit(1);
        }
        if Instant::now() > deadline {
            eprintln!(
                "heap child: timed out waiting for {what} (ready {}, done {}, dispatches {})",
                READY.load(Ordering::Relaxed),
                DONE.load(Ordering::Relaxed),
                DISPATCHES.load(Ordering::Relaxed)
            );
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Starts the controller thread: paces the shards through their gates,
/// measures, talks to the parent and ends the process. `baseline` is the
/// live heap before the first shard task existed.
pub fn start_controller(args: &ChildArgs, gates: Vec<oneshot::Sender<()>>, baseline: i64) {
    let (shards, burst, max_connecting, settle) = (args.shards as usize, args.burst, args.max_connecting, args.settle);
    std::thread::Builder::new()
        .name("heap-controller".into())
        .spawn(move || {
            let started = Instant::now();
            let mut gates = gates.into_iter();
            let mut opened = 0usize;
            wait_until("READY on every shard", Duration::from_secs(600), || {
                let ready = READY.load(Ordering::Relaxed);
                while opened < shards && opened - ready.min(opened) < max_connecting {
                    let _ = gates.next().expect("a gate per shard").send(());
                    opened += 1;
                }
                ready >= shards
            });
            drop(gates);
            let connect_ms = started.elapsed().as_millis();
            std::thread::sleep(settle);
            let (idle, c_idle) = (alloc::live(), alloc::c_live());
            let (idle_rss, _) = rss_kb();
            alloc::reset_peak();
            println!("IDLE baseline={baseline} idle={idle} idle_rss_kb={idle_rss} connect_ms={connect_ms}");
            let _ = std::io::stdout().flush();

            let expect = shards as u64 * (1 + burst);
            let burst_started = Instant::now();
            wait_until("the whole burst on every shard", Duration::from_secs(900), || {
                DONE.load(Ordering::Relaxed) >= shards
            });
            let burst_ms = burst_started.elapsed().as_millis();
            std::thread::sleep(settle);
            let (after, c_after) = (alloc::live(), alloc::c_live());
            let peak = alloc::peak();
            let (rss, hwm) = rss_kb();
            let dispatches = DISPATCHES.load(Ordering::Relaxed);
            println!(
                "RESULT baseline={baseline} idle={idle} after={after} peak={peak} c_idle={c_idle} c_after={c_after} \
                 idle_rss_kb={idle_rss} \
                 rss_kb={rss} hwm_kb={hwm} dispatches={dispatches} expected={expect} connect_ms={connect_ms} \
                 burst_ms={burst_ms}"
            );
            let _ = std::io::stdout().flush();
            std::process::exit(0);
        })
        .expect("controller thread");
}
