//! The sans-IO gateway protocol core (`docs/connection.md`,
//! `docs/close-codes.md`, `docs/rate-limits.md`).
//!
//! [`Machine`] is fed socket events and the current [`Instant`](std::time::Instant)
//! and is polled for actions, frames to send, events and its next deadline.
//! It performs no I/O and reads no clock, so every rule is unit-tested with a
//! fake clock. The shape follows quinn-proto's `Connection`. The crate's
//! [`Shard`](crate::Shard) is one driver for it; you only need this module to
//! write your own driver, or to see exactly what the connection does.
//!
//! # Inputs and outputs
//!
//! Inputs carry `now: Instant`: [`handle_open`](Machine::handle_open),
//! [`handle_message`](Machine::handle_message) (an [`Incoming`] text or binary
//! message), [`handle_close(code)`](Machine::handle_close),
//! [`handle_connect_failed`](Machine::handle_connect_failed),
//! [`handle_timeout`](Machine::handle_timeout),
//! [`grant_identify`](Machine::grant_identify),
//! [`send_command`](Machine::send_command) and [`close`](Machine::close).
//! Outputs are polled: [`poll_action`](Machine::poll_action)
//! ([`Action::Connect`] `{ url }`, [`Action::Close`] `{ code }`,
//! [`Action::RequestIdentifyPermit`]), [`poll_transmit`](Machine::poll_transmit)
//! (text frames), [`poll_event`](Machine::poll_event) ([`Event::Dispatch`],
//! [`Event::Status`], [`Event::Fatal`]) and [`poll_timeout`](Machine::poll_timeout).
//! Randomness (heartbeat jitter, backoff, the op 9 wait) comes from a seeded
//! generator ([`Config::rng_seed`]), so tests replay exactly. One concept per
//! file: `opcode`, `close_code`, `heartbeat`, `backoff`, `ratelimit`,
//! `payload` (Identify/Resume/Heartbeat), `url`, `command`, `config`, `event`,
//! `machine`; the session itself is [`Session`](crate::Session).
//!
//! **Driver contract:** drain `poll_action` before `poll_transmit`; after a
//! `Close` action, drop that socket and report nothing more about it; report
//! `handle_close(None)` for EOF, a reset, 1005 or 1006.
//!
//! ```
//! use std::time::Instant;
//! use discord_gateway_stream::protocol::{Action, Compression, Config, Event, Incoming, Machine};
//! use discord_gateway_stream::Intents;
//!
//! let now = Instant::now();
//! let config = Config::new("token", Intents::GUILDS).compression(Compression::None);
//! let mut machine = Machine::new(config, now)?;
//!
//! // The first output: open a socket.
//! let Some(Action::Connect { url }) = machine.poll_action() else { panic!() };
//! assert!(url.starts_with("wss://gateway.discord.gg/?v=10&encoding=json"));
//! machine.handle_open(now);
//!
//! // Hello: the machine answers with Identify and schedules its first heartbeat.
//! machine.handle_message(now, Incoming::Text(r#"{"op":10,"d":{"heartbeat_interval":41250}}"#));
//! let identify = machine.poll_transmit().expect("Identify");
//! assert!(identify.starts_with(r#"{"op":2"#));
//! assert!(machine.poll_timeout().is_some());
//!
//! // READY is the first dispatch the application sees.
//! machine.handle_message(
//!     now,
//!     Incoming::Text(r#"{"t":"READY","s":1,"op":0,"d":{"session_id":"abc","resume_gateway_url":"wss://gateway-us-east1-b.discord.gg"}}"#),
//! );
//! let ready = std::iter::from_fn(|| machine.poll_event()).find_map(|event| match event {
//!     Event::Dispatch(dispatch) => Some(dispatch),
//!     _ => None,
//! });
//! assert_eq!(ready.unwrap().event(), "READY");
//! # Ok::<(), discord_gateway_stream::ConfigError>(())
//! ```
//!
//! # What it does
//!
//! - **Hello → heartbeats**: the first beat after `interval × jitter`, then
//!   every interval; ACK tracking and zombie detection (no ACK before the
//!   next beat closes and resumes without waiting); server heartbeat requests
//!   answered at once (`docs/connection.md#heartbeating`).
//! - **Identify or Resume** (`docs/connection.md#resume-or-identify`):
//!   Resume through `resume_gateway_url` with the original query; op 7
//!   closes with 4000 and resumes; op 9 `d: true` resumes, `d: false` waits a
//!   random 1–5 s and identifies on the base URL. Every Identify can wait for
//!   a permit ([`Config::identify_permits`], [`Action::RequestIdentifyPermit`],
//!   [`Machine::grant_identify`]) for `max_concurrency` queues; a Resume
//!   never does.
//! - **Backoff**: exponential with full jitter, a floor and a cap
//!   ([`ReconnectPolicy`]); the failure count resets only after a connection
//!   stayed healthy.
//! - **Send limits**: a 120/60 s sliding window with slots reserved for
//!   heartbeats; a 4096-byte outbound cap ([`MAX_OUTBOUND_SIZE`]); commands
//!   are queued until READY/RESUMED.
//! - **Sequence**: replays at or below the last `s` are dropped, so a resume
//!   never duplicates a dispatch; gaps are not fatal.
//! - **Compression**: the machine owns the connection's decompressor, resets
//!   it per connection and turns a corrupt stream into a resumable reconnect
//!   (`docs/compression.md#what-a-failure-does`).
//! - **Persisted sessions**: [`Machine::close`] with
//!   [`CloseMode::Resumable`] returns the [`Session`](crate::Session);
//!   [`Config::resume_from`] starts from one.
//!
//! # Close codes
//!
//! Decisions are written down, with links to Discord's documentation, in the
//! repository's protocol notes (`docs/close-codes.md#gateway-close-codes`):
//!
//! | code(s) | action |
//! |---|---|
//! | 4000, 4002, 4008, unknown 4xxx, any 1xxx from the server, no code (EOF, reset, 1005, 1006) | reconnect and **resume** |
//! | 4001, 4003, 4005, 4006, 4007, 4009 | reconnect and **identify** (no wasted resume attempt) |
//! | 4004, 4010, 4011, 4012, 4013, 4014 | **fatal**: [`Event::Fatal`]`(`[`FatalError`]`)` whose message says what to fix; no reconnect |
//! | our own close | 4000 ([`RESUMABLE_CLOSE`]) on every reconnect (keeps the session); 1000 ([`FINAL_CLOSE`]) only for [`CloseMode::Final`] |
//!
//! # Defaults
//!
//! All configurable on [`Config`]:
//!
//! | setting | default |
//! |---|---|
//! | base URL | `wss://gateway.discord.gg` + `/?v=10&encoding=json&compress=zlib-stream` |
//! | Hello timeout | 30 s |
//! | READY / RESUMED timeout | 60 s, extended by every replayed dispatch |
//! | backoff | first retry after a healthy connection immediate; then full jitter in [500 ms, min(60 s, 1 s × 2ⁿ⁻¹)] |
//! | healthy after | 30 s Active resets the failure count |
//! | resume attempts before re-identify | 3 |
//! | op 9 `d:false` wait | uniform 1–5 s |
//! | heartbeat reserve | `ceil(60 s / interval) + 1`, at most 10 (3 at 41.25 s) |
//! | max inflated payload | 64 MiB |
//! | minimum Hello `heartbeat_interval` | 10 s (a smaller one is a bad Hello) |
//! | Identifies per shard per 24 h | 50, then `FatalError::TooManyIdentifies` |
//! | a payload refused again and again at the same point | stops the shard after 2 × (resume attempts + 1) = 8 failures or before a third Identify |
//! | driver outbox towards the socket | 16 frames / 32 KiB; the rest waits in the core |
//! | TCP keepalive (default connector) | first probe after 60 s idle, then every 10 s |
//! | decompressor working buffer | over 64 KiB: kept only while messages wait on the socket; up to 64 KiB: freed 1 s after the last payload |
//! | queued commands | 4096 |
//! | buffered dispatches before the driver stops reading | 256, and 1 MiB of them (one larger dispatch always passes) |
//! | payload validation | canonical dispatches: prefix only (`validate_payloads(false)`); everything else in full |

