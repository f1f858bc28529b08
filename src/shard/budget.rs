//! The one count of a shard's queued commands, and its bound.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::protocol::CommandError;

/// How many of a shard's commands are queued: what
/// [`ShardHandle::queued_commands`](super::ShardHandle::queued_commands)
/// reads and [`Config::max_queued_commands`](crate::Config::max_queued_commands)
/// bounds. Every handle holds a clone; the driver holds the
/// [`DriverBudget`] made with it.
///
/// A command counts from the moment a handle queues it until the driver
/// takes it from the machine for the socket, or it is dropped: on its way
/// to the driver, then while the machine holds it (waiting for the session
/// or the send budget, or handed back after a lost connection). Nothing
/// else changes the count.
#[derive(Clone)]
pub(crate) struct CommandBudget {
    queued: Arc<AtomicUsize>,
    /// The driver is gone (finished, or its future dropped): nothing is
    /// queued any more, and nothing can be.
    closed: Arc<AtomicBool>,
    limit: usize,
}

/// The driver's side of a [`CommandBudget`]: it also knows how many of the
/// counted commands the machine holds, so that what the machine sends,
/// drops or takes back moves the count by the same amount.
pub(crate) struct DriverBudget {
    budget: CommandBudget,
    /// The commands the machine held when last settled (part of the count).
    in_machine: usize,
}

impl CommandBudget {
    /// A budget of `limit` commands, and the driver's side of it.
    pub(crate) fn new(limit: usize) -> (CommandBudget, DriverBudget) {
        let budget =
            CommandBudget { queued: Arc::new(AtomicUsize::new(0)), closed: Arc::new(AtomicBool::new(false)), limit };
        let driver = DriverBudget { budget: budget.clone(), in_machine: 0 };
        (budget, driver)
    }

    /// Commands counted now.
    pub(crate) fn queued(&self) -> usize {
        if self.closed.load(Ordering::Acquire) {
            return 0;
        }
        self.queued.load(Ordering::Acquire)
    }

    /// A handle queues a command: one more, unless the bound is reached.
    pub(crate) fn reserve(&self) -> Result<(), CommandError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(CommandError::Closed);
        }
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.release(1);
            return Err(CommandError::QueueFull { limit: self.limit });
        }
        Ok(())
    }

    /// A reserved command never reached the driver (it had stopped).
    pub(crate) fn cancel(&self) {
        self.release(1);
    }

    fn release(&self, count: usize) {
        if count > 0 {
            self.queued.fetch_sub(count, Ordering::AcqRel);
        }
    }

    fn add(&self, count: usize) {
        if count > 0 {
            self.queued.fetch_add(count, Ordering::AcqRel);
        }
    }
}

impl DriverBudget {
    /// The driver took a command from its channel and gave it to the
    /// machine: `accepted`, it stays counted while the machine holds it;
    /// refused, it is gone.
    pub(crate) fn handed_to_machine(&mut self, accepted: bool) {
        if accepted {
            self.in_machine += 1;
        } else {
            self.budget.release(1);
        }
    }

    /// The machine now holds `now_in_machine` commands: fewer once it gave
    /// some to the driver for the socket or dropped them (a final close),
    /// more once the driver handed back commands a lost connection left
    /// unwritten. The count follows.
    pub(crate) fn settle(&mut self, now_in_machine: usize) {
        if now_in_machine < self.in_machine {
            self.budget.release(self.in_machine - now_in_machine);
        } else {
            self.budget.add(now_in_machine - self.in_machine);
        }
        self.in_machine = now_in_machine;
    }

    /// The driver stopped with this command still in its channel: it never
    /// reaches the machine.
    pub(crate) fn unread(&mut self) {
        self.budget.release(1);
    }
}

