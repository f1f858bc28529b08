//! `Envelope::scan` on arbitrary bytes, differential against serde_json
//! (see `check_envelope` in `fuzz/checks.rs`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::check_envelope(data);
});
