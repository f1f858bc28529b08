//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the
//! same checks the fuzz targets run (`fuzz/checks.rs`), so CI covers the
//! corpus without a nightly toolchain. An empty or missing corpus fails.
#![cfg(feature = "zlib")]
// checks.rs and zstd_checks.rs each load fuzz/payloads.rs, as their fuzz
// targets need; here both are in one crate.
#![allow(clippy::duplicate_mod)]

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Runs `check` on every file of `fuzz/corpus/<target>/`; returns how many.
fn replay(target: &str, check: impl Fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("corpus {}: {error}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        if path.is_file() {
            let data = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data)));
            assert!(result.is_ok(), "corpus file {} fails its check", path.display());
            count += 1;
        }
    }
    assert!(count > 0, "corpus {} is empty", dir.display());
    count
}

#[test]
fn envelope_corpus_passes_the_differential_check() {
    replay("envelope", |data| {
        checks::check_envelope(data);
    });
}

#[test]
fn inflate_corpus_passes_the_inflate_check() {
    replay("inflate", checks::check_inflate);
}

mod support;
use support::machine as harness;

#[path = "../fuzz/machine_checks.rs"]
mod machine_checks;

#[test]
fn machine_corpus_keeps_the_protocol_invariants() {
    use arbitrary::Arbitrary;
    replay("machine", |data| {
        // Decoded exactly as libfuzzer-sys decodes the target's typed input.
        let input = <(Vec<machine_checks::Step>, bool)>::arbitrary_take_rest(arbitrary::Unstructured::new(data));
        if let Ok((steps, permits)) = input {
            if let Err(violation) = machine_checks::check_machine(&steps, permits) {
                panic!("invariant violated: {violation}");
            }
        }
    });
}

#[cfg(feature = "zstd")]
#[path = "../fuzz/zstd_checks.rs"]
mod zstd_checks;

#[cfg(feature = "zstd")]
#[test]
fn zstd_corpus_passes_the_zstd_check() {
    replay("zstd", zstd_checks::check_zstd);
}

#[path = "../fuzz/handshake_checks.rs"]
mod handshake_checks;

#[test]
fn handshake_corpus_agrees_with_httparse_and_never_accepts_early() {
    replay("handshake", handshake_checks::check_handshake);
}
