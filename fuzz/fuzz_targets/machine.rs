//! Arbitrary sequences of frames, closes, time and commands through the
//! sans-IO machine, invariants checked after every step
//! (`fuzz/machine_checks.rs`).
#![no_main]

#[path = "../../tests/support/machine.rs"]
mod harness;

#[path = "../machine_checks.rs"]
mod machine_checks;

libfuzzer_sys::fuzz_target!(|input: (Vec<machine_checks::Step>, bool)| {
    let (steps, permits) = input;
    if let Err(violation) = machine_checks::check_machine(&steps, permits) {
        panic!("invariant violated: {violation}\nsteps: {steps:?}");
    }
});
