//! The WebSocket handshake's response header parse on arbitrary bytes,
//! differential against httparse (see `fuzz/handshake_checks.rs`).
#![no_main]

#[path = "../handshake_checks.rs"]
mod handshake_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    handshake_checks::check_handshake(data);
});
