//! Shared by tests that run the real client against the simulator.

use std::time::Duration;

use discord_gateway_stream::protocol::ReconnectPolicy;
use discord_gateway_stream::{Config, Intents};

/// Backoff and op 9 waits short enough for tests (Discord's 1–5 s op 9
/// wait becomes 50–100 ms).
pub fn fast_policy() -> ReconnectPolicy {
    ReconnectPolicy {
        base: Duration::from_millis(50),
        cap: Duration::from_millis(400),
        floor: Duration::from_millis(20),
        invalid_session_wait: (Duration::from_millis(50), Duration::from_millis(100)),
        ..ReconnectPolicy::default()
    }
}

/// A client of the simulator at `url`: its token, [`fast_policy`], and a
/// heartbeat floor under the simulator's fast intervals (Discord's is 10 s).
pub fn sim_config(url: String, intents: Intents) -> Config {
    Config::new("sim-token", intents)
        .base_url(url)
        .reconnect_policy(fast_policy())
        .min_heartbeat_interval(Duration::from_millis(100))
}

/// Log output captured as plain text: a subscriber for a future
/// (`tracing::instrument::WithSubscriber`) or a scope, and what it wrote.
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// A subscriber writing events at `level` and above into this capture.
    pub fn dispatch(&self, level: tracing::Level) -> tracing::Dispatch {
        let writer = self.clone();
        tracing::Dispatch::new(
            tracing_subscriber::fmt()
                .with_max_level(level)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish(),
        )
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
