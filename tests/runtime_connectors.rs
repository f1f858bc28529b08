//! Each built-in connector reaches the simulator on loopback and carries a
//! session: the runtime-agnostic one (async-io, under `async_io::block_on`,
//! no runtime feature needed) and, with the `tokio` feature, tokio's TCP,
//! which `Shard::new` picks by itself inside a tokio runtime.
#![cfg(feature = "testing")]

use std::time::Duration;

mod support;

use discord_gateway_stream::testing::{Simulator, SimulatorConfig};
use discord_gateway_stream::transport::AsyncIoConnector;
use discord_gateway_stream::{CloseMode, Config, Dispatch, Intents, Shard};
use futures::StreamExt;
use serde_json::json;
use support::client::{sim_config, LogCapture};

const WAIT: Duration = Duration::from_secs(10);

fn simulator() -> Simulator {
    Simulator::start(SimulatorConfig::new().heartbeat_interval(Duration::from_millis(300))).expect("simulator starts")
}

fn config(sim: &Simulator) -> Config {
    sim_config(sim.url(), Intents::GUILDS)
}

/// The next dispatch, or a panic after a generous bound (async-io's timer
/// works under any executor).
async fn next(shard: &mut Shard) -> Dispatch {
    let timeout = futures::FutureExt::fuse(async_io::Timer::after(WAIT));
    let mut timeout = std::pin::pin!(timeout);
    futures::select! {
        item = shard.next() => item.expect("stream open").expect("no error"),
        _ = timeout => panic!("no dispatch within {WAIT:?}"),
    }
}

/// READY, a dispatch sent after it, heartbeats answered, a final close.
async fn session(shard: &mut Shard, sim: &Simulator) {
    assert_eq!(next(shard).await.event(), "READY");
    sim.dispatch("MESSAGE_CREATE", json!({ "content": "over the connector" }));
    let message = next(shard).await;
    assert_eq!(message.event(), "MESSAGE_CREATE");
    assert!(message.data().contains("over the connector"));
    // Heartbeats go out on the connector's socket (the shard is polled
    // meanwhile: a local driver runs only then).
    let deadline = std::time::Instant::now() + WAIT;
    while sim.heartbeats().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no heartbeats");
        let tick = futures::FutureExt::fuse(async_io::Timer::after(Duration::from_millis(20)));
        let mut tick = std::pin::pin!(tick);
        futures::select! {
            item = shard.next() => panic!("unexpected item: {item:?}"),
            _ = tick => {}
        }
    }
    shard.close(CloseMode::Final).await;
    assert!(sim.wait_for_client_closes(1, WAIT));
}

#[test]
fn the_async_io_connector_carries_a_session() {
    let sim = simulator();
    let mut shard = Shard::with_connector(config(&sim), AsyncIoConnector).unwrap();
    async_io::block_on(session(&mut shard, &sim));
    assert_eq!(sim.connections().len(), 1);
}

/// Outside a tokio runtime the default connector is async-io's (async-std's with
/// that feature): `Shard::new`
/// works under any executor, here async-io's own.
#[test]
fn shard_new_works_under_any_executor() {
    let sim = simulator();
    let mut shard = Shard::new(config(&sim)).unwrap();
    async_io::block_on(session(&mut shard, &sim));
}

#[cfg(feature = "tokio")]
mod tokio_runtime {
    use discord_gateway_stream::protocol::{DisconnectReason, Status};
    use discord_gateway_stream::transport::TokioConnector;

    use super::*;

