//! End-to-end throughput of discord-gateway-stream's `Shard` against
//! twilight-gateway, over a loopback replay server.
//!
//! ```text
//! cargo run --release --manifest-path benches/compare/Cargo.toml -- \
//!     [--mix realistic|small|both] [--compression zlib|zstd|none|both|all] [--repeat N] \
//!     [--mb M] [--clients NAME,NAME,...]
//! ```
//!
//! `--compression all` (the default) runs zlib-stream, zstd-stream and
//! none, in that order; `both` is zlib-stream and none.
//!
//! Each mix (fuzz/payloads.rs) is repeated with increasing `s` to a volume of
//! JSON that keeps every run a few seconds long: `--mb` MB (default 1500) for
//! the realistic mix, half that for the small one (its bytes are slower), and
//! 2.5× those without compression. Each is precomputed once per compression as the exact
//! bytes the server writes (Hello, READY, the mix, spare heartbeat ACKs):
//! for zlib-stream one zlib stream per connection with a sync flush per
//! payload; for zstd-stream one zstd frame per connection (level 3, window
//! log 18 as Discord's frames declare), each payload compressed and flushed
//! (`ZSTD_e_flush`) into one binary message; or text frames. The server
//! serves one compression at a time and checks that each client's URL query
//! asked for it (`compress=zlib-stream` / `compress=zstd-stream` / none).
//! Every client runs in its own child process (`<binary> client <kind> ...`),
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
//! Ours asks for the row's compression (`Compression::ZlibStream`,
//! `ZstdStream` or `None`). Our clients run from `ours-stock/`: the crate
//! with its default features plus `zstd` (no `fuzzing`), built alone, so its
//! binary carries neither this harness, the replay server nor
//! twilight-gateway and its peak RSS (code pages included) compares with
//! twilight's slim binary. (`compare client ours-...` still runs them from
//! this binary, e.g. for profiling by hand.) twilight
//! clients run from `twilight-stock/` (twilight-gateway built alone, a
//! compile-time choice of compression): its `zlib` build on the zlib-stream
//! and uncompressed rows, its `zstd` build (twilight-gateway's default
//! compression: a zstd-safe `DCtx` and a 32 KiB output buffer per shard,
//! each message copied out into a new `String`) on the zstd-stream rows. `twilight-std` and `twilight-equivalent-std` are the `zlib` code in
//! this binary, where zlib-rs has run-time CPU detection (zlib runs only).
//!
//! Per compressed configuration, a limit row: decompression alone in this
//! process over the same messages and window, our `Inflater::push` for
//! zlib-stream, a zstd-safe `DCtx::decompress_stream` into one reused
//! buffer for zstd-stream (what any zstd client has to do at least).
//! And one client that is neither crate (`stack`, src/stack_client.rs): our
//! WebSocket stack without the `Shard`, doing what twilight's minimal
//! consumer does in one task (async-tungstenite on tokio compat with the
//! shard's `WebSocketConfig`, each message decompressed into one reused
//! buffer, UTF-8 checked, `"op":0` found). It splits ours' distance from
//! decompression alone into what the transport costs (stack ÷ alone) and
//! what the crate adds to it (ours ÷ stack).
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
mod compression;
mod mixes;
mod report;
mod server;
mod stack_client;
mod twilight_client;
mod wire;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use discord_gateway_stream::fuzzing::Inflater;
use discord_gateway_stream::protocol::DEFAULT_MAX_MESSAGE_SIZE;

use compression::Codec;
use mixes::{Mix, MixKind, Replay};

