//! The one count of a shard's queued commands, and its bound.

use std::sync::atomic::{AtomicUsize, Ordering};
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
        let budget = CommandBudget { queued: Arc::new(AtomicUsize::new(0)), limit };
        let driver = DriverBudget { budget: budget.clone(), in_machine: 0 };
        (budget, driver)
    }

    /// Commands counted now.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// A handle queues a command: one more, unless the bound is reached.
    pub(crate) fn reserve(&self) -> Result<(), CommandError> {
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
}
