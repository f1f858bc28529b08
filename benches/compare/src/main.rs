//! End-to-end throughput of discord-gateway-stream's `Shard` against
//! twilight-gateway, over a loopback replay server.
//!
//! ```text
//! cargo run --release --manifest-path benches/compare/Cargo.toml -- \
//!     [--mix realistic|small|both] [--compression zlib|none|both] [--repeat N] [--mb M]
//! ```
//!
//! Each mix (fuzz/payloads.rs) is repeated with increasing `s` to a volume of
//! JSON that keeps every run a few seconds long: `--mb` MB (default 1500) for
//! the realistic mix, half that for the small one (its bytes are slower), and
//! 2.5× those without compression. Each is precomputed once per compression as the exact
//! bytes the server writes: one zlib stream per connection with a sync flush
//! per payload (Hello, READY, the mix, spare heartbeat ACKs), or text frames.
//! Every client runs in its own child process (`compare client <kind> ...`),
//! so the peak RSS (VmHWM) is that client's; runs are interleaved round-robin.
//! A client's clock runs from the first dispatch after READY to the last
//! dispatch its consumer receives.

#[path = "../../../fuzz/payloads.rs"]
mod payloads;

mod clients;
mod mixes;
mod report;
mod server;
mod twilight_client;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use discord_gateway_stream::codec::{Inflater, DEFAULT_MAX_MESSAGE_SIZE};

use mixes::{Mix, MixKind, Replay};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// Shard, tokio connector, driver spawned.
    OursTokio,
    /// Shard::new (async-std connector), not spawned, async_io::block_on.
    OursAsyncStd,
    /// twilight-gateway built alone (`twilight-stock` binary).
    Twilight,
    /// twilight-gateway in this binary (zlib-rs with run-time CPU detection).
    TwilightStd,
}

impl Client {
    fn label(self) -> &'static str {
        match self {
            Client::OursTokio => "ours (tokio, driver spawned)",
            Client::OursAsyncStd => "ours (async-std, not spawned)",
            Client::Twilight => "twilight-gateway",
            Client::TwilightStd => "twilight-gateway, zlib-rs `std`",
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Client::OursTokio => "ours-tokio",
            Client::OursAsyncStd => "ours-async-std",
            Client::Twilight | Client::TwilightStd => "twilight",
        }
    }
}

struct Run {
    dispatches_per_s: f64,
    mb_per_s: f64,
    rss_kb: u64,
    consumed_via: String,
}

struct Row {
    mix: MixKind,
    zlib: bool,
    client: String,
    runs: Vec<Run>,
}

impl Row {
    fn median(&self) -> &Run {
        let mut order: Vec<&Run> = self.runs.iter().collect();
        order.sort_by(|a, b| a.dispatches_per_s.total_cmp(&b.dispatches_per_s));
        order[order.len() / 2]
    }

    fn peak_rss_kb(&self) -> u64 {
        self.runs.iter().map(|r| r.rss_kb).max().unwrap_or(0)
    }
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("client") {
        args.next();
        let args = report::ClientArgs::parse(args);
        match args.kind.as_str() {
            "ours-tokio" => clients::run_tokio(&args),
            "ours-async-std" => clients::run_async_std(&args),
            "twilight" => twilight_client::run(&args),
            other => panic!("unknown client {other}"),
        }
    }
    if args.peek().map(String::as_str) == Some("serve") {
        // `compare serve realistic|small zlib|none MB`: the replay server alone,
        // for profiling a client by hand (`compare client <kind> --port P --expect N ...`).
        args.next();
        let kind = match args.next().as_deref() {
            Some("small") => MixKind::Small,
            _ => MixKind::Realistic,
        };
        let zlib = args.next().as_deref() != Some("none");
        let mb: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(600);
        let server = server::Server::start().expect("replay server");
        let replay = Arc::new(Replay::build(&Mix::new(kind, mb * 1_000_000), server.port, zlib));
        let expect = replay.dispatches;
        server.set(Some(replay));
        println!("--port {} --expect {expect} --compression {}", server.port, if zlib { "zlib" } else { "none" });
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }

