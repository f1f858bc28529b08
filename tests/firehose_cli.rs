//! The `firehose` example as an external harness: its stdout contract, its
//! exit codes, and its simulator mode (a new user's first command).
#![cfg(feature = "testing")]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use discord_gateway_stream::testing::{Simulator, SimulatorConfig};

fn firehose() -> PathBuf {
    // tests run from target/<profile>/deps; examples are built beside them.
    let mut path = std::env::current_exe().expect("test binary path");
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join(format!("firehose{}", std::env::consts::EXE_SUFFIX))
}

/// Runs the firehose on its built-in simulator with `args`; checks its
/// stdout: the scripted session, in sequence order, each dispatch once.
fn streams_the_simulated_session(args: &[&str]) {
    let output = Command::new(firehose())
        .env_remove("DISCORD_TOKEN")
        .arg("--quiet")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("firehose runs (cargo test builds examples)");
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 25, "{stdout}");
    for (i, fields) in lines.iter().enumerate() {
        assert_eq!(fields.len(), 4, "exactly `<shard> <seq> <EVENT> <len>`: {fields:?}");
        assert_eq!(fields[0], "0");
        assert_eq!(fields[1].parse::<usize>().unwrap(), i + 1, "in sequence order, each once");
        assert!(fields[3].parse::<usize>().unwrap() > 0);
    }
    assert_eq!(lines[0][2], "READY");
    assert_eq!(lines[24][2], "RESUMED");
    assert_eq!(lines.iter().filter(|l| l[2] == "MESSAGE_CREATE").count(), 20);
}

#[test]
fn with_no_token_it_streams_a_simulated_session_with_a_resume_and_exits_0() {
    streams_the_simulated_session(&[]);
}

#[cfg(feature = "zstd")]
#[test]
fn the_simulated_session_streams_over_zstd_stream_too() {
    streams_the_simulated_session(&["--compression", "zstd-stream"]);
}

#[test]
fn a_fatal_close_exits_non_zero_quickly_naming_the_code_and_the_fix() {
    let sim = Simulator::start(SimulatorConfig::new().token("the-right-token")).unwrap();
    let started = Instant::now();
    let output = Command::new(firehose())
        .args(["--url", &sim.url(), "--token", "a-wrong-token", "--quiet"])
        .output()
        .expect("firehose runs");
    assert!(!output.status.success());
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("4004") && stderr.contains("token"), "{stderr}");
    assert!(!stderr.contains("a-wrong-token"), "the token never reaches the logs");
    assert!(output.stdout.is_empty());
}

#[test]
fn limit_stops_after_n_dispatches_with_a_final_close() {
    let sim = Simulator::start(SimulatorConfig::new().guilds([1 << 22, 2 << 22, 3 << 22, 4 << 22])).unwrap();
    let output = Command::new(firehose())
        .args(["--url", &sim.url(), "--token", "t", "--limit", "3", "--compression", "none", "--quiet"])
        .output()
        .expect("firehose runs");
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 3);
    assert!(sim.wait_for_client_closes(1, Duration::from_secs(5)));
    assert_eq!(sim.client_closes()[0].code, Some(1000));
    assert_eq!(sim.connections()[0].compress, None);
}