/// A client, each run in a child process: ours from the `ours-stock` binary,
/// twilight from `twilight-stock` except the `-std` ones (this binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// Shard, tokio connector, driver spawned; every dispatch's `t`, `s`, `d` span.
    OursTokio,
    /// Shard::new (the default connector: async-io), not spawned, async_io::block_on.
    OursAsyncStd,
    /// As `OursTokio`, MESSAGE_CREATE deserialized into twilight-model.
    OursTyped,
    /// As `OursTokio`, with `Config::validate_payloads(true)`: every payload
    /// validated as JSON in full, as twilight's equivalent consumer does.
    OursStrict,
    /// Our WebSocket stack without the `Shard` (src/stack_client.rs): what
    /// twilight's minimal consumer does, on async-tungstenite and our
    /// decompressor, in one task.
    Stack,
    /// twilight-gateway built alone (`twilight-stock` binary, its `zstd`
    /// build on zstd rows), raw `Message`s with an `"op":0` substring check.
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
    const ALL: [Client; 10] = [
        Client::OursTokio,
        Client::OursStrict,
        Client::OursAsyncStd,
        Client::OursTyped,
        Client::Stack,
        Client::Twilight,
        Client::TwilightStd,
        Client::TwilightEquivalent,
        Client::TwilightEquivalentStd,
        Client::TwilightTyped,
    ];

    fn label(self) -> &'static str {
        match self {
            Client::OursTokio => "ours (tokio, driver spawned)",
            Client::OursAsyncStd => "ours (`Shard::new`, async-io, not spawned)",
            Client::OursTyped => "ours typed (tokio): `deserialize::<MessageCreate>`",
            Client::OursStrict => "ours (tokio), `validate_payloads(true)`",
            Client::Stack => "our WebSocket stack alone: async-tungstenite + decompression, one task, no `Shard`",
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
            Client::Stack => "stack",
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
        !matches!(
            self,
            Client::OursTokio | Client::OursAsyncStd | Client::OursTyped | Client::OursStrict | Client::Stack
        )
    }

    /// Runs from a separately built `twilight-stock` binary (`zlib` build, or
    /// `zstd` build on the zstd rows).
    fn is_twilight_stock(self) -> bool {
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
    codec: Codec,
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
        if args.kind.starts_with("ours-") {
            clients::run_kind(&args)
        } else if args.kind == "stack" {
            stack_client::run(&args)
        } else {
            twilight_client::run_kind(&args)
        }
    }
    if args.peek().map(String::as_str) == Some("serve") {
        // `compare serve realistic|small zlib|zstd|none MB`: the replay server alone,
        // for profiling a client by hand (`compare client <kind> --port P --expect N ...`,
        // or the same with the ours-stock / twilight-stock binaries).
        args.next();
        let kind = match args.next().as_deref() {
            Some("small") => MixKind::Small,
            _ => MixKind::Realistic,
        };
        let codec = args.next().map_or(Codec::Zlib, |name| {
            Codec::parse(&name).unwrap_or_else(|| usage(&format!("unknown compression {name}")))
        });
        let mb: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(600);
        let server = server::Server::start().expect("replay server");
        let replay = Arc::new(Replay::build(&Mix::new(kind, mb * 1_000_000), server.port, codec));
        let (expect, typed) = (replay.dispatches, replay.typed.counted);
        server.set(Some(replay));
        println!("--port {} --expect {expect} --compression {}", server.port, codec.arg());
        println!("(typed clients: --expect {typed})");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }

    let (mut mixes, mut codecs, mut repeat, mut mb) =
        (vec![MixKind::Realistic, MixKind::Small], Codec::ALL.to_vec(), 3, 1500u64);
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
                let name = value();
                codecs = Codec::parse_set(&name).unwrap_or_else(|| usage(&format!("unknown compression {name}")))
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

    let any_stock = chosen.iter().any(|client| client.is_twilight_stock());
    // twilight-stock's `zlib` build also serves the uncompressed rows.
    let stock_zlib = (any_stock && codecs.iter().any(|&c| c != Codec::Zstd)).then(|| build_twilight_stock(Codec::Zlib));
    let stock_zstd = (any_stock && codecs.contains(&Codec::Zstd)).then(|| build_twilight_stock(Codec::Zstd));
    let ours_stock =
        chosen.iter().any(|client| !client.is_twilight() && *client != Client::Stack).then(build_ours_stock);
    let server = server::Server::start().expect("replay server");
    eprintln!("replay server on 127.0.0.1:{}", server.port);
    let me = std::env::current_exe().expect("current exe");

    let mut rows: Vec<Row> = Vec::new();
    let mut limits: Vec<Limit> = Vec::new();
    let mut typed_limits: Vec<TypedLimit> = Vec::new();
    let mut volumes = Vec::new();
    for &kind in &mixes {
        for &codec in &codecs {
            let mix = Mix::new(kind, volume_mb(mb, kind, codec) * 1_000_000);
            eprintln!(
                "mix {} ({}): {} payloads ({} dispatches, {} MESSAGE_CREATE, {:.2} MB) per copy, {} copies, largest payload {} bytes",
                kind.name(),
                codec.arg(),
                mix.texts.len(),
                mix.copy_dispatches(),
                mix.copy_message_creates(),
                mix.copy_bytes() as f64 / 1e6,
                mix.copies,
                mix.texts.iter().map(String::len).max().unwrap_or(0)
            );
            let replay = Arc::new(Replay::build(&mix, server.port, codec));
            volumes.push(format!(
                "{} {}: {} dispatches, {:.0} MB",
                kind.name(),
                codec.label(),
                replay.dispatches,
                replay.full_bytes as f64 / 1e6
            ));
            server.set(Some(Arc::clone(&replay)));
            // The `-std` twilight builds differ only in their zlib inflater.
            let clients: Vec<Client> =
                chosen.iter().copied().filter(|client| codec == Codec::Zlib || !client.zlib_only()).collect();
            let mut runs: Vec<Vec<Run>> = clients.iter().map(|_| Vec::new()).collect();
            for round in 0..repeat {
                for (i, &client) in clients.iter().enumerate() {
                    let exe = match (client.is_twilight(), client.is_twilight_stock(), codec) {
                        // Not our crate's code path: the harness binary serves.
                        _ if client == Client::Stack => &me,
                        (false, _, _) => ours_stock.as_ref().expect("ours-stock built"),
                        (true, false, _) => &me,
                        (true, true, Codec::Zstd) => stock_zstd.as_ref().expect("twilight-stock zstd built"),
                        (true, true, _) => stock_zlib.as_ref().expect("twilight-stock zlib built"),
                    };
                    let run = run_client(exe, client, &replay, server.port);
                    let queries = server.take_queries();
                    check_query(client, codec, &queries);
                    eprintln!(
                        "  [{} {} #{}] {:<52} {:>9.0} dispatches/s {:>7.1} MB/s  VmHWM {:>7.1} MiB",
                        kind.name(),
                        codec.arg(),
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
                rows.push(Row { mix: kind, codec, client: *client, runs });
            }
            // Typed consumers: MESSAGE_CREATE deserialization alone (once
            // per mix), plus decompression alone on compressed rows.
            let typed_alone = time_typed_alone(&mix, repeat);
            eprintln!(
                "  [{} {}] MessageCreate deserialization alone: {typed_alone:.0} dispatches/s",
                kind.name(),
                codec.arg()
            );
            typed_limits.push(TypedLimit { mix: kind, codec, typed_alone, decompression: None });
            if let Some(mut decoder) = Decoder::new(codec) {
                let (per_s, mb_s) = time_alone(&mut decoder, &replay, repeat);
                eprintln!(
                    "  [{} {}] {} alone: {per_s:.0} dispatches/s {mb_s:.1} MB/s",
                    kind.name(),
                    codec.arg(),
                    decoder.label()
                );
                limits.push(Limit { mix: kind, codec, per_s, mb_s });
                if let Some(typed) = typed_limits.last_mut() {
                    typed.decompression = Some(per_s);
                }
            }
            server.set(None);
        }
    }
    print_tables(&rows, &limits, repeat, &volumes);
    print_typed_limits(&rows, &typed_limits);
}

/// MB of JSON replayed per run: `mb` for the realistic mix, half for the
/// small one, 2.5× without compression (cheap to precompute, fast to read).
fn volume_mb(mb: u64, kind: MixKind, codec: Codec) -> u64 {
    let mb = if kind == MixKind::Small { mb / 2 } else { mb };
    if codec.compressed() {
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
        "usage: compare [--mix realistic|small|both] [--compression zlib|zstd|none|both|all] [--repeat N]\n\
         \x20              [--mb MB] [--clients NAME,NAME,...]\n\
         \x20 --compression: both = zlib and none; all (default) = zlib, zstd and none\n\
         \x20 --mb: MB of JSON replayed per run for the realistic mix with zlib or zstd (default 1500);\n\
         \x20 the small mix gets half, uncompressed runs 2.5x\n\
         \x20 --clients: a subset of {} (default all;\n\
         \x20 the `-std` ones only run with zlib)",
        Client::ALL.map(Client::name).join(", ")
    );
    std::process::exit(if error.is_empty() { 0 } else { 2 })
}

/// Builds `twilight-stock/` (its own workspace, so its features are its own)
/// with twilight-gateway's `zlib` feature (the package default) or with only
/// its `zstd` feature; returns a copy of the binary for that build.
fn build_twilight_stock(codec: Codec) -> PathBuf {
    eprintln!("building twilight-stock ({}) ...", codec.arg());
    let features: &[&str] = match codec {
        Codec::Zstd => &["--no-default-features", "--features", "zstd"],
        _ => &[],
    };
    let target = build_package("twilight-stock", features);
    let copy = target.join(format!("release/twilight-stock-{}", codec.arg()));
    std::fs::copy(target.join("release/twilight-stock"), &copy).expect("copy twilight-stock");
    copy
}

/// Builds `ours-stock/` (its own workspace: the crate with its default
/// features plus `zstd`, none of this binary's) and returns its binary.
fn build_ours_stock() -> PathBuf {
    eprintln!("building ours-stock ...");
    build_package("ours-stock", &[]).join("release/ours-stock")
}

/// `cargo build --release` of the package in `name/` (its own workspace)
/// into this package's target directory, which it returns.
fn build_package(name: &str, extra: &[&str]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = dir.join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(dir.join(name).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .args(extra)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building {name} failed");
    target
}

/// The replay server serves one compression at a time: every client must
/// have asked for it, except that twilight's compression is a compile-time
/// choice (its `zlib` build asks for zlib-stream also on the uncompressed
/// rows, where the server sends text frames, which it reads as a build
/// without compression would).
fn check_query(client: Client, codec: Codec, queries: &[String]) {
    assert_eq!(queries.len(), 1, "{}: expected one connection, got {queries:?}", client.label());
    let asked = Codec::asked_in(&queries[0])
        .unwrap_or_else(|other| panic!("{}: unknown compress={other} in {:?}", client.label(), queries[0]));
    let expected = match (client.is_twilight(), codec) {
        (true, Codec::None) => Codec::Zlib,
        _ => codec,
    };
    assert_eq!(asked, expected, "{} query {:?} on a {} row", client.label(), queries[0], codec.label());
}

fn run_client(exe: &PathBuf, client: Client, replay: &Replay, port: u16) -> Run {
    let window = match client.counts() {
        Counts::Dispatches => replay.all,
        Counts::MessageCreates => replay.typed,
    };
    let mut child = Command::new(exe)
        .args(["client", client.arg(), "--port", &port.to_string(), "--expect", &window.counted.to_string()])
        .args(["--compression", replay.codec.arg()])
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
        Client::Twilight | Client::TwilightStd | Client::Stack => replay.full_bytes,
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

/// Decompression alone, in this process, over the replayed messages: the
/// limit for any client of that compression.
enum Decoder {
    /// Our `Inflater` (what our shard runs); boxed, it is most of the enum.
    Zlib(Box<Inflater>),
    /// A zstd-safe `DCtx` decoding each message into one reused buffer (it
    /// grows to the largest message on the first pass).
    Zstd(zstd_safe::DCtx<'static>, Vec<u8>),
}

impl Decoder {
    fn new(codec: Codec) -> Option<Decoder> {
        match codec {
            Codec::Zlib => Some(Decoder::Zlib(Box::new(Inflater::new(DEFAULT_MAX_MESSAGE_SIZE)))),
            Codec::Zstd => Some(Decoder::Zstd(zstd_safe::DCtx::create(), Vec::new())),
            Codec::None => None,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Decoder::Zlib(_) => "`Inflater::push`",
            Decoder::Zstd(..) => "zstd `DCtx::decompress_stream`",
        }
    }

    /// Starts a new connection's stream.
    fn reset(&mut self) {
        match self {
            Decoder::Zlib(inflater) => inflater.reset(),
            Decoder::Zstd(dctx, _) => {
                dctx.reset(zstd_safe::ResetDirective::SessionOnly).expect("zstd reset");
            }
        }
    }

    /// One WebSocket message; the length of the payload it completes.
    #[inline]
    fn push(&mut self, message: &[u8]) -> Option<usize> {
        self.payload(message).map(|payload| std::hint::black_box(payload).len())
    }

    /// One WebSocket message; the payload it completes, in the reused buffer.
    #[inline]
    fn payload(&mut self, message: &[u8]) -> Option<&[u8]> {
        match self {
            Decoder::Zlib(inflater) => inflater.push(message).expect("inflate"),
            Decoder::Zstd(dctx, out) => {
                let mut input = zstd_safe::InBuffer::around(message);
                let mut written = 0;
                loop {
                    if written == out.len() {
                        out.resize((out.len() * 2).max(64 * 1024), 0);
                    }
                    let mut output = zstd_safe::OutBuffer::around_pos(&mut out[..], written);
                    dctx.decompress_stream(&mut output, &mut input)
                        .unwrap_or_else(|code| panic!("zstd decompress: {}", zstd_safe::get_error_name(code)));
                    written = output.pos();
                    // All input taken and room left: everything is flushed.
                    if input.pos() == message.len() && written < out.len() {
                        break;
                    }
                }
                Some(&out[..written])
            }
        }
    }
}

/// `decoder` alone over the same messages, same window (median of `repeat`).
fn time_alone(decoder: &mut Decoder, replay: &Replay, repeat: usize) -> (f64, f64) {
    let mut results = Vec::new();
    for _ in 0..repeat.max(1) {
        decoder.reset();
        decoder.push(&replay.hello_payload).expect("hello");
        let frames: Vec<&[u8]> = replay.frames.iter().map(|&(at, len)| &replay.bulk[at..at + len]).collect();
        // READY and the first dispatch after it, then the clock.
        let mut rest = frames.iter();
        let mut seen = 0;
        for frame in rest.by_ref() {
            if decoder.push(frame).is_some() {
                seen += 1;
            }
            if seen == 2 {
                break;
            }
        }
        let started = Instant::now();
        let mut total = 0usize;
        for frame in rest {
            if let Some(len) = decoder.push(frame) {
                total += len;
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        assert!(total as u64 >= replay.all.bytes);
        results.push((replay.all.dispatches as f64 / elapsed, replay.all.bytes as f64 / elapsed / 1e6));
    }
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    results[results.len() / 2]
}

/// MESSAGE_CREATE deserialization alone, in this process: every
/// MESSAGE_CREATE `d` of one copy of the mix into twilight-model's
/// `MessageCreate` with serde_json (what both typed consumers do at least,
/// each with the same model and serde), as dispatches/s of the whole stream
/// (median of `repeat` passes, each at least 0.5 s).
fn time_typed_alone(mix: &Mix, repeat: usize) -> f64 {
    use twilight_model::gateway::payload::incoming::MessageCreate;
    let data: Vec<&str> = mix
        .texts
        .iter()
        .filter(|text| text.starts_with(r#"{"t":"MESSAGE_CREATE""#))
        .map(|text| {
            let envelope = discord_gateway_stream::fuzzing::Envelope::scan(text).expect("valid payload");
            &text[envelope.data.expect("MESSAGE_CREATE with d")]
        })
        .collect();
    let per_copy = mix.copy_dispatches() as f64;
    let mut rates = Vec::new();
    for _ in 0..repeat.max(1) {
        let started = Instant::now();
        let mut copies = 0u64;
        while copies == 0 || started.elapsed() < Duration::from_millis(500) {
            for d in &data {
                let message: MessageCreate = serde_json::from_str(d).expect("MessageCreate");
                std::hint::black_box(&message);
            }
            copies += 1;
        }
        rates.push(per_copy * copies as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// The least work of a typed consumer on one configuration.
struct TypedLimit {
    mix: MixKind,
    codec: Codec,
    /// `time_typed_alone`, dispatches/s.
    typed_alone: f64,
    /// Decompression alone on compressed rows, dispatches/s.
    decompression: Option<f64>,
}

impl TypedLimit {
    /// Both costs paid one after the other: 1 / (1/a + 1/b).
    fn combined(&self) -> f64 {
        match self.decompression {
            Some(decompression) => 1.0 / (1.0 / self.typed_alone + 1.0 / decompression),
            None => self.typed_alone,
        }
    }
}

/// How close each typed consumer comes to the least work any typed
/// consumer must do, and the highest ours ÷ twilight that limit allows.
fn print_typed_limits(rows: &[Row], limits: &[TypedLimit]) {
    println!();
    println!("Typed consumers against the least work of one (MESSAGE_CREATE deserialization alone, in-process,");
    println!("plus decompression alone on compressed rows, costs added):");
    println!();
    println!("| mix | compression | typed limit, dispatches/s | ours typed ÷ limit | twilight typed ÷ limit | highest ours ÷ twilight the limit allows |");
    println!("|---|---|---:|---:|---:|---:|");
    let rate = |limit: &TypedLimit, client| {
        find_row(rows, limit.mix, limit.codec, client).map(|r| r.median().dispatches_per_s)
    };
    for limit in limits {
        let (Some(ours), Some(theirs)) = (rate(limit, Client::OursTyped), rate(limit, Client::TwilightTyped)) else {
            continue;
        };
        let combined = limit.combined();
        println!(
            "| {} | {} | {combined:.0} | {:.2} | {:.2} | {:.2}× |",
            limit.mix.name(),
            limit.codec.label(),
            ours / combined,
            theirs / combined,
            combined / theirs
        );
    }
}

/// The row of `client` on `mix` with `codec`, if it ran.
fn find_row(rows: &[Row], mix: MixKind, codec: Codec, client: Client) -> Option<&Row> {
    rows.iter().find(|r| r.mix == mix && r.codec == codec && r.client == client)
}

/// A decompression-alone limit row.
struct Limit {
    mix: MixKind,
    codec: Codec,
    per_s: f64,
    mb_s: f64,
}

fn print_tables(rows: &[Row], limits: &[Limit], repeat: usize, volumes: &[String]) {
    let limit_of = |mix: MixKind, codec: Codec| limits.iter().find(|limit| (limit.mix, limit.codec) == (mix, codec));
    let limit_label = |codec: Codec| Decoder::new(codec).map_or("", |decoder| decoder.label());
    println!();
    println!("Median of {repeat} runs (range = slowest–fastest run, dispatches/s). MB/s counts the JSON bytes of");
    println!(
        "whole dispatch payloads (envelope included, as decompressed), 1 MB = 10^6 B. Peak RSS = max VmHWM of the runs."
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
            row.codec.label(),
            row.client.label(),
            median.dispatches_per_s,
            low,
            high,
            median.mb_per_s,
            row.peak_rss_kb() as f64 / 1024.0
        );
        // After the last of our clients in a compressed configuration.
        let next_is_ours = rows
            .get(i + 1)
            .is_some_and(|next| (next.mix, next.codec) == (row.mix, row.codec) && !next.client.is_twilight());
        if !row.client.is_twilight() && !next_is_ours {
            if let Some(limit) = limit_of(row.mix, row.codec) {
                println!(
                    "| {} | {} | {} alone (in-process) | {:.0} | | {:.1} | – |",
                    row.mix.name(),
                    row.codec.label(),
                    limit_label(row.codec),
                    limit.per_s,
                    limit.mb_s
                );
            }
        }
    }

    // (comparison, ours, against); `None` = decompression alone.
    let comparisons: [(&str, Client, Option<Client>); 11] = [
        ("minimal", Client::OursTokio, Some(Client::Twilight)),
        ("minimal, twilight with zlib-rs `std`", Client::OursTokio, Some(Client::TwilightStd)),
        ("equivalent output", Client::OursTokio, Some(Client::TwilightEquivalent)),
        ("equivalent output, twilight with zlib-rs `std`", Client::OursTokio, Some(Client::TwilightEquivalentStd)),
        ("equivalent output, both validating every payload", Client::OursStrict, Some(Client::TwilightEquivalent)),
        ("typed MESSAGE_CREATE", Client::OursTyped, Some(Client::TwilightTyped)),
        ("minimal, ours `Shard::new` on async-io (not spawned)", Client::OursAsyncStd, Some(Client::Twilight)),
        ("minimal, against", Client::OursTokio, None),
        ("minimal, against our WebSocket stack alone (one task, no `Shard`)", Client::OursTokio, Some(Client::Stack)),
        ("minimal, our WebSocket stack alone against twilight-gateway", Client::Stack, Some(Client::Twilight)),
        ("minimal, our WebSocket stack alone against", Client::Stack, None),
    ];
    let find = |mix, codec, client| find_row(rows, mix, codec, client);
    println!();
    println!("Ratios of median dispatches/s (and of peak RSS), ours ÷ twilight or ÷ decompression alone:");
    println!();
    println!("| mix | compression | comparison | ours | against | ours ÷ against | peak RSS ours ÷ against |");
    println!("|---|---|---|---:|---:|---:|---:|");
    let mut seen = Vec::new();
    for row in rows {
        let (mix, codec) = (row.mix, row.codec);
        if seen.contains(&(mix, codec)) {
            continue;
        }
        seen.push((mix, codec));
        for (consumer, ours, theirs) in comparisons {
            let Some(ours) = find(mix, codec, ours) else { continue };
            let ours_rate = ours.median().dispatches_per_s;
            let (consumer, theirs_rate, rss) = match theirs {
                Some(theirs) => {
                    let Some(theirs) = find(mix, codec, theirs) else { continue };
                    let rss = ours.peak_rss_kb() as f64 / theirs.peak_rss_kb() as f64;
                    (consumer.to_owned(), theirs.median().dispatches_per_s, format!("{rss:.2}"))
                }
                None => {
                    let Some(limit) = limit_of(mix, codec) else { continue };
                    (format!("{consumer} {} alone", limit_label(codec)), limit.per_s, "–".to_owned())
                }
            };
            println!(
                "| {} | {} | {consumer} | {ours_rate:.0} | {theirs_rate:.0} | {:.2}× | {rss} |",
                mix.name(),
                codec.label(),
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
