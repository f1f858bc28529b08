//! `Machine::poll_transmit_tagged` and `Machine::requeue_commands`: a driver
//! that took command frames but could not write them before the connection
//! ended hands them back, and they go out on the next session first, once
//! each, in their original order (issue 12.8).

mod support;

use std::time::Duration;

use discord_gateway_stream::protocol::{CloseMode, Command, Incoming};
use support::machine::*;

fn command(n: u32) -> Command {
    Command::new(8, &format!(r#"{{"guild_id":"{n}","query":"","limit":0}}"#)).unwrap()
}

fn guild_ids(frames: &[String]) -> Vec<u32> {
    frames
        .iter()
        .filter(|f| f.starts_with(r#"{"op":8,"#))
        .map(|f| {
            let v: serde_json::Value = serde_json::from_str(f).unwrap();
            v["d"]["guild_id"].as_str().unwrap().parse().unwrap()
        })
        .collect()
}

/// Loses the connection, lets the reconnect delay pass, resumes and returns
/// the frames sent on the new connection.
fn resume(h: &mut Harness) -> Vec<String> {
    h.advance(Duration::from_secs(10));
    let before = h.sent.len();
    let first = h.reconnect_and_first_frame();
    assert_eq!(first["op"], 6, "a Resume");
    h.recv(r#"{"t":"RESUMED","s":2,"op":0,"d":{}}"#);
    h.sent[before..].to_vec()
}

#[test]
fn handed_back_commands_go_out_first_after_the_resume_in_order_and_once() {
    let mut h = Harness::active();
    for n in 1..=3 {
        h.machine.send_command(h.now, command(n)).unwrap();
    }
    // The driver takes 1 and 2 (its outbox); 3 is still in the machine.
    let taken: Vec<(String, bool)> = (0..2).map(|_| h.machine.poll_transmit_tagged().unwrap()).collect();
    assert!(taken.iter().all(|(_, is_command)| *is_command));
    h.machine.send_command(h.now, command(4)).unwrap();
    // The connection drops before 1 and 2 were written.
    h.machine.handle_close(h.now, None);
    let back = h.machine.requeue_commands(h.now, taken.into_iter().map(|(frame, _)| frame));
    assert_eq!(back, 2);
    assert_eq!(h.machine.queued_commands(), 4);
    h.drain();
    let sent = resume(&mut h);
    assert_eq!(guild_ids(&sent), [1, 2, 3, 4]);
    assert_eq!(guild_ids(&h.sent), [1, 2, 3, 4], "each once");
    assert_eq!(h.machine.queued_commands(), 0);
}

#[test]
fn commands_handed_back_before_the_machine_saw_the_loss_keep_their_order() {
    // Tolerated misuse: requeued while the machine still thinks it is
    // connected; the commands it still holds were taken later.
    let mut h = Harness::active();
    for n in 1..=2 {
        h.machine.send_command(h.now, command(n)).unwrap();
    }
    let first = h.machine.poll_transmit_tagged().unwrap();
    assert_eq!(h.machine.requeue_commands(h.now, [first.0]), 1);
    h.drain();
    assert_eq!(guild_ids(&h.sent), [1, 2]);
}

#[test]
fn heartbeats_and_core_frames_are_tagged_and_never_taken_back() {
    let mut h = Harness::active();
    h.machine.handle_message(h.now, Incoming::Text(r#"{"op":1,"d":null}"#));
    let (heartbeat, is_command) = h.machine.poll_transmit_tagged().unwrap();
    assert!(heartbeat.starts_with(r#"{"op":1,"#));
    assert!(!is_command);
    h.machine.handle_close(h.now, None);
    let frames = [
        heartbeat,
        format!(r#"{{"op":2,"d":{{"token":"{TOKEN}"}}}}"#),
        resume_frame("sess-1", 1),
        "not a frame".to_owned(),
        r#"{"op":300,"d":{}}"#.to_owned(),
        command(9).frame().to_owned(),
    ];
    assert_eq!(h.machine.requeue_commands(h.now, frames), 1, "only the op 8 command");
    assert_eq!(h.machine.queued_commands(), 1);
    h.drain();
    let sent = resume(&mut h);
    assert_eq!(sent.iter().filter(|f| f.starts_with(r#"{"op":2"#)).count(), 0);
    assert_eq!(guild_ids(&sent), [9]);
}

#[test]
fn nothing_is_taken_back_once_the_shard_is_closed() {
    let mut h = Harness::active();
    let _ = h.machine.close(CloseMode::Final);
    assert_eq!(h.machine.requeue_commands(h.now, [command(1).frame().to_owned()]), 0);
    assert_eq!(h.machine.queued_commands(), 0);
}