    /// The README's tokio usage: `Shard::new`, the driver spawned as a task;
    /// the default connector picks tokio's TCP there (its choice, logged at
    /// debug level on each connect, is read back from the driver's logs).
    #[tokio::test(flavor = "current_thread")]
    async fn shard_new_on_tokio_needs_no_glue() {
        use tracing::instrument::WithSubscriber;

        let sim = simulator();
        let logs = LogCapture::default();
        let mut shard = Shard::new(config(&sim)).unwrap();
        let driver = shard.take_driver().expect("a new shard has its driver");
        tokio::spawn(driver.with_subscriber(logs.dispatch(tracing::Level::DEBUG)));
        session(&mut shard, &sim).await;
        let logs = logs.text();
        let choices: Vec<&str> = logs.lines().filter(|line| line.contains("connector=")).collect();
        assert!(!choices.is_empty(), "no connect logged: {logs}");
        assert!(choices.iter().all(|line| line.contains("connector=Tokio")), "{choices:#?}");
        assert!(!logs.contains("enable_io"), "no fallback: {logs}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_tokio_connector_on_a_multi_thread_runtime() {
        let sim = simulator();
        let mut shard = Shard::with_connector(config(&sim), TokioConnector).unwrap();
        tokio::spawn(shard.take_driver().unwrap());
        session(&mut shard, &sim).await;
    }

    /// In a tokio runtime built without its I/O driver, tokio panics on a
    /// socket. The default connector catches that, makes the connection with
    /// async-io's TCP instead, and the shard reaches READY (a panic escaping
    /// the shard's poll fails this test with the panic's message).
    #[test]
    fn the_default_connector_in_a_tokio_runtime_without_io_does_not_panic() {
        let sim = simulator();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let mut shard = Shard::new(config(&sim)).unwrap();
        let ready = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(async { next(&mut shard).await.event().to_owned() })
        }));
        match ready {
            Ok(event) => assert_eq!(event, "READY"),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("the shard panicked on connect: {message}");
            }
        }
        // The fallback was made within the first attempt, not by a failed
        // attempt and a retry. (tokio opens its socket before it panics, so
        // the simulator also saw a TCP connection without a handshake.)
        assert_eq!(shard.stats().reconnects, 0);
        assert_eq!(sim.connections().iter().filter(|c| c.handshake).count(), 1);
        runtime.block_on(shard.close(CloseMode::Final));
    }

    /// A current-thread runtime entered on this thread while another executor
    /// polls the shard: the default connector picks tokio (a runtime is
    /// entered; tokio cannot say whether its `block_on` runs here), but that
    /// runtime's I/O driver is never polled, so the socket never connects and
    /// the shard retries forever. Kept as the record of a documented
    /// limitation (`DefaultConnector`'s docs); the next test is the advice
    /// given there.
    #[test]
    #[ignore = "documents a known limitation: tokio is picked in a merely entered current-thread runtime and never connects"]
    fn the_default_connector_with_an_entered_runtime_polled_elsewhere_connects() {
        let sim = simulator();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _entered = runtime.enter();
        let mut shard = Shard::new(config(&sim)).unwrap();
        assert_eq!(async_io::block_on(next(&mut shard)).event(), "READY");
    }

    /// The same setup with the runtime-agnostic connector set: it connects.
    #[test]
    fn the_async_io_connector_with_an_entered_runtime_polled_elsewhere_connects() {
        let sim = simulator();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _entered = runtime.enter();
        let mut shard = Shard::with_connector(config(&sim), AsyncIoConnector).unwrap();
        async_io::block_on(session(&mut shard, &sim));
    }

    /// Forced outside a tokio runtime, the tokio connector fails each connect
    /// (and the shard retries) instead of panicking.
    #[test]
    fn the_tokio_connector_outside_tokio_is_a_connect_failure() {
        let sim = simulator();
        let mut shard = Shard::with_connector(config(&sim), TokioConnector).unwrap();
        let handle = shard.handle();
        let driver = shard.take_driver().unwrap();
        async_io::block_on(async {
            let driving = std::pin::pin!(futures::FutureExt::fuse(driver));
            let mut driving = driving;
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                let tick = futures::FutureExt::fuse(async_io::Timer::after(Duration::from_millis(20)));
                let mut tick = std::pin::pin!(tick);
                futures::select! {
                    () = driving => panic!("the driver ended"),
                    _ = tick => {}
                }
                if matches!(handle.status(), Status::Reconnecting { reason: DisconnectReason::ConnectFailed, .. }) {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "no connect failure: {:?}", handle.status());
            }
        });
        assert!(sim.connections().is_empty());
    }
}