    let (mut mixes, mut zlibs, mut repeat, mut mb) =
        (vec![MixKind::Realistic, MixKind::Small], vec![true, false], 3, 1500u64);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--mix" => {
                mixes = match value().as_str() {
                    "realistic" => vec![MixKind::Realistic],
                    "small" => vec![MixKind::Small],
                    "both" => vec![MixKind::Realistic, MixKind::Small],
                    other => usage(&format!("unknown mix {other}")),
                }
            }
            "--compression" => {
                zlibs = match value().as_str() {
                    "zlib" => vec![true],
                    "none" => vec![false],
                    "both" => vec![true, false],
                    other => usage(&format!("unknown compression {other}")),
                }
            }
            "--repeat" => repeat = value().parse().unwrap_or_else(|_| usage("--repeat N")),
            "--mb" => mb = value().parse().unwrap_or_else(|_| usage("--mb M")),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown flag {other}")),
        }
    }

    let stock = build_twilight_stock();
    let server = server::Server::start().expect("replay server");
    eprintln!("replay server on 127.0.0.1:{}", server.port);
    let me = std::env::current_exe().expect("current exe");

    let mut rows: Vec<Row> = Vec::new();
    let mut inflate_rows: Vec<(MixKind, f64, f64)> = Vec::new();
    let mut volumes = Vec::new();
    for &kind in &mixes {
        for &zlib in &zlibs {
            let mix = Mix::new(kind, volume_mb(mb, kind, zlib) * 1_000_000);
            eprintln!(
                "mix {} ({}): {} payloads ({} dispatches, {:.2} MB) per copy, {} copies, largest payload {} bytes",
                kind.name(),
                if zlib { "zlib" } else { "none" },
                mix.texts.len(),
                mix.copy_dispatches(),
                mix.copy_bytes() as f64 / 1e6,
                mix.copies,
                mix.texts.iter().map(String::len).max().unwrap_or(0)
            );
            let replay = Arc::new(Replay::build(&mix, server.port, zlib));
            volumes.push(format!(
                "{} {}: {} dispatches, {:.0} MB",
                kind.name(),
                if zlib { "zlib-stream" } else { "none" },
                replay.dispatches,
                replay.full_bytes as f64 / 1e6
            ));
            server.set(Some(Arc::clone(&replay)));
            let mut clients = vec![Client::OursTokio, Client::OursAsyncStd, Client::Twilight];
            if zlib {
                // Without compression the two twilight builds run the same code.
                clients.push(Client::TwilightStd);
            }
            let mut runs: Vec<Vec<Run>> = clients.iter().map(|_| Vec::new()).collect();
            for round in 0..repeat {
                for (i, &client) in clients.iter().enumerate() {
                    let exe = if client == Client::Twilight { &stock } else { &me };
                    let run = run_client(exe, client, &replay, server.port);
                    let queries = server.take_queries();
                    check_query(client, zlib, &queries);
                    eprintln!(
                        "  [{} {} #{}] {:<34} {:>9.0} dispatches/s {:>7.1} MB/s  VmHWM {:>7.1} MiB",
                        kind.name(),
                        if zlib { "zlib" } else { "none" },
                        round + 1,
                        client.label(),
                        run.dispatches_per_s,
                        run.mb_per_s,
                        run.rss_kb as f64 / 1024.0
                    );
                    runs[i].push(run);
                }
            }
            for (client, runs) in clients.iter().zip(runs) {
                rows.push(Row { mix: kind, zlib, client: client.label().to_owned(), runs });
            }
            if zlib {
                let (per_s, mb_s) = time_inflate(&replay, repeat);
                eprintln!("  [{} zlib] Inflater::push alone: {per_s:.0} msgs/s {mb_s:.1} MB/s", kind.name());
                inflate_rows.push((kind, per_s, mb_s));
            }
            server.set(None);
        }
    }
    print_tables(&rows, &inflate_rows, repeat, &volumes);
}

/// MB of JSON replayed per run: `mb` for the realistic mix, half for the
/// small one, 2.5× without compression (cheap to precompute, fast to read).
fn volume_mb(mb: u64, kind: MixKind, zlib: bool) -> u64 {
    let mb = if kind == MixKind::Small { mb / 2 } else { mb };
    if zlib {
        mb
    } else {
        mb * 5 / 2
    }
}

