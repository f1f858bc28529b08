//! The counting global allocator of a heap-bench client process: live bytes
//! and their peak, over ALL threads (runtime workers, reactor threads, the
//! controller), so every client pays for whatever threads it brings.
//!
//! C code allocates with libc's `malloc` and never sees a Rust global
//! allocator: libzstd (zstd-sys, the zstd-stream decoder of both ours and
//! twilight) keeps its context, its 256 KiB window and its block buffer
//! there, more than everything else a shard holds. So on Linux the heap
//! binaries are linked with `--wrap` for `malloc`, `calloc`, `realloc` and
//! `free` (`build.rs` of benches/compare and of twilight-heap, which also
//! set `cfg(wrapped_malloc)`): every call to them from statically linked
//! code lands in the `__wrap_*` functions below, which count the bytes in
//! the same totals and keep them apart in [`c_live`]. The Rust allocator
//! itself calls the `__real_*` functions, so nothing is counted twice;
//! allocations made inside the shared libc (its own internal calls) are
//! not seen, as before.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicI64, Ordering};

/// Forwards to the system allocator and counts.
pub struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);
/// The part of `LIVE` allocated by C code through `malloc` and friends.
static C_LIVE: AtomicI64 = AtomicI64::new(0);

/// Bytes allocated and not yet freed, all threads (C allocations included
/// where `malloc` is wrapped).
pub fn live() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

/// Of [`live`], the bytes C code holds through `malloc` (0 where `malloc`
/// is not wrapped).
pub fn c_live() -> i64 {
    C_LIVE.load(Ordering::Relaxed)
}

/// The highest `live` since the last [`reset_peak`].
pub fn peak() -> i64 {
    PEAK.load(Ordering::Relaxed)
}

/// Starts a new peak window at the current live bytes.
pub fn reset_peak() {
    PEAK.store(live(), Ordering::Relaxed);
}

