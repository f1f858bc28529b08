//! End-to-end throughput of discord-gateway-stream's `Shard` against
//! twilight-gateway, over a loopback replay server.
//!
//! ```text
//! cargo run --release --manifest-path benches/compare/Cargo.toml -- \
//!     [--mix realistic|small|both] [--compression zlib|none|both] [--repeat N] [--mb M] \
//!     [--clients NAME,NAME,...]
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
//!
//! The clients (`--clients` picks a subset by name, default all), compared in
//! three pairs of consumers:
//!
//! - **minimal**: ours (`ours-tokio`; also `ours-async-std`) reads each
//!   dispatch's `t`, `s` and `d` span; twilight (`twilight`) counts raw
//!   `Message::Text`s with `"op":0` in their first 96 bytes.
//! - **equivalent output**: the same ours against twilight producing what our
//!   `Dispatch` gives (`twilight-equivalent`): `op`/`s`/`t` from
//!   `GatewayEventDeserializer::from_json`, `d` as a serde_json `&RawValue`,
//!   opcode 0 only; serde validates every payload, so `ours-strict`
//!   (`Config::validate_payloads(true)`) is compared with it too.
//! - **typed**: MESSAGE_CREATE into twilight-model's `MessageCreate`, ours by
//!   `Config::events(["MESSAGE_CREATE"])` and `Dispatch::deserialize`
//!   (`ours-typed`), twilight
//!   by `next_event(EventTypeFlags::MESSAGE_CREATE)` (`twilight-typed`).
//!
//! twilight clients run from `twilight-stock/` (twilight-gateway built alone);
//! `twilight-std` and `twilight-equivalent-std` are the same code in this
//! binary, where zlib-rs has run-time CPU detection (zlib runs only).
//!
//! A client's clock runs from the second dispatch it counts (the first after
//! READY; for the typed clients the second MESSAGE_CREATE) to the last one;
//! every run checks the count and the bytes its consumer saw (`d` bytes,
//! whole payload bytes for twilight minimal, decoded `content` bytes for the
//! typed clients). dispatches/s and MB/s count every dispatch of the stream
//! in that window, so all rows compare.

#[path = "../../../fuzz/payloads.rs"]
mod payloads;

mod clients;
mod mixes;
mod report;
mod server;
mod twilight_client;
mod wire;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use discord_gateway_stream::codec::{Inflater, DEFAULT_MAX_MESSAGE_SIZE};

use mixes::{Mix, MixKind, Replay};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// Shard, tokio connector, driver spawned; every dispatch's `t`, `s`, `d` span.
    OursTokio,
    /// Shard::new (async-std connector), not spawned, async_io::block_on.
    OursAsyncStd,
    /// As `OursTokio`, MESSAGE_CREATE deserialized into twilight-model.
    OursTyped,
    /// As `OursTokio`, with `Config::validate_payloads(true)`: every payload
    /// validated as JSON in full, as twilight's equivalent consumer does.
    OursStrict,
    /// twilight-gateway built alone (`twilight-stock` binary), raw `Message`s
    /// with an `"op":0` substring check.
    Twilight,
    /// The same in this binary (zlib-rs with run-time CPU detection).
    TwilightStd,
    /// twilight-gateway built alone, `op`/`s`/`t` from its
    /// `GatewayEventDeserializer` and `d` as a serde_json `&RawValue`.
    TwilightEquivalent,
    /// The same in this binary.
    TwilightEquivalentStd,
    /// twilight-gateway built alone, `next_event(EventTypeFlags::MESSAGE_CREATE)`.
    TwilightTyped,
}

/// What a client's consumer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counts {
    /// Every dispatch, READY included: its `d` bytes (ours, twilight
    /// equivalent) or its whole payload bytes (twilight minimal).
    Dispatches,
    /// MESSAGE_CREATEs only: the decoded `content` bytes of each.
    MessageCreates,
}

impl Client {
    /// Every client, in the order of each round and of the tables.
    const ALL: [Client; 9] = [
        Client::OursTokio,
        Client::OursStrict,
        Client::OursAsyncStd,
        Client::OursTyped,
        Client::Twilight,
        Client::TwilightStd,
        Client::TwilightEquivalent,
        Client::TwilightEquivalentStd,
        Client::TwilightTyped,
    ];

