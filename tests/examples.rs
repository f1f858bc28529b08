//! The newcomer examples run against the built-in simulator and print what
//! their docs promise (`cargo test` builds examples beside the tests).
#![cfg(feature = "testing")]

use std::path::PathBuf;
use std::process::{Command, Stdio};

#[macro_use]
mod support;

fn example(name: &str) -> PathBuf {
    // tests run from target/<profile>/deps; examples are built beside them.
    let mut path = std::env::current_exe().expect("test binary path");
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

fn run(name: &str) -> String {
    run_with(name, &[])
}

fn run_with(name: &str, env: &[(&str, &str)]) -> String {
    let output = Command::new(example(name))
        .env_remove("DISCORD_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("examples/{name}.rs runs: {error}"));
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8 output")
}

#[test]
fn typed_delivers_only_message_create_as_twilight_models() {
    // Seq 1 is READY and seq 2 TYPING_START: both filtered out.
    let expected: String = (0..5).map(|n| format!("#{} ferris: hello number {n}\n", n + 3)).collect();
    assert_eq!(run("typed"), expected);
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_bot_shuts_down_gracefully_and_the_next_run_resumes_every_shard() {
    let out = run("tokio");
    let (first, second) = out.split_once("second run\n").expect("two runs");
    assert!(first.contains("shut down: 2 sessions saved, 2 identifies, 0 resumes"), "{out}");
    assert!(second.ends_with("shut down: 2 sessions saved, 0 identifies, 2 resumes\n"), "{out}");
    // What was sent while no process ran is replayed, once, on each shard.
    for shard in 0..2 {
        let line = format!("{shard} 7 MESSAGE_CREATE {{\"while\":\"restarting\"}}");
        assert_eq!(second.lines().filter(|l| l.starts_with(&line)).count(), 1, "{out}");
        assert_eq!(second.lines().filter(|l| l.starts_with(&format!("{shard} 8 RESUMED"))).count(), 1, "{out}");
    }
    assert!(!second.contains("READY"), "{out}");
    // Every message of both runs, each exactly once.
    for run in [first, second] {
        for shard in 0..2 {
            for n in 0..5 {
                let message = format!("MESSAGE_CREATE {{\"n\":{n}}}");
                let count = run.lines().filter(|l| l.starts_with(&format!("{shard} ")) && l.contains(&message)).count();
                assert_eq!(count, 1, "shard {shard} message {n}: {out}");
            }
        }
    }
}

#[cfg(all(feature = "redis", feature = "tokio"))]
#[test]
fn multi_process_paces_identifies_across_processes_and_the_next_processes_resume() {
    let server = redis_server!();
    let out = run_with("multi_process", &[("REDIS_URL", &server.url())]);
    let summaries: Vec<&str> = out.lines().filter(|l| l.starts_with("round ")).collect();
    assert_eq!(
        summaries,
        [
            "round 1: 4 identifies, 0 resumes, 0 identifies refused",
            "round 2: 0 identifies, 4 resumes, 0 identifies refused"
        ],
        "{out}"
    );
    // Every shard got its three messages in each round, each once.
    for shard in 0..4 {
        let received =
            out.lines().filter(|l| l.contains(&format!(": shard {shard} seq ")) && l.ends_with("MESSAGE_CREATE"));
        assert_eq!(received.count(), 6, "shard {shard}: {out}");
    }
}
