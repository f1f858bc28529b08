//! A counting global allocator for tests and benches (include with
//! `#[path]` and install with `#[global_allocator]`). Only threads that opt
//! in with [`count_this_thread`] are counted, so a simulator running in the
//! same process does not blur the client's numbers. Each counted thread has
//! its own totals, and all counted threads add up into global totals.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Forwards to the system allocator and counts.
pub struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static PEAK_LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
    static THREAD_ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static THREAD_LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
}

/// Starts or stops counting the current thread.
pub fn count_this_thread(on: bool) {
    COUNTED.with(|c| c.set(on));
}

/// Runs `f` with the current thread not counted, then restores its state.
pub fn uncounted<R>(f: impl FnOnce() -> R) -> R {
    let was = COUNTED.with(|c| c.replace(false));
    let r = f();
    COUNTED.with(|c| c.set(was));
    r
}

/// Allocations (and reallocations) by all counted threads so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Live bytes allocated minus freed on all counted threads.
pub fn live_bytes() -> i64 {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// The highest [`live_bytes`] since the start or the last [`reset_peak`].
pub fn peak_live_bytes() -> i64 {
    PEAK_LIVE_BYTES.load(Ordering::Relaxed)
}

/// Starts a new peak from the live bytes now.
pub fn reset_peak() {
    PEAK_LIVE_BYTES.store(live_bytes(), Ordering::Relaxed);
}

/// Allocations by the current thread while it was counted.
pub fn thread_allocations() -> u64 {
    THREAD_ALLOCATIONS.with(Cell::get)
}

/// Live bytes of the current thread while it was counted.
pub fn thread_live_bytes() -> i64 {
    THREAD_LIVE_BYTES.with(Cell::get)
}

fn note(allocations: u64, bytes: i64) {
    // `try_with`: the allocator can run while thread-locals are torn down.
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(allocations, Ordering::Relaxed);
        let live = LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if bytes > 0 {
            PEAK_LIVE_BYTES.fetch_max(live, Ordering::Relaxed);
        }
        let _ = THREAD_ALLOCATIONS.try_with(|c| c.set(c.get() + allocations));
        let _ = THREAD_LIVE_BYTES.try_with(|c| c.set(c.get() + bytes));
    }
}

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(1, layout.size() as i64);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(0, -(layout.size() as i64));
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(1, new_size as i64 - layout.size() as i64);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