fn usage(error: &str) -> ! {
    if !error.is_empty() {
        eprintln!("error: {error}");
    }
    eprintln!(
        "usage: compare [--mix realistic|small|both] [--compression zlib|none|both] [--repeat N] [--mb MB]\n\
         \x20 --mb: MB of JSON replayed per run for the realistic mix with zlib (default 1500);\n\
         \x20 the small mix gets half, uncompressed runs 2.5x"
    );
    std::process::exit(if error.is_empty() { 0 } else { 2 })
}

/// Builds `twilight-stock/` (its own workspace, so its features are its own).
fn build_twilight_stock() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = dir.join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("building twilight-stock ...");
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(dir.join("twilight-stock/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building twilight-stock failed");
    target.join("release/twilight-stock")
}

fn check_query(client: Client, zlib: bool, queries: &[String]) {
    assert_eq!(queries.len(), 1, "{}: expected one connection, got {queries:?}", client.label());
    let asks_zlib = queries[0].contains("compress=zlib-stream");
    match client {
        // Compile-time choice in twilight: always asks; the server decides.
        Client::Twilight | Client::TwilightStd => assert!(asks_zlib, "twilight query {:?}", queries[0]),
        _ => assert_eq!(asks_zlib, zlib, "{} query {:?}", client.label(), queries[0]),
    }
}

fn run_client(exe: &PathBuf, client: Client, replay: &Replay, port: u16) -> Run {
    let mut child = Command::new(exe)
        .args(["client", client.arg(), "--port", &port.to_string(), "--expect", &replay.dispatches.to_string()])
        .args(["--compression", if replay.zlib { "zlib" } else { "none" }])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout).lines().map_while(Result::ok).find(|line| line.starts_with("RESULT "))
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} timed out", client.label());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let line = reader.join().expect("reader").unwrap_or_else(|| panic!("{} printed no result", client.label()));
    let field = |key: &str| -> String {
        let at = line.find(&format!(" {key}=")).unwrap_or_else(|| panic!("no {key} in {line}")) + key.len() + 2;
        let rest = &line[at..];
        if key == "consumed_via" {
            rest.to_owned()
        } else {
            rest.split(' ').next().unwrap_or_default().to_owned()
        }
    };
    let count: u64 = field("count").parse().expect("count");
    let bytes: u64 = field("bytes").parse().expect("bytes");
    let window = field("window_ns").parse::<u64>().expect("window") as f64 / 1e9;
    assert_eq!(count, replay.dispatches, "{}: dispatch count", client.label());
    let expected_bytes = match client {
        Client::OursTokio | Client::OursAsyncStd => replay.d_bytes,
        Client::Twilight | Client::TwilightStd => replay.full_bytes,
    };
    assert_eq!(bytes, expected_bytes, "{}: bytes received", client.label());
    Run {
        dispatches_per_s: (replay.dispatches - 2) as f64 / window,
        mb_per_s: replay.window_bytes as f64 / window / 1e6,
        rss_kb: field("vmhwm_kb").parse().expect("vmhwm"),
        consumed_via: field("consumed_via"),
    }
}

