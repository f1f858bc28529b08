//! Heap per connected shard, 1,000 shards in one process:
//! discord-gateway-stream against twilight-gateway 0.18, measured the same
//! way for both.
//!
//! ```text
//! cargo run --release --manifest-path benches/compare/Cargo.toml --bin heap -- \
//!     [--shards N] [--burst B] [--compression zlib|zstd|none|both|all] \
//!     [--client ours-async-std|ours-tokio|twilight|all] [--max-connecting C] [--settle-ms MS]
//! ```
//!
//! `--compression all` (the default) runs zlib-stream, zstd-stream and
//! none, in that order; `both` is zlib-stream and none.
//!
//! This process runs the gateway (`heap/server.rs`: std threads + sync
//! tungstenite, Hello with a 41 250 ms heartbeat interval, READY per shard,
//! heartbeat ACKs, and on command a burst to every shard; zlib-stream or
//! zstd-stream when the client asks for it in its URL query, text frames
//! otherwise; how the precomputed streams are built is in
//! `heap/traffic.rs`). Every connection of a run must have asked for the
//! run's compression. Each client runs in its own child process, so the
//! server's allocations are never counted and the RSS figures are the
//! client's alone:
//!
//! - `ours-async-std`: `Shard::new` (the default connector, async-io TCP, with
//!   `Compression::ZlibStream`, `ZstdStream` or `None`),
//!   nothing spawned: all shard streams in one `FuturesUnordered` under
//!   `async_io::block_on`; polling a stream drives its connection.
//! - `ours-tokio`: `Shard::with_connector` with tokio's `TcpStream` through
//!   tokio-util compat, tokio current_thread runtime, per shard one task for
//!   the driver and one consuming the stream.
//! - `twilight`: twilight-gateway 0.18.0 built alone in `twilight-heap/`,
//!   with its `zlib` feature for the zlib-stream rows, its `zstd` feature
//!   (its default compression: a zstd-safe `DCtx` and a 32 KiB output
//!   buffer per shard) for the zstd-stream rows, and without either (so no
//!   decompressor per shard) for the uncompressed ones; tokio current_thread,
//!   one task per shard consuming its raw `Message` stream; identify queue
//!   off (`InMemoryQueue` with `max_concurrency` 0).
//!
//! Every child has the same counting `#[global_allocator]`
//! (`heap/alloc.rs`): live heap bytes and their peak over ALL threads of the
//! process. Both zstd-stream decoders are libzstd (zstd-safe), which
//! allocates with C `malloc`, past any Rust allocator; on Linux the heap
//! binaries are linked with `malloc`/`calloc`/`realloc`/`free` wrapped
//! (`build.rs`), so those bytes are counted as well, and shown apart in the
//! last column (libzstd's context for Discord's 2^18 window: about 734 KiB
//! per connection, from its first message to the end). A child connects `--shards` shards (default 1,000), at most
//! `--max-connecting` (default 50) between created and READY at a time,
//! waits until every shard has READY, settles `--settle-ms` (default 2,000),
//! reads the live heap ("idle after READY") and tells this process, which
//! sends every shard the same burst at once: `--burst` dispatches (default
//! 100: eight GUILD_CREATEs of 75–394 KB, then MESSAGE_CREATE /
//! TYPING_START / PRESENCE_UPDATE events, from `fuzz/payloads.rs`),
//! byte-identical for every client. When every shard has received all of
//! it, the child settles again and reads the live heap ("after burst"), the
//! peak since the idle reading ("peak during burst"), VmRSS and VmHWM.
//!
//! Per-shard figures are (live − baseline) / shards, the baseline being the
//! live heap just before the first shard's task or future was created (the
//! runtime, twilight's shared `Config`). They include the harness's own per
//! shard costs (a task or `FuturesUnordered` slot, a one-shot gate), a few
//! hundred bytes alike for every client.
//!
//! 1,000 shards need about 2,000 descriptors here and 1,000 in a child;
//! the soft `RLIMIT_NOFILE` is raised to the hard limit at start.

#[path = "../../../fuzz/payloads.rs"]
mod payloads;

#[path = "heap/alloc.rs"]
mod alloc;
#[path = "heap/child.rs"]
mod child;
#[path = "compression.rs"]
mod compression;
#[path = "heap/ours.rs"]
mod ours;
#[path = "heap/server.rs"]
mod server;
#[path = "heap/traffic.rs"]
mod traffic;
#[path = "wire.rs"]
mod wire;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use compression::Codec;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    OursAsyncStd,
    OursTokio,
    Twilight,
}

impl Client {
    fn label(self) -> &'static str {
        match self {
            Client::OursAsyncStd => "ours, async-io (`Shard::new`), driven by polling",
            Client::OursTokio => "ours, tokio (compat connector), driver spawned",
            Client::Twilight => "twilight-gateway 0.18.0, tokio",
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Client::OursAsyncStd => "ours-async-std",
            Client::OursTokio => "ours-tokio",
            Client::Twilight => "twilight",
        }
    }
}

