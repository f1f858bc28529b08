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
//! - [`redis_server`]: a `redis-server` on loopback for the Redis tests, and
//!   `redis_server!()` (declare `#[macro_use] mod support;`).
#![allow(dead_code, unused_imports, unused_macros)]

pub mod alloc_counter;
pub mod client;
pub mod machine;
pub mod raw_client;
#[macro_use]
pub mod redis_server;
