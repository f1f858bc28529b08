//! Heap use of the codec, counted by a global allocator (per thread, so the
//! tests may run in parallel):
//! - inflate + UTF-8 check + envelope scan allocate nothing per payload once
//!   the output buffer has grown (`docs/compression.md#zlib-stream`);
//! - an idle inflater (one that last received a heartbeat ACK) holds no
//!   output buffer: its heap is the zlib context alone, under 48 KiB.
#![cfg(feature = "zlib")]

#[path = "../fuzz/payloads.rs"]
mod payloads;

use discord_gateway_stream::fuzzing::{Envelope, Inflater};
use discord_gateway_stream::protocol::DEFAULT_MAX_MESSAGE_SIZE;

mod support;
use support::alloc_counter;

#[global_allocator]
static GLOBAL: alloc_counter::Counting = alloc_counter::Counting;

/// This thread's allocations (each test counts only its own thread).
fn allocations() -> u64 {
    alloc_counter::count_this_thread(true);
    alloc_counter::thread_allocations()
}

/// This thread's live heap bytes.
fn live_bytes() -> i64 {
    alloc_counter::count_this_thread(true);
    alloc_counter::thread_live_bytes()
}

/// What the protocol core does with each payload.
fn inflate_and_scan(inflater: &mut Inflater, frame: &[u8]) -> Option<u64> {
    let payload = inflater.push(frame).expect("inflate")?;
    let text = std::str::from_utf8(payload).expect("UTF-8");
    Some(Envelope::scan(text).expect("scan").op)
}

#[test]
fn inflate_utf8_and_scan_allocate_nothing_per_payload_after_warm_up() {
    let mut rng = payloads::Rng::new(3);
    let mut texts: Vec<String> = (0..2000).map(|seq| payloads::message_create(&mut rng, seq)).collect();
    texts.extend((2000..3000).map(|seq| payloads::small_event(&mut rng, seq)));
    let largest = texts.iter().map(String::len).max().unwrap_or(0);
    // Warm up on the largest payload, then measure the whole stream.
    let index = texts.iter().position(|text| text.len() == largest).unwrap_or(0);
    let warm_up = texts.remove(index);
    texts.insert(0, warm_up);
    let frames = payloads::zlib_stream(&texts);

    let mut inflater = Inflater::new(DEFAULT_MAX_MESSAGE_SIZE);
    assert_eq!(inflate_and_scan(&mut inflater, &frames[0]), Some(0));
    let before = allocations();
    let mut payloads = 0;
    for frame in &frames[1..] {
        if inflate_and_scan(&mut inflater, frame).is_some() {
            payloads += 1;
        }
    }
    let allocated = allocations() - before;
    eprintln!("{allocated} allocations over {payloads} payloads");
    assert_eq!(payloads, frames.len() - 1);
    assert_eq!(allocated, 0, "{allocated} allocations over {payloads} payloads (largest {largest} bytes)");
}

#[test]
fn idle_inflater_holds_under_48_kib() {
    let mut rng = payloads::Rng::new(4);
    let mut texts = payloads::gateway_mix(4, 2, 0);
    texts.extend((3..50).map(|seq| payloads::message_create(&mut rng, seq)));
    texts.push(r#"{"t":null,"s":null,"op":11,"d":null}"#.to_owned());
    let frames = payloads::zlib_stream(&texts);

    let before = live_bytes();
    let mut inflater = Inflater::new(DEFAULT_MAX_MESSAGE_SIZE);
    let mut busiest = 0;
    for frame in &frames {
        inflate_and_scan(&mut inflater, frame);
        busiest = busiest.max(live_bytes() - before);
    }
    // What the core does a second after the last payload.
    inflater.release();
    let idle = live_bytes() - before;
    eprintln!("inflater heap: {busiest} bytes at most, {idle} bytes idle");
    assert!(busiest > 1_000_000, "the GUILD_CREATEs grew the buffer ({busiest} bytes)");
    assert!(idle <= 48 * 1024, "an idle inflater holds {idle} bytes");
    drop(inflater);
    // All of it is freed (allow for a little lazily allocated runtime state).
    let left = live_bytes() - before;
    assert!(left < 1024, "{left} bytes left after drop");
}

/// What the protocol core does since the dispatch owns its text: each
/// payload is handed over as the buffer it was inflated into.
#[test]
fn owned_payloads_cost_one_allocation_each() {
    let mut rng = payloads::Rng::new(5);
    let mut texts: Vec<String> = (0..2000).map(|seq| payloads::message_create(&mut rng, seq)).collect();
    texts.extend((2000..3000).map(|seq| payloads::small_event(&mut rng, seq)));
    texts.extend(payloads::gateway_mix(5, 4, 0));
    let frames = payloads::zlib_stream(&texts);

    let mut inflater = Inflater::new(DEFAULT_MAX_MESSAGE_SIZE);
    // The first few payloads teach the inflater the stream's ratio.
    for frame in &frames[..10] {
        inflater.push_owned(frame).expect("inflate").expect("payload");
    }
    let before = allocations();
    let mut kept = Vec::new();
    for (frame, text) in frames[10..].iter().zip(&texts[10..]) {
        let payload = inflater.push_owned(frame).expect("inflate").expect("payload");
        assert_eq!(payload, text.as_bytes());
        let text = String::from_utf8(payload).expect("UTF-8");
        assert!(Envelope::read(&text).is_ok());
        kept.push(text);
    }
    let allocated = allocations() - before;
    let payloads = kept.len() as u64;
    let spare: usize = kept.iter().map(|text| text.capacity() - text.len()).sum();
    let total: usize = kept.iter().map(String::len).sum();
    eprintln!("{allocated} allocations over {payloads} owned payloads; {spare} spare bytes over {total}");
    // One buffer per payload; the rare payload that outgrows its estimate
    // grows once (the `kept` list's own growth is counted too).
    assert!(allocated <= payloads + payloads / 50, "{allocated} allocations over {payloads} payloads");
    assert!(spare <= total / 3, "{spare} spare bytes over {total}");
}