/// `Inflater::push` alone over the same frames, same window (median of `repeat`).
fn time_inflate(replay: &Replay, repeat: usize) -> (f64, f64) {
    let mut inflater = Inflater::new(DEFAULT_MAX_MESSAGE_SIZE);
    let mut results = Vec::new();
    for _ in 0..repeat.max(1) {
        inflater.reset();
        inflater.push(&replay.hello_payload).expect("inflate").expect("hello");
        let frames: Vec<&[u8]> = replay.frames.iter().map(|&(at, len)| &replay.bulk[at..at + len]).collect();
        // READY and the first dispatch after it, then the clock.
        let mut rest = frames.iter();
        let mut seen = 0;
        for frame in rest.by_ref() {
            if inflater.push(frame).expect("inflate").is_some() {
                seen += 1;
            }
            if seen == 2 {
                break;
            }
        }
        let started = Instant::now();
        let mut total = 0usize;
        for frame in rest {
            if let Some(payload) = inflater.push(frame).expect("inflate") {
                total += std::hint::black_box(payload).len();
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        assert!(total as u64 >= replay.window_bytes);
        results.push(((replay.dispatches - 2) as f64 / elapsed, replay.window_bytes as f64 / elapsed / 1e6));
    }
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    results[results.len() / 2]
}

fn print_tables(rows: &[Row], inflate: &[(MixKind, f64, f64)], repeat: usize, volumes: &[String]) {
    println!();
    println!("Median of {repeat} runs (range = slowest–fastest run, dispatches/s). MB/s counts the JSON bytes of");
    println!(
        "whole dispatch payloads (envelope included, as inflated), 1 MB = 10^6 B. Peak RSS = max VmHWM of the runs."
    );
    println!("Replayed per run: {}.", volumes.join("; "));
    println!();
    println!("| mix | compression | client | dispatches/s | range | MB/s | peak RSS |");
    println!("|---|---|---|---:|---:|---:|---:|");
    for row in rows {
        let median = row.median();
        let (low, high) = row
            .runs
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(r.dispatches_per_s), hi.max(r.dispatches_per_s)));
        println!(
            "| {} | {} | {} | {:.0} | {:.0}–{:.0} | {:.1} | {:.1} MiB |",
            row.mix.name(),
            if row.zlib { "zlib-stream" } else { "none" },
            row.client,
            median.dispatches_per_s,
            low,
            high,
            median.mb_per_s,
            row.peak_rss_kb() as f64 / 1024.0
        );
        if row.zlib && row.client == Client::OursAsyncStd.label() {
            if let Some((_, per_s, mb_s)) = inflate.iter().find(|(kind, ..)| *kind == row.mix) {
                println!(
                    "| {} | zlib-stream | `Inflater::push` alone (in-process) | {per_s:.0} | | {mb_s:.1} | – |",
                    row.mix.name()
                );
            }
        }
    }
    println!();
    println!("| mix | compression | ours ÷ twilight | ours ÷ twilight (zlib-rs `std`) | ours ÷ inflate alone | RSS ours ÷ twilight | async-std variant ÷ twilight |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let find = |mix: MixKind, zlib: bool, client: Client| {
        rows.iter().find(|r| r.mix == mix && r.zlib == zlib && r.client == client.label())
    };
    let mut seen = Vec::new();
    for row in rows {
        if seen.contains(&(row.mix, row.zlib)) {
            continue;
        }
        seen.push((row.mix, row.zlib));
        let (Some(ours), Some(twilight)) =
            (find(row.mix, row.zlib, Client::OursTokio), find(row.mix, row.zlib, Client::Twilight))
        else {
            continue;
        };
        let ours_rate = ours.median().dispatches_per_s;
        let ratio = |other: f64| format!("{:.2}×", ours_rate / other);
        let twilight_std = find(row.mix, row.zlib, Client::TwilightStd)
            .map_or("–".to_owned(), |r| ratio(r.median().dispatches_per_s));
        let inflate_ratio = if row.zlib {
            inflate.iter().find(|(kind, ..)| *kind == row.mix).map_or("–".to_owned(), |(_, per_s, _)| ratio(*per_s))
        } else {
            "–".to_owned()
        };
        let async_std = find(row.mix, row.zlib, Client::OursAsyncStd).map_or("–".to_owned(), |r| {
            format!("{:.2}×", r.median().dispatches_per_s / twilight.median().dispatches_per_s)
        });
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {} |",
            row.mix.name(),
            if row.zlib { "zlib-stream" } else { "none" },
            ratio(twilight.median().dispatches_per_s),
            twilight_std,
            inflate_ratio,
            ours.peak_rss_kb() as f64 / twilight.peak_rss_kb() as f64,
            async_std
        );
    }
    println!();
    let mut vias: Vec<(String, String)> = Vec::new();
    for row in rows {
        let pair = (row.client.clone(), row.median().consumed_via.clone());
        if !vias.contains(&pair) {
            vias.push(pair);
        }
    }
    for (client, via) in vias {
        println!("- {client}: consumed via {via}");
    }
}