#[inline]
fn grow(bytes: usize) {
    let now = LIVE.fetch_add(bytes as i64, Ordering::Relaxed) + bytes as i64;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

#[inline]
fn shrink(bytes: usize) {
    LIVE.fetch_sub(bytes as i64, Ordering::Relaxed);
}

// SAFETY: forwards every call to `Raw` (the system allocator) unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { Raw.alloc(layout) };
        if !ptr.is_null() {
            grow(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { Raw.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grow(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrink(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { Raw.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let new = unsafe { Raw.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                grow(new_size - layout.size());
            } else {
                shrink(layout.size() - new_size);
            }
        }
        new
    }
}

#[cfg(not(wrapped_malloc))]
use std::alloc::System as Raw;

#[cfg(wrapped_malloc)]
use wrapped::Raw;

#[cfg(wrapped_malloc)]
mod wrapped {
    use std::alloc::{GlobalAlloc, Layout};
    use std::ffi::c_void;

    use super::{grow, shrink, C_LIVE};
    use std::sync::atomic::Ordering;

    extern "C" {
        fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> std::ffi::c_int;
        fn __real_malloc(size: usize) -> *mut c_void;
        fn __real_calloc(count: usize, size: usize) -> *mut c_void;
        fn __real_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
        fn __real_free(ptr: *mut c_void);
    }

    /// glibc's `malloc` alignment on 64-bit targets (std's `MIN_ALIGN`).
    const MIN_ALIGN: usize = 16;

    /// What `std::alloc::System` does on Unix, with the unwrapped libc
    /// functions (so the Rust allocator is not counted a second time).
    pub struct Raw;

    // SAFETY: `System`'s Unix implementation with `__real_*` in place of the
    // (wrapped) libc names; `posix_memalign` is not wrapped.
    unsafe impl GlobalAlloc for Raw {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if layout.align() <= MIN_ALIGN && layout.align() <= layout.size() {
                // SAFETY: plain malloc.
                unsafe { __real_malloc(layout.size()) as *mut u8 }
            } else {
                let mut out = std::ptr::null_mut();
                let align = layout.align().max(std::mem::size_of::<usize>());
                // SAFETY: `align` is a power of two and a multiple of the pointer size.
                match unsafe { posix_memalign(&mut out, align, layout.size()) } {
                    0 => out as *mut u8,
                    _ => std::ptr::null_mut(),
                }
            }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if layout.align() <= MIN_ALIGN && layout.align() <= layout.size() {
                // SAFETY: plain calloc.
                unsafe { __real_calloc(layout.size(), 1) as *mut u8 }
            } else {
                // SAFETY: same contract as the caller's.
                let ptr = unsafe { self.alloc(layout) };
                if !ptr.is_null() {
                    // SAFETY: `ptr` holds `layout.size()` bytes.
                    unsafe { std::ptr::write_bytes(ptr, 0, layout.size()) };
                }
                ptr
            }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
            // SAFETY: `ptr` came from `__real_malloc`/`__real_calloc`/`posix_memalign`.
            unsafe { __real_free(ptr as *mut c_void) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if layout.align() <= MIN_ALIGN && layout.align() <= new_size {
                // SAFETY: `ptr` came from this allocator with a malloc-compatible alignment.
                unsafe { __real_realloc(ptr as *mut c_void, new_size) as *mut u8 }
            } else {
                // SAFETY: same contract as the caller's.
                let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                // SAFETY: as above.
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: both blocks hold at least the smaller size.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }

    /// Every C allocation carries this header: a tag (to tell ours from
    /// memory libc allocated internally and someone frees here) and the size.
    const HEADER: usize = 16;
    const TAG: usize = 0x6865_6170_2d63_2d61; // "heap-c-a"

    fn count_in(size: usize) {
        grow(size);
        C_LIVE.fetch_add(size as i64, Ordering::Relaxed);
    }

    fn count_out(size: usize) {
        shrink(size);
        C_LIVE.fetch_sub(size as i64, Ordering::Relaxed);
    }

    /// Writes the header at `raw` and returns the caller's pointer.
    ///
    /// # Safety
    ///
    /// `raw` is null or holds `HEADER + size` bytes, 16-aligned.
    unsafe fn tag(raw: *mut c_void, size: usize) -> *mut c_void {
        if raw.is_null() {
            return raw;
        }
        let words = raw as *mut usize;
        // SAFETY: the header's two words are inside the block.
        unsafe {
            words.write(TAG);
            words.add(1).write(size);
        }
        count_in(size);
        // SAFETY: inside the block.
        unsafe { (raw as *mut u8).add(HEADER) as *mut c_void }
    }

    /// The block and size behind a pointer from `tag`; `None` for memory
    /// allocated elsewhere.
    ///
    /// # Safety
    ///
    /// `ptr` is non-null and came from some `malloc`: the 16 bytes before it
    /// are the allocator's chunk header, readable.
    unsafe fn untag(ptr: *mut c_void) -> Option<(*mut c_void, usize)> {
        // SAFETY: see above.
        let raw = unsafe { (ptr as *mut u8).sub(HEADER) } as *mut usize;
        // SAFETY: see above.
        if unsafe { raw.read() } != TAG {
            return None;
        }
        // SAFETY: ours: the header is ours to read and clear.
        let size = unsafe {
            raw.write(0);
            raw.add(1).read()
        };
        Some((raw as *mut c_void, size))
    }

    #[no_mangle]
    unsafe extern "C" fn __wrap_malloc(size: usize) -> *mut c_void {
        let Some(total) = size.checked_add(HEADER) else { return std::ptr::null_mut() };
        // SAFETY: a block of `total` bytes, malloc-aligned.
        unsafe { tag(__real_malloc(total), size) }
    }

    #[no_mangle]
    unsafe extern "C" fn __wrap_calloc(count: usize, size: usize) -> *mut c_void {
        let Some(total) = count.checked_mul(size).and_then(|bytes| bytes.checked_add(HEADER)) else {
            return std::ptr::null_mut();
        };
        // SAFETY: a zeroed block of `total` bytes, malloc-aligned.
        unsafe { tag(__real_calloc(total, 1), total - HEADER) }
    }

    #[no_mangle]
    unsafe extern "C" fn __wrap_realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
        if ptr.is_null() {
            // SAFETY: realloc(NULL, n) is malloc(n).
            return unsafe { __wrap_malloc(size) };
        }
        // SAFETY: a pointer from some malloc.
        match unsafe { untag(ptr) } {
            Some((raw, old)) => {
                let Some(total) = size.checked_add(HEADER) else { return std::ptr::null_mut() };
                // SAFETY: `raw` is the block `__real_malloc` gave.
                let new = unsafe { __real_realloc(raw, total) };
                if new.is_null() {
                    // The old block stays; put its header back.
                    // SAFETY: `raw` is still ours.
                    unsafe { (raw as *mut usize).write(TAG) };
                    return new;
                }
                count_out(old);
                // SAFETY: `new` holds `total` bytes.
                unsafe { tag(new, size) }
            }
            // SAFETY: not ours: libc's own.
            None => unsafe { __real_realloc(ptr, size) },
        }
    }

    #[no_mangle]
    unsafe extern "C" fn __wrap_free(ptr: *mut c_void) {
        if ptr.is_null() {
            return;
        }
        // SAFETY: a pointer from some malloc.
        match unsafe { untag(ptr) } {
            Some((raw, size)) => {
                count_out(size);
                // SAFETY: the block `__real_malloc` gave.
                unsafe { __real_free(raw) }
            }
            // SAFETY: not ours: libc's own.
            None => unsafe { __real_free(ptr) },
        }
    }
}
