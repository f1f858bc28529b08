//! Random sequences of socket events, payloads, commands and time through the
//! machine, with the protocol's invariants (`fuzz/machine_checks.rs`, shared
//! with the `machine` fuzz target) checked after every step.

mod support;
use support::machine as harness;

#[path = "../fuzz/machine_checks.rs"]
mod machine_checks;

use machine_checks::{check_machine, Step};
use proptest::prelude::*;

fn step() -> impl Strategy<Value = Step> {
    let codes = prop_oneof![
        Just(None),
        (4000u16..4016).prop_map(Some),
        prop::sample::select(vec![1000u16, 1001, 1005, 1006, 1009, 1011]).prop_map(Some),
    ];
    prop_oneof![
        4 => Just(Step::Open),
        1 => Just(Step::ConnectFailed),
        4 => Just(Step::Hello),
        2 => (0u64..50).prop_map(Step::Ready),
        8 => (0u64..60).prop_map(Step::Dispatch),
        1 => (0u64..60).prop_map(Step::Resumed),
        4 => Just(Step::Ack),
        2 => Just(Step::HeartbeatRequest),
        1 => Just(Step::Reconnect),
        1 => any::<bool>().prop_map(Step::InvalidSession),
        2 => codes.prop_map(Step::Close),
        2 => ".{0,40}".prop_map(Step::Garbage),
        6 => (0u64..90_000).prop_map(Step::Advance),
        4 => Just(Step::Command),
        1 => Just(Step::Grant),
        1 => Just(Step::CloseResumable),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_machine_keeps_its_invariants_on_any_input(steps in prop::collection::vec(step(), 1..120), permits in any::<bool>()) {
        if let Err(violation) = check_machine(&steps, permits) {
            prop_assert!(false, "{}", violation);
        }
    }
}