impl Drop for DriverBudget {
    /// However the driver ends (it finished, or its future was dropped
    /// unpolled, aborted or with its runtime), the commands it still counted
    /// are gone with it: the handles read 0 queued and `send` says `Closed`.
    fn drop(&mut self) {
        self.budget.closed.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_refuses_the_command_past_it_and_leaves_the_count() {
        let (budget, _driver) = CommandBudget::new(2);
        assert_eq!(budget.reserve(), Ok(()));
        assert_eq!(budget.reserve(), Ok(()));
        assert_eq!(budget.reserve(), Err(CommandError::QueueFull { limit: 2 }));
        assert_eq!(budget.queued(), 2);
        budget.cancel();
        assert_eq!(budget.queued(), 1);
        assert_eq!(budget.reserve(), Ok(()));
    }

    #[test]
    fn a_command_counts_until_the_machine_sends_or_drops_it() {
        let (budget, mut driver) = CommandBudget::new(4);
        let handle = budget.clone();
        for _ in 0..3 {
            handle.reserve().unwrap();
        }
        // Two reach the machine, one of which it refuses.
        driver.handed_to_machine(true);
        driver.handed_to_machine(false);
        assert_eq!(budget.queued(), 2, "one in the channel, one in the machine");
        driver.settle(1);
        assert_eq!(budget.queued(), 2, "settling what is already known changes nothing");
        // The machine lets it out for the socket.
        driver.settle(0);
        assert_eq!(budget.queued(), 1);
        // The driver stops with the last one unread.
        driver.unread();
        assert_eq!(budget.queued(), 0);
    }

    #[test]
    fn commands_handed_back_to_the_machine_count_again_even_past_the_bound() {
        let (budget, mut driver) = CommandBudget::new(2);
        for _ in 0..2 {
            budget.reserve().unwrap();
            driver.handed_to_machine(true);
        }
        driver.settle(0);
        budget.reserve().unwrap();
        budget.reserve().unwrap();
        driver.handed_to_machine(true);
        driver.handed_to_machine(true);
        // A lost connection: the two taken earlier go back in front.
        driver.settle(4);
        assert_eq!(budget.queued(), 4);
        assert_eq!(budget.reserve(), Err(CommandError::QueueFull { limit: 2 }));
        // A final close drops them all.
        driver.settle(0);
        assert_eq!(budget.queued(), 0);
    }

    // A command `send` accepted is never dropped; a dropped driver leaves nothing counted.

    use crate::intents::Intents;
    use crate::protocol::{Command, Compression, Config, Incoming, Machine};
    use std::time::Instant;

    fn command(n: u32) -> Command {
        Command::new(8, &format!(r#"{{"guild_id":"{n}","query":"","limit":0}}"#)).unwrap()
    }

    /// An Active machine with `max_queued_commands(limit)`.
    fn active_machine(limit: usize, now: Instant) -> Machine {
        let config =
            Config::new("token", Intents::GUILDS).compression(Compression::None).rng_seed(1).max_queued_commands(limit);
        let mut machine = Machine::new(config, now).unwrap();
        while machine.poll_action().is_some() {}
        machine.handle_open(now);
        machine.handle_message(now, Incoming::Text(r#"{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250}}"#));
        while machine.poll_action().is_some() {}
        machine.grant_identify(now);
        machine.handle_message(
            now,
            Incoming::Text(r#"{"t":"READY","s":1,"op":0,"d":{"v":10,"session_id":"s","resume_gateway_url":"wss://r","user":{"id":"1"},"guilds":[]}}"#),
        );
        while machine.poll_action().is_some() {}
        while machine.poll_transmit().is_some() {}
        while machine.poll_event().is_some() {}
        machine
    }

    /// The driver's sequence (src/shard.rs `Driver::run`/`apply_outputs`) when
    /// a zombie/ready-timeout loss happens on a socket that does not drain:
    /// the outbox holds commands (released from the count when taken), the
    /// driver sits in `close_socket` for up to CLOSE_GRACE while handles keep
    /// sending, then requeues the outbox commands and only then reads the
    /// channel. `send` said Ok to every command, yet the machine refuses the
    /// last ones with QueueFull and the driver drops them ("command dropped").
    #[test]
    fn a_command_send_accepted_is_not_dropped_after_a_requeue_past_the_bound() {
        let now = Instant::now();
        let limit = 2;
        let mut machine = active_machine(limit, now);
        let (handle, mut driver) = CommandBudget::new(limit);
        // Two commands reach the machine; the driver takes both into its outbox.
        for n in 0..2 {
            handle.reserve().unwrap();
            let accepted = machine.send_command(now, command(n)).is_ok();
            driver.handed_to_machine(accepted);
        }
        let outbox: Vec<String> = std::iter::from_fn(|| machine.poll_transmit_tagged())
            .filter(|(_, is_command)| *is_command)
            .map(|(frame, _)| frame)
            .collect();
        assert_eq!(outbox.len(), 2);
        driver.settle(machine.queued_commands());
        assert_eq!(handle.queued(), 0);
        // The connection is lost (the machine learns it; the driver awaits
        // close_socket, during which a handle sends command 2: accepted).
        machine.handle_close(now, None);
        assert_eq!(handle.reserve(), Ok(()), "send() returns Ok to command 2");
        // apply_outputs: the outbox commands are handed back, then settled.
        assert_eq!(machine.requeue_commands(now, outbox), 2);
        driver.settle(machine.queued_commands());
        // next_wake: command 2 comes out of the channel, its place reserved.
        let sent = machine.send_reserved_command(now, command(2));
        driver.handed_to_machine(sent.is_ok());
        assert_eq!(sent, Ok(()), "a command send() accepted must not be dropped");
    }

    /// A driver future dropped before it finished (a Shard dropped without
    /// polling its driver, a spawned driver whose runtime shut down, an
    /// aborted task) never releases what it counted: the handles report
    /// commands queued forever, and send() says QueueFull instead of Closed.
    #[test]
    fn a_dropped_driver_leaves_nothing_counted() {
        let offline = |_: crate::transport::Target| async {
            Err::<futures_util::io::Cursor<Vec<u8>>, _>(std::io::Error::other("offline"))
        };
        let shard =
            crate::shard::Shard::with_connector(Config::new("token", Intents::GUILDS).max_queued_commands(2), offline)
                .unwrap();
        let handle = shard.handle();
        handle.send(command(0)).unwrap();
        handle.send(command(1)).unwrap();
        drop(shard); // the driver goes with it, never run
        assert_eq!(handle.send(command(2)), Err(CommandError::Closed), "the shard is gone");
        assert_eq!(handle.queued_commands(), 0, "nothing is queued any more");
    }
}
