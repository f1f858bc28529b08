//! `ZstdDecoder` on known zstd-stream traffic split, corrupted and capped
//! as the fuzz input says (see `check_zstd` in `fuzz/zstd_checks.rs`).
#![no_main]

#[path = "../zstd_checks.rs"]
mod zstd_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    zstd_checks::check_zstd(data);
});