struct Options {
    shards: u32,
    burst: u64,
    codecs: Vec<Codec>,
    clients: Vec<Client>,
    max_connecting: usize,
    settle_ms: u64,
}

fn usage(error: &str) -> ! {
    if !error.is_empty() {
        eprintln!("error: {error}");
    }
    eprintln!(
        "usage: heap [--shards N] [--burst B] [--compression zlib|zstd|none|both|all] \
         [--client ours-async-std|ours-tokio|twilight|all] [--max-connecting C] [--settle-ms MS]\n\
         \x20 --compression: both = zlib and none; all (default) = zlib, zstd and none"
    );
    std::process::exit(if error.is_empty() { 0 } else { 2 })
}

fn options(mut args: impl Iterator<Item = String>) -> Options {
    let mut options = Options {
        shards: 1000,
        burst: 100,
        codecs: Codec::ALL.to_vec(),
        clients: vec![Client::OursAsyncStd, Client::OursTokio, Client::Twilight],
        max_connecting: 50,
        settle_ms: 2000,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--shards" => options.shards = value().parse().unwrap_or_else(|_| usage("--shards N")),
            "--burst" => options.burst = value().parse().unwrap_or_else(|_| usage("--burst B")),
            "--max-connecting" => {
                options.max_connecting = value().parse().unwrap_or_else(|_| usage("--max-connecting C"))
            }
            "--settle-ms" => options.settle_ms = value().parse().unwrap_or_else(|_| usage("--settle-ms MS")),
            "--compression" => {
                let name = value();
                options.codecs =
                    Codec::parse_set(&name).unwrap_or_else(|| usage(&format!("unknown compression {name}")))
            }
            "--client" => {
                options.clients = match value().as_str() {
                    "ours-async-std" => vec![Client::OursAsyncStd],
                    "ours-tokio" => vec![Client::OursTokio],
                    "twilight" => vec![Client::Twilight],
                    "all" => vec![Client::OursAsyncStd, Client::OursTokio, Client::Twilight],
                    other => usage(&format!("unknown client {other}")),
                }
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    if options.shards == 0 {
        usage("--shards must be at least 1");
    }
    options
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("child") {
        args.next();
        let args = child::ChildArgs::parse(args);
        match args.kind.as_str() {
            "ours-async-std" => ours::run_async_std(&args),
            "ours-tokio" => ours::run_tokio(&args),
            other => panic!("unknown client {other} (twilight runs from twilight-heap)"),
        }
    }
    let options = options(args);
    raise_fd_limit();
    let twilight: Vec<(Codec, PathBuf)> = if options.clients.contains(&Client::Twilight) {
        options.codecs.iter().map(|&codec| (codec, build_twilight_heap(codec))).collect()
    } else {
        Vec::new()
    };

    let burst = traffic::burst(options.burst as usize);
    let server = server::Server::start(&burst).expect("gateway server");
    let sizes: Vec<String> = burst
        .iter()
        .filter(|text| text.starts_with(r#"{"t":"GUILD_CREATE""#))
        .map(|text| format!("{:.0}", text.len() as f64 / 1e3))
        .collect();
    let burst_mb = burst.iter().map(String::len).sum::<usize>() as f64 / 1e6;
    eprintln!("gateway on 127.0.0.1:{}; GUILD_CREATE sizes (KB): {}", server.port, sizes.join(", "));
    drop(burst);

    let me = std::env::current_exe().expect("current exe");
    let mut rows = Vec::new();
    for &codec in &options.codecs {
        for &client in &options.clients {
            let exe = match client {
                Client::Twilight => twilight.iter().find(|(c, _)| *c == codec).map(|(_, path)| path.clone()).unwrap(),
                _ => me.clone(),
            };
            let result = run_child(&exe, client, codec, &options, &server);
            eprintln!(
                "  [{} | {}] idle {:.1} KiB/shard, after burst {:.1} KiB/shard, peak {:.1} MiB, \
                 VmRSS {:.1} MiB, VmHWM {:.1} MiB (connect {} ms, burst {} ms, {} heartbeats)",
                codec.label(),
                client.label(),
                result.per_shard(result.idle, options.shards),
                result.per_shard(result.after, options.shards),
                mib(result.peak),
                result.rss_kb as f64 / 1024.0,
                result.hwm_kb as f64 / 1024.0,
                result.connect_ms,
                result.burst_ms,
                result.heartbeats
            );
            rows.push((codec, client, result));
        }
    }

    println!();
    println!(
        "{} shards in one process; burst per shard: {} dispatches, {burst_mb:.2} MB of JSON (GUILD_CREATEs of {} KB). \
         Heap = live bytes from a counting global allocator, all threads of the client process, \
         plus what statically linked C code holds through `malloc` (libzstd's decoder; the last column, \
         included in the others); per shard = (live − baseline before the first shard) / shards. \
         Peak = highest live heap from the idle reading until the burst was delivered and settled.",
        options.shards,
        options.burst,
        sizes.join(", ")
    );
    println!();
    println!(
        "| compression | client | idle after READY | after burst | peak during burst | VmRSS after burst | VmHWM \
         | of which C `malloc`, idle / after burst |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (codec, client, r) in &rows {
        println!(
            "| {} | {} | {:.1} KiB/shard ({:.1} MiB) | {:.1} KiB/shard ({:.1} MiB) | {:.1} MiB | {:.1} MiB | {:.1} MiB \
             | {:.1} / {:.1} KiB/shard |",
            codec.label(),
            client.label(),
            r.per_shard(r.idle, options.shards),
            mib(r.idle),
            r.per_shard(r.after, options.shards),
            mib(r.after),
            mib(r.peak),
            r.rss_kb as f64 / 1024.0,
            r.hwm_kb as f64 / 1024.0,
            r.c_idle as f64 / f64::from(options.shards) / 1024.0,
            r.c_after as f64 / f64::from(options.shards) / 1024.0
        );
    }
}

fn mib(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

struct ChildResult {
    baseline: i64,
    idle: i64,
    after: i64,
    peak: i64,
    /// Of `idle` / `after`, what C code holds through `malloc` (libzstd).
    c_idle: i64,
    c_after: i64,
    rss_kb: u64,
    hwm_kb: u64,
    connect_ms: u64,
    burst_ms: u64,
    heartbeats: usize,
}

impl ChildResult {
    /// KiB per shard above the baseline.
    fn per_shard(&self, live: i64, shards: u32) -> f64 {
        (live - self.baseline) as f64 / f64::from(shards) / 1024.0
    }
}

/// `key=value` from a child's line.
fn field(line: &str, key: &str) -> u64 {
    line.split(' ')
        .find_map(|part| part.strip_prefix(key)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

fn run_child(exe: &Path, client: Client, codec: Codec, options: &Options, server: &server::Server) -> ChildResult {
    let name = format!("{} {}", codec.label(), client.label());
    eprintln!("running {name} ...");
    let mut child = Command::new(exe)
        .args(["child", client.arg(), "--port", &server.port.to_string()])
        .args(["--shards", &options.shards.to_string(), "--burst", &options.burst.to_string()])
        .args(["--max-connecting", &options.max_connecting.to_string()])
        .args(["--settle-ms", &options.settle_ms.to_string()])
        .args(["--compression", codec.arg()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut next = |what: &str| -> String {
        loop {
            match lines.recv_timeout(Duration::from_secs(1200)) {
                Ok(line) if line.starts_with(what) => return line,
                Ok(_) => continue,
                Err(_) => {
                    let _ = child.kill();
                    panic!("{name}: no {what} line (child ended or timed out)");
                }
            }
        }
    };
    eprintln!("  {}", next("IDLE "));
    let (sent, took) = server.burst();
    assert_eq!(sent, options.shards as usize, "{name}: burst written to {sent} connections");
    eprintln!("  burst written to {sent} connections in {} ms", took.as_millis());
    let line = next("RESULT ");
    let _ = child.wait();
    let tally = server.take_tally();
    let shards = options.shards as usize;
    assert_eq!(tally.identified, shards, "{name}: {} identifies (a reconnect?)", tally.identified);
    let mut expected = [0; 3];
    expected[Codec::ALL.iter().position(|&c| c == codec).expect("a codec of Codec::ALL")] = shards;
    assert_eq!(
        (tally.queries, tally.unknown_queries),
        (expected, 0),
        "{name}: connections per compression asked ({:?} order, then unknown)",
        Codec::ALL.map(Codec::label)
    );
    assert_eq!(field(&line, "dispatches"), field(&line, "expected"), "{name}: dispatches received");
    ChildResult {
        baseline: field(&line, "baseline") as i64,
        idle: field(&line, "idle") as i64,
        after: field(&line, "after") as i64,
        peak: field(&line, "peak") as i64,
        c_idle: field(&line, "c_idle") as i64,
        c_after: field(&line, "c_after") as i64,
        rss_kb: field(&line, "rss_kb"),
        hwm_kb: field(&line, "hwm_kb"),
        connect_ms: field(&line, "connect_ms"),
        burst_ms: field(&line, "burst_ms"),
        heartbeats: tally.heartbeats,
    }
}

/// Soft `RLIMIT_NOFILE` up to the hard limit (children inherit it).
fn raise_fd_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an `rlimit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Builds `twilight-heap/` (its own workspace, so twilight's features are
/// its own) with twilight-gateway's `zlib` feature, its `zstd` feature or
/// neither; returns a copy of the binary for that build.
fn build_twilight_heap(codec: Codec) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = dir.join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("building twilight-heap ({}) ...", codec.label());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(dir.join("twilight-heap/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target);
    if codec.compressed() {
        command.args(["--features", codec.arg()]);
    }
    assert!(command.status().expect("run cargo").success(), "building twilight-heap failed");
    let built = target.join("release/twilight-heap");
    let copy = target.join(format!("release/twilight-heap-{}", codec.arg()));
    std::fs::copy(&built, &copy).expect("copy twilight-heap");
    copy
}
