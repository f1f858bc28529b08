//! Test support, one module per kind of test. Each test binary declares
//! `mod support;` and uses the part it needs.
//!
//! - [`machine`]: a fake-clock harness around the sans-IO machine (also the
//!   `machine` fuzz target's).
//! - [`client`]: settings for tests that run the real client against the
//!   simulator.
//! - [`raw_client`]: a deliberately dumb synchronous gateway client (none of
//!   the crate's code) for testing the simulator itself.
//! - [`alloc_counter`]: a counting global allocator (installed by the tests
//!   and benches that measure allocations).
#![allow(dead_code, unused_imports)]

pub mod alloc_counter;
pub mod client;
pub mod machine;
pub mod raw_client;
