//! A scripted fake Discord gateway for tests (feature `testing`).
//!
//! [`Simulator`] listens on `127.0.0.1` (an ephemeral port) and speaks the
//! gateway protocol over real WebSockets: Hello, heartbeat ACKs, Identify →
//! READY, Resume → replay → RESUMED, op 9 for unknown sessions, the close
//! codes of gateway-protocol §6, the send rate limit of §7.1 and zlib-stream
//! transport compression (§8.1). Sessions outlive connections: every dispatch
//! committed with [`Simulator::dispatch`] is logged with its `s`, so a client
//! that drops and resumes gets exactly what it missed.
//!
//! It runs on plain std threads with the synchronous `tungstenite` crate, so it
//! works under any async runtime (or none), and it shares no code with this
//! crate's `codec` or `protocol` modules: it parses with `serde_json` and
//! compresses with its own `flate2` stream, so a bug there cannot hide on both
//! sides of a test.
//!
//! ```no_run
//! use std::time::Duration;
//! use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
//!
//! let sim = Simulator::start(
//!     SimulatorConfig::new().heartbeat_interval(Duration::from_millis(500)),
//! )?;
//! let url = format!("{}/?v=10&encoding=json&compress=zlib-stream", sim.url());
//! // ... point the client at `url` ...
//! assert!(sim.wait_until_live(Duration::from_secs(5)));
//! sim.dispatch("MESSAGE_CREATE", serde_json::json!({"content": "hi"}));
//! sim.drop_connection(); // the client resumes and gets a replay
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Everything is recorded ([`Simulator::connections`],
//! [`Simulator::client_frames`], [`Simulator::client_closes`], …), and the
//! `wait_*` helpers block with a timeout until a condition holds.

mod config;
mod conn;
mod record;
mod server;
mod zlib;

pub use config::{OnConnect, SimulatorConfig};
pub use record::{ClientClose, ClientFrame, ConnectionEnd, ConnectionRecord, LoggedDispatch, ServerFrame};
pub use server::Simulator;