mod backoff;
mod close_code;
mod command;
mod compression;
mod config;
mod event;
mod heartbeat;
mod latency;
mod machine;
mod opcode;
mod payload;
mod ratelimit;
mod rng;
mod stats;
mod url;
mod validate;

pub use crate::codec::DEFAULT_MAX_MESSAGE_SIZE;
pub use backoff::ReconnectPolicy;
pub use close_code::{FatalError, FINAL_CLOSE, RESUMABLE_CLOSE};
pub use command::{Command, CommandError};
pub use compression::Compression;
pub use config::{
    Config, IdentifyProperties, Token, DEFAULT_BUFFERED_BYTES, DEFAULT_BUFFERED_DISPATCHES, DEFAULT_GATEWAY_URL,
    DEFAULT_MAX_IDENTIFIES_PER_DAY, DEFAULT_MIN_HEARTBEAT_INTERVAL, MAX_MESSAGE_SIZE_LIMIT, MIN_MESSAGE_SIZE,
};
pub use event::{Action, CloseMode, DisconnectReason, Event, Status};
pub use latency::Latency;
pub use machine::{Incoming, Machine};
pub use opcode::OpCode;
pub use payload::MAX_OUTBOUND_SIZE;
pub use ratelimit::{SEND_LIMIT, SEND_WINDOW};
pub use stats::ShardStats;
pub(crate) use url::{endpoint, path_and_query};
pub use url::{gateway_url, ResumeHosts, UrlError};
pub use validate::ConfigError;
pub(crate) use validate::ValidConfig;
