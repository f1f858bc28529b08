//! The newcomer examples run against the built-in simulator and print what
//! their docs promise (`cargo test` builds examples beside the tests).
#![cfg(feature = "testing")]

use std::path::PathBuf;
use std::process::{Command, Stdio};

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
    let output = Command::new(example(name))
        .env_remove("DISCORD_TOKEN")
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
