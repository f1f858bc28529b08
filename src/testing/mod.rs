//! A scripted fake Discord gateway for tests (feature `testing`).
//!
//! [`Simulator`] listens on `127.0.0.1` (an ephemeral port) and speaks the
//! gateway protocol over real WebSockets: Hello, heartbeat ACKs, Identify →
//! READY, Resume → replay → RESUMED, op 9 for unknown sessions, the close codes
//! of `docs/close-codes.md`, the send rate limit of
//! `docs/rate-limits.md#send-limit` and zlib-stream and, with the `zstd`
//! feature, zstd-stream transport compression (docs/compression.md), chosen by
//! the connection's `compress` query parameter. Sessions outlive connections:
//! every dispatch committed with [`Simulator::dispatch`] is logged with its
//! `s`, so a client that drops and resumes gets exactly what it missed.
//!
//! It runs on plain std threads with the synchronous `tungstenite` crate, so it
//! works under any async runtime (or none), and it shares no code with this
//! crate's `codec` or `protocol` modules: it parses with `serde_json` and
//! compresses with its own `flate2` stream and zstd context, so a bug there
//! cannot hide on both sides of a test.
//!
//! ```no_run
//! use std::time::Duration;
//! use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
//!
//! let sim = Simulator::start(
//!     SimulatorConfig::new().heartbeat_interval(Duration::from_millis(500)),
//! )?;
//! let url = format!("{}/?v=10&encoding=json&compress=zlib-stream", sim.url());
//! // ... point the client at `url`; its `Config` must accept the short
//! // interval: `.min_heartbeat_interval(Duration::from_millis(500))` ...
//! assert!(sim.wait_until_live(Duration::from_secs(5)));
//! sim.dispatch("MESSAGE_CREATE", serde_json::json!({"content": "hi"}));
//! sim.drop_connection(); // the client resumes and gets a replay
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Everything is recorded ([`Simulator::connections`],
//! [`Simulator::client_frames`], [`Simulator::client_closes`], …), and the
//! `wait_*` helpers block with a timeout until a condition holds.
//!
//! # What it can play
//!
//! Hello with any interval, withheld ACKs, READY with a `resume_gateway_url`
//! pointing back at it, persistent sessions with replay on resume, op 7,
//! op 9, any close code, zlib-stream split over frames (the sync marker
//! straddling two frames), zstd-stream (with the `zstd` feature), corrupt
//! frames, a server that stops reading ([`Simulator::pause_reading`]),
//! garbage JSON, identify validation (4004, 4005, 4010, 4013, 4014), the
//! 120/60 s limit and the 4096-byte cap.
//!
//! # A shard against it
//!
//! A dispatch, a dropped connection, a dispatch committed while the shard
//! was away: the shard resumes and gets each exactly once.
//!
#![cfg_attr(all(feature = "async-std", feature = "zlib"), doc = "```")]
#![cfg_attr(not(all(feature = "async-std", feature = "zlib")), doc = "```ignore")]
//! use std::time::Duration;
//! use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
//! use discord_gateway_stream::{CloseMode, Config, Intents, Shard};
//! use futures::StreamExt;
//!
//! let sim = Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(300)))?;
//! let config = Config::new("token", Intents::GUILD_MESSAGES)
//!     .base_url(sim.url())
//!     .min_heartbeat_interval(Duration::from_millis(300)); // Discord's floor is 10 s
//! let mut shard = Shard::new(config)?;
//!
//! async_io::block_on(async {
//!     assert_eq!(shard.next().await.unwrap()?.event(), "READY");
//!     sim.dispatch("MESSAGE_CREATE", serde_json::json!({"content": "hi"}));
//!     sim.drop_connection();
//!     sim.dispatch("MESSAGE_CREATE", serde_json::json!({"content": "again"}));
//!
//!     let mut seen = Vec::new();
//!     while seen.len() < 2 {
//!         let dispatch = shard.next().await.unwrap()?;
//!         if dispatch.event() == "MESSAGE_CREATE" {
//!             seen.push(dispatch.deserialize::<serde_json::Value>()?["content"].clone());
//!         }
//!     }
//!     assert_eq!(seen, ["hi", "again"]);
//!     assert_eq!(sim.resumes().len(), 1);
//!     shard.close(CloseMode::Final).await;
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Standalone, for any client
//!
//! `cargo run --example simulator -- --port 8765 --events 20 --script resume`
//! (scripts `basic`, `resume`, `chaos`), then connect to
//! `ws://127.0.0.1:8765/?v=10&encoding=json&compress=zlib-stream` (or
//! `zstd-stream` when built with `--features zstd`, or no `compress`).
//! `interop/discordjs/run.sh` runs `@discordjs/ws` against it this way.
//!
//! # Many shards at once
//!
//! One simulator serves any number of shards side by side, each on its own
//! connection (one thread per connection, blocked until the client or the
//! test has something for it: an idle connection costs no wake-ups).
//!
//! - **Identify concurrency** (`docs/rate-limits.md#identify-concurrency`):
//!   [`SimulatorConfig::max_concurrency`] keys Identifies by
//!   `shard_id % max_concurrency` and lets each bucket accept one per
//!   [`identify_window`](SimulatorConfig::identify_window) (5 s); a faster
//!   one gets op 9 `d: false` or the close code chosen with
//!   [`on_identify_too_fast`](SimulatorConfig::on_identify_too_fast).
//!   [`Simulator::identify_log`] and [`Simulator::identify_violations`]
//!   record every Identify with its shard, bucket and verdict.
//! - **Sessions per shard** (`docs/sharding.md#several-totals-side-by-side`):
//!   a session belongs to the shard it identified with (a resume keeps it).
//!   [`dispatch_to_shard`](Simulator::dispatch_to_shard) commits to one shard's
//!   session; [`dispatch_guild`](Simulator::dispatch_guild) routes a guild's
//!   event to shard `(guild_id >> 22) % total` of every shard total in use
//!   (resharding with two sets side by side); [`Simulator::dispatch`] still
//!   commits to the newest READY/RESUMED session.
//! - **Per-shard controls**: [`close_shard`](Simulator::close_shard),
//!   [`reconnect_shard`](Simulator::reconnect_shard),
//!   [`invalid_session_shard`](Simulator::invalid_session_shard) and
//!   [`drop_shard_connection`](Simulator::drop_shard_connection) act on that
//!   shard's live connection; [`live_shards`](Simulator::live_shards) and
//!   [`wait_for_live_shards`](Simulator::wait_for_live_shards) tell which are up.

mod config;
mod conn;
mod record;
mod server;
mod state;
mod zlib;
#[cfg(feature = "zstd")]
mod zstd;

pub use config::{IdentifyTooFast, OnConnect, SimulatorConfig};
pub use record::{
    ClientClose, ClientFrame, ConnectionEnd, ConnectionRecord, IdentifyRecord, LoggedDispatch, ServerFrame,
};
pub use server::Simulator;
