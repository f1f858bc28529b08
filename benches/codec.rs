//! Codec throughput on generated gateway traffic
//! (`docs/connection.md#payload-envelope`, `docs/compression.md#zlib-stream`).
//!
//! Two mixes, each compressed as one zlib stream with a sync flush per payload
//! (as Discord sends it):
//! - `guild_heavy`: Hello, READY, 8 GUILD_CREATEs of 0.1-1.5 MB, then 2000
//!   small events; most bytes are GUILD_CREATE;
//! - `small_events`: Hello, READY, 3000 MESSAGE_CREATE / TYPING_START /
//!   PRESENCE_UPDATE events of 0.3-2 KB.
//!
//! Per mix, throughput in inflated bytes of: `inflate` (Inflater::push over
//! the whole stream), `inflate_owned+utf8+read` (what the protocol core does
//! per payload by default: each payload inflated into its own buffer, UTF-8
//! checked, the canonical envelope read), `inflate+utf8+scan` (the same with
//! the strict full scan on a reused buffer), `utf8`, `read` and `scan` alone
//! on the inflated texts, and `serde_probe` (serde_json into an envelope
//! struct with `&RawValue`).
//!
//! With the `zstd` feature the same texts are also compressed as one
//! zstd-stream (one frame, a flush per payload, window 2^18) and measured as
//! `zstd_owned` (ZstdDecoder::push_owned per message) and
//! `zstd_owned+utf8+read` (what the core does per payload on zstd-stream).
//!
//! Run: `cargo bench --bench codec` (`--features zstd` for the zstd rows).

// zstd_checks below loads payloads.rs too (as in the fuzz target).
#[allow(clippy::duplicate_mod)]
#[path = "../fuzz/payloads.rs"]
mod payloads;

// The zstd-stream traffic writer the fuzz target uses (libzstd's compressor).
#[cfg(feature = "zstd")]
#[path = "../fuzz/zstd_checks.rs"]
mod zstd_checks;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use discord_gateway_stream::fuzzing::{Envelope, Inflater};
use discord_gateway_stream::protocol::DEFAULT_MAX_MESSAGE_SIZE;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::hint::black_box;
use std::time::Duration;

/// The serde way to read an envelope (`docs/connection.md#payload-envelope`).
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Probe<'a> {
    op: u64,
    #[serde(default)]
    s: Option<u64>,
    #[serde(default, borrow)]
    t: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    d: Option<&'a RawValue>,
}

fn bench_mix(c: &mut Criterion, name: &str, texts: &[String]) {
    let frames = payloads::zlib_stream(texts);
    let inflated: u64 = texts.iter().map(|text| text.len() as u64).sum();
    let compressed: usize = frames.iter().map(Vec::len).sum();
    eprintln!(
        "{name}: {} payloads, {inflated} bytes inflated, {compressed} compressed, largest {}",
        texts.len(),
        texts.iter().map(String::len).max().unwrap_or(0)
    );

    let mut group = c.benchmark_group(name);
    group
        .throughput(Throughput::Bytes(inflated))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    let mut inflater = Inflater::new(DEFAULT_MAX_MESSAGE_SIZE);
    group.bench_function("inflate", |b| {
        b.iter(|| {
            inflater.reset();
            let mut total = 0;
            for frame in &frames {
                if let Some(payload) = inflater.push(frame).expect("inflate") {
                    total += black_box(payload).len();
                }
            }
            assert_eq!(total as u64, inflated);
        })
    });
    group.bench_function("inflate_owned+utf8+read", |b| {
        b.iter(|| {
            inflater.reset();
            for frame in &frames {
                if let Some(payload) = inflater.push_owned(frame).expect("inflate") {
                    let text = String::from_utf8(payload).expect("utf-8");
                    black_box(Envelope::read(&text).expect("read"));
                    drop(black_box(text));
                }
            }
        })
    });
    group.bench_function("inflate+utf8+scan", |b| {
        b.iter(|| {
            inflater.reset();
            for frame in &frames {
                if let Some(payload) = inflater.push(frame).expect("inflate") {
                    let text = std::str::from_utf8(payload).expect("utf-8");
                    black_box(Envelope::scan(text).expect("scan"));
                }
            }
        })
    });
    #[cfg(feature = "zstd")]
    bench_zstd(&mut group, texts, inflated);
    group.bench_function("utf8", |b| {
        b.iter(|| {
            for text in texts {
                black_box(std::str::from_utf8(black_box(text.as_bytes())).expect("utf-8"));
            }
        })
    });
    group.bench_function("scan", |b| {
        b.iter(|| {
            for text in texts {
                black_box(Envelope::scan(black_box(text)).expect("scan"));
            }
        })
    });
    group.bench_function("read", |b| {
        b.iter(|| {
            for text in texts {
                black_box(Envelope::read(black_box(text)).expect("read"));
            }
        })
    });
    group.bench_function("serde_probe", |b| {
        b.iter(|| {
            for text in texts {
                black_box(serde_json::from_str::<Probe<'_>>(black_box(text)).expect("serde"));
            }
        })
    });
    group.finish();
}

/// The zstd-stream rows: decode alone, and decode + UTF-8 + envelope read.
#[cfg(feature = "zstd")]
fn bench_zstd(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    texts: &[String],
    total: u64,
) {
    use discord_gateway_stream::fuzzing::ZstdDecoder;
    let messages = zstd_checks::zstd_stream(texts, 18);
    eprintln!("  zstd-stream: {} compressed", messages.iter().map(Vec::len).sum::<usize>());
    let mut decoder = ZstdDecoder::new(DEFAULT_MAX_MESSAGE_SIZE);
    group.bench_function("zstd_owned", |b| {
        b.iter(|| {
            decoder.reset();
            let mut decoded = 0;
            for message in &messages {
                decoded += black_box(decoder.push_owned(message).expect("zstd").expect("a payload")).len();
            }
            assert_eq!(decoded as u64, total);
        })
    });
    group.bench_function("zstd_owned+utf8+read", |b| {
        b.iter(|| {
            decoder.reset();
            for message in &messages {
                let payload = decoder.push_owned(message).expect("zstd").expect("a payload");
                let text = String::from_utf8(payload).expect("utf-8");
                black_box(Envelope::read(&text).expect("read"));
                drop(black_box(text));
            }
        })
    });
}

fn codec(c: &mut Criterion) {
    bench_mix(c, "guild_heavy", &payloads::gateway_mix(1, 8, 2000));
    bench_mix(c, "small_events", &payloads::gateway_mix(2, 0, 3000));
}

criterion_group!(benches, codec);
criterion_main!(benches);
