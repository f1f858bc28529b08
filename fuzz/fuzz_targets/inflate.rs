//! `Inflater` on known zlib-stream traffic split, corrupted and capped as
//! the fuzz input says (see `check_inflate` in `fuzz/checks.rs`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::check_inflate(data);
});