    fn label(self) -> &'static str {
        match self {
            Client::OursTokio => "ours (tokio, driver spawned)",
            Client::OursAsyncStd => "ours (async-std, not spawned)",
            Client::OursTyped => "ours typed (tokio): `deserialize::<MessageCreate>`",
            Client::OursStrict => "ours (tokio), `validate_payloads(true)`",
            Client::Twilight => "twilight-gateway",
            Client::TwilightStd => "twilight-gateway, zlib-rs `std`",
            Client::TwilightEquivalent => "twilight-gateway equivalent output",
            Client::TwilightEquivalentStd => "twilight-gateway equivalent output, zlib-rs `std`",
            Client::TwilightTyped => "twilight-gateway typed: `next_event(MESSAGE_CREATE)`",
        }
    }

    /// The `--clients` name.
    fn name(self) -> &'static str {
        match self {
            Client::OursTokio => "ours-tokio",
            Client::OursAsyncStd => "ours-async-std",
            Client::OursTyped => "ours-typed",
            Client::OursStrict => "ours-strict",
            Client::Twilight => "twilight",
            Client::TwilightStd => "twilight-std",
            Client::TwilightEquivalent => "twilight-equivalent",
            Client::TwilightEquivalentStd => "twilight-equivalent-std",
            Client::TwilightTyped => "twilight-typed",
        }
    }

    /// The child process's `client <kind>`.
    fn arg(self) -> &'static str {
        match self {
            Client::TwilightStd => "twilight",
            Client::TwilightEquivalentStd => "twilight-equivalent",
            other => other.name(),
        }
    }

    fn is_twilight(self) -> bool {
        !matches!(self, Client::OursTokio | Client::OursAsyncStd | Client::OursTyped | Client::OursStrict)
    }

    /// Runs from the separately built `twilight-stock` binary.
    fn is_stock(self) -> bool {
        matches!(self, Client::Twilight | Client::TwilightEquivalent | Client::TwilightTyped)
    }

    /// A twilight build that differs from the stock one only in its inflater.
    fn zlib_only(self) -> bool {
        matches!(self, Client::TwilightStd | Client::TwilightEquivalentStd)
    }

    fn counts(self) -> Counts {
        match self {
            Client::OursTyped | Client::TwilightTyped => Counts::MessageCreates,
            _ => Counts::Dispatches,
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
    client: Client,
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
            "ours-typed" => clients::run_typed(&args),
            "ours-strict" => clients::run_strict(&args),
            _ => twilight_client::run_kind(&args),
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
        let (expect, typed) = (replay.dispatches, replay.typed.counted);
        server.set(Some(replay));
        let compression = if zlib { "zlib" } else { "none" };
        println!("--port {} --expect {expect} --compression {compression}", server.port);
        println!("(typed clients: --expect {typed})");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }

    let (mut mixes, mut zlibs, mut repeat, mut mb) =
        (vec![MixKind::Realistic, MixKind::Small], vec![true, false], 3, 1500u64);
    let mut chosen = Client::ALL.to_vec();
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
            "--clients" => {
                let names = value();
                chosen = Vec::new();
                for name in names.split(',').map(str::trim).filter(|name| !name.is_empty()) {
                    match Client::ALL.iter().find(|client| client.name() == name) {
                        Some(client) if !chosen.contains(client) => chosen.push(*client),
                        Some(_) => {}
                        None => usage(&format!("unknown client {name}")),
                    }
                }
                // Round order and table order stay those of `Client::ALL`.
                chosen.sort_by_key(|client| Client::ALL.iter().position(|c| c == client));
                if chosen.is_empty() {
                    usage("--clients needs at least one client");
                }
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown flag {other}")),
        }
    }

    let stock = chosen.iter().any(|client| client.is_stock()).then(build_twilight_stock);
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
                "mix {} ({}): {} payloads ({} dispatches, {} MESSAGE_CREATE, {:.2} MB) per copy, {} copies, largest payload {} bytes",
                kind.name(),
                if zlib { "zlib" } else { "none" },
                mix.texts.len(),
                mix.copy_dispatches(),
                mix.copy_message_creates(),
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
            // Without compression the two twilight builds run the same code.
            let clients: Vec<Client> = chosen.iter().copied().filter(|client| zlib || !client.zlib_only()).collect();
            let mut runs: Vec<Vec<Run>> = clients.iter().map(|_| Vec::new()).collect();
            for round in 0..repeat {
                for (i, &client) in clients.iter().enumerate() {
                    let exe = if client.is_stock() { stock.as_ref().expect("twilight-stock built") } else { &me };
                    let run = run_client(exe, client, &replay, server.port);
                    let queries = server.take_queries();
                    check_query(client, zlib, &queries);
                    eprintln!(
                        "  [{} {} #{}] {:<52} {:>9.0} dispatches/s {:>7.1} MB/s  VmHWM {:>7.1} MiB",
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
                rows.push(Row { mix: kind, zlib, client: *client, runs });
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
         \x20              [--clients NAME,NAME,...]\n\
         \x20 --mb: MB of JSON replayed per run for the realistic mix with zlib (default 1500);\n\
         \x20 the small mix gets half, uncompressed runs 2.5x\n\
         \x20 --clients: a subset of {} (default all;\n\
         \x20 the `-std` ones only run with zlib)",
        Client::ALL.map(Client::name).join(", ")
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
    if client.is_twilight() {
        // Compile-time choice in twilight: always asks; the server decides.
        assert!(asks_zlib, "twilight query {:?}", queries[0]);
    } else {
        assert_eq!(asks_zlib, zlib, "{} query {:?}", client.label(), queries[0]);
    }
}

fn run_client(exe: &PathBuf, client: Client, replay: &Replay, port: u16) -> Run {
    let window = match client.counts() {
        Counts::Dispatches => replay.all,
        Counts::MessageCreates => replay.typed,
    };
    let mut child = Command::new(exe)
        .args(["client", client.arg(), "--port", &port.to_string(), "--expect", &window.counted.to_string()])
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
    let seconds = field("window_ns").parse::<u64>().expect("window") as f64 / 1e9;
    assert_eq!(count, window.counted, "{}: dispatch count", client.label());
    let expected_bytes = match client {
        Client::Twilight | Client::TwilightStd => replay.full_bytes,
        _ if client.counts() == Counts::MessageCreates => replay.content_bytes,
        _ => replay.d_bytes,
    };
    assert_eq!(bytes, expected_bytes, "{}: bytes received", client.label());
    Run {
        dispatches_per_s: window.dispatches as f64 / seconds,
        mb_per_s: window.bytes as f64 / seconds / 1e6,
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
        assert!(total as u64 >= replay.all.bytes);
        results.push((replay.all.dispatches as f64 / elapsed, replay.all.bytes as f64 / elapsed / 1e6));
    }
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    results[results.len() / 2]
}

fn print_tables(rows: &[Row], inflate: &[(MixKind, f64, f64)], repeat: usize, volumes: &[String]) {
    let compression = |zlib: bool| if zlib { "zlib-stream" } else { "none" };
    let inflate_of =
        |mix: MixKind| inflate.iter().find(|(kind, ..)| *kind == mix).map(|&(_, per_s, mb_s)| (per_s, mb_s));
    println!();
    println!("Median of {repeat} runs (range = slowest–fastest run, dispatches/s). MB/s counts the JSON bytes of");
    println!(
        "whole dispatch payloads (envelope included, as inflated), 1 MB = 10^6 B. Peak RSS = max VmHWM of the runs."
    );
    println!("Typed clients are timed from the 2nd to the last MESSAGE_CREATE; their dispatches/s and MB/s");
    println!("still count every dispatch of the stream in that window, so all rows compare.");
    println!("Replayed per run: {}.", volumes.join("; "));
    println!();
    println!("| mix | compression | client | dispatches/s | range | MB/s | peak RSS |");
    println!("|---|---|---|---:|---:|---:|---:|");
    for (i, row) in rows.iter().enumerate() {
        let median = row.median();
        let (low, high) = row
            .runs
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(r.dispatches_per_s), hi.max(r.dispatches_per_s)));
        println!(
            "| {} | {} | {} | {:.0} | {:.0}–{:.0} | {:.1} | {:.1} MiB |",
            row.mix.name(),
            compression(row.zlib),
            row.client.label(),
            median.dispatches_per_s,
            low,
            high,
            median.mb_per_s,
            row.peak_rss_kb() as f64 / 1024.0
        );
        // After the last of our clients in a zlib configuration.
        let next_is_ours = rows
            .get(i + 1)
            .is_some_and(|next| (next.mix, next.zlib) == (row.mix, row.zlib) && !next.client.is_twilight());
        if row.zlib && !row.client.is_twilight() && !next_is_ours {
            if let Some((per_s, mb_s)) = inflate_of(row.mix) {
                println!(
                    "| {} | zlib-stream | `Inflater::push` alone (in-process) | {per_s:.0} | | {mb_s:.1} | – |",
                    row.mix.name()
                );
            }
        }
    }

    // (comparison, ours, against); `None` = `Inflater::push` alone.
    let comparisons: [(&str, Client, Option<Client>); 8] = [
        ("minimal", Client::OursTokio, Some(Client::Twilight)),
        ("minimal, twilight with zlib-rs `std`", Client::OursTokio, Some(Client::TwilightStd)),
        ("equivalent output", Client::OursTokio, Some(Client::TwilightEquivalent)),
        ("equivalent output, twilight with zlib-rs `std`", Client::OursTokio, Some(Client::TwilightEquivalentStd)),
        ("equivalent output, both validating every payload", Client::OursStrict, Some(Client::TwilightEquivalent)),
        ("typed MESSAGE_CREATE", Client::OursTyped, Some(Client::TwilightTyped)),
        ("minimal, ours on async-std (not spawned)", Client::OursAsyncStd, Some(Client::Twilight)),
        ("minimal, against `Inflater::push` alone", Client::OursTokio, None),
    ];
    let find = |mix: MixKind, zlib: bool, client: Client| {
        rows.iter().find(|r| r.mix == mix && r.zlib == zlib && r.client == client)
    };
    println!();
    println!("Ratios of median dispatches/s (and of peak RSS), ours ÷ twilight or ÷ inflate alone:");
    println!();
    println!("| mix | compression | comparison | ours | against | ours ÷ against | peak RSS ours ÷ against |");
    println!("|---|---|---|---:|---:|---:|---:|");
    let mut seen = Vec::new();
    for row in rows {
        let (mix, zlib) = (row.mix, row.zlib);
        if seen.contains(&(mix, zlib)) {
            continue;
        }
        seen.push((mix, zlib));
        for (consumer, ours, theirs) in comparisons {
            let Some(ours) = find(mix, zlib, ours) else { continue };
            let ours_rate = ours.median().dispatches_per_s;
            let (theirs_rate, rss) = match theirs {
                Some(theirs) => {
                    let Some(theirs) = find(mix, zlib, theirs) else { continue };
                    let rss = ours.peak_rss_kb() as f64 / theirs.peak_rss_kb() as f64;
                    (theirs.median().dispatches_per_s, format!("{rss:.2}"))
                }
                None => {
                    let Some((per_s, _)) = inflate_of(mix).filter(|_| zlib) else { continue };
                    (per_s, "–".to_owned())
                }
            };
            println!(
                "| {} | {} | {consumer} | {ours_rate:.0} | {theirs_rate:.0} | {:.2}× | {rss} |",
                mix.name(),
                compression(zlib),
                ours_rate / theirs_rate
            );
        }
    }
    println!();
    let mut vias: Vec<(Client, String)> = Vec::new();
    for row in rows {
        let pair = (row.client, row.median().consumed_via.clone());
        if !vias.contains(&pair) {
            vias.push(pair);
        }
    }
    for (client, via) in vias {
        println!("- {}: consumed via {via}", client.label());
    }
}
