//! The group's shards by id: one entry each, with its state, its slot in
//! the merge and the session it is to resume.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::ShardSession;
use crate::protocol::{CloseMode, Status};
use crate::session::Session;
use crate::shard::ShardHandle;
use crate::shard_id::ShardId;

/// Where one shard id stands in the group.
enum State {
    /// Not in the group: the entry stays only for a slot that is still
    /// handing over dispatches, or a session given to resume it.
    Absent,
    /// In the group, waiting for a connecting slot; holds the handle of
    /// the shard's last (stopped) connection, if any.
    Waiting(Option<ShardHandle>),
    /// Its newest connection runs and may still be opening its socket: it
    /// holds a connecting slot.
    Starting(ShardHandle),
    /// Its newest connection runs.
    Running(ShardHandle),
    /// Its newest connection has ended; the handle keeps its last status.
    Stopped(ShardHandle),
}

struct Entry {
    state: State,
    /// Its slot's key in the merge while it has one (a removed shard's
    /// slot stays until it has yielded what it had received).
    slot: Option<usize>,
    /// A session to resume when it starts from the line. Only an `Absent`
    /// or `Waiting` entry has one: starting takes it. Boxed: most entries
    /// never have one.
    resume: Option<Box<Session>>,
}

impl Entry {
    fn new() -> Entry {
        Entry { state: State::Absent, slot: None, resume: None }
    }

    /// Nothing left to keep.
    fn is_empty(&self) -> bool {
        matches!(self.state, State::Absent) && self.slot.is_none() && self.resume.is_none()
    }
}

/// What [`Roster::remove`] found.
pub(super) enum Removed {
    /// The group has no such shard.
    Unknown,
    /// It had stopped, or never connected (waiting for a connecting slot):
    /// nothing to close; the session it was to resume if `Resumable`.
    NotRunning(Option<Session>),
    /// Its connection runs: close it.
    Running(ShardHandle),
}

/// What [`Roster::restart`] found.
pub(super) enum Restart {
    /// The group has no such shard.
    Unknown,
    /// Still waiting for a connecting slot: it will start anyway.
    Waiting,
    /// Stopped: start it afresh.
    Stopped,
    /// Running: close it resumably, then start it again.
    Running(ShardHandle),
}

/// The group's shards: one entry per shard id, so a shard's state, slot and
/// session cannot disagree. `line` and `starting` only index the entries in
/// the `Waiting` and `Starting` states; every change of state goes through
/// this type, which keeps them in step.
pub(super) struct Roster {
    entries: BTreeMap<ShardId, Entry>,
    /// The `Waiting` shards, in the order they start.
    line: VecDeque<ShardId>,
    /// The `Starting` shards.
    starting: BTreeSet<ShardId>,
}

impl Roster {
    /// `sessions` to resume (for these shards or ones added later), and the
    /// shards to start, in order.
    pub(super) fn new(
        sessions: impl IntoIterator<Item = ShardSession>,
        shards: impl IntoIterator<Item = ShardId>,
    ) -> Roster {
        let mut roster = Roster { entries: BTreeMap::new(), line: VecDeque::new(), starting: BTreeSet::new() };
        for ShardSession { shard, session } in sessions {
            roster.entries.entry(shard).or_insert_with(Entry::new).resume = Some(Box::new(session));
        }
        for shard in shards {
            roster.add(shard);
        }
        roster
    }

    /// Every shard in the group (waiting, running or stopped), in order.
    pub(super) fn ids(&self) -> Vec<ShardId> {
        self.entries.iter().filter(|(_, entry)| !matches!(entry.state, State::Absent)).map(|(id, _)| *id).collect()
    }

    /// Whether `shard` runs or waits for a connecting slot.
    pub(super) fn is_running(&self, shard: ShardId) -> bool {
        self.entries
            .get(&shard)
            .is_some_and(|entry| matches!(entry.state, State::Waiting(_) | State::Starting(_) | State::Running(_)))
    }

    /// `shard`'s status; one waiting for a connecting slot is `Connecting`.
    pub(super) fn status(&self, shard: ShardId) -> Option<Status> {
        let entry = self.entries.get(&shard)?;
        match &entry.state {
            State::Absent => None,
            State::Waiting(_) => Some(Status::Connecting { resume: entry.resume.is_some() }),
            State::Starting(handle) | State::Running(handle) | State::Stopped(handle) => Some(handle.status()),
        }
    }

    /// The handle of `shard`'s newest connection; none while it waits for
    /// a connecting slot (the connection it had, if any, is closed, and
    /// the next one does not exist yet).
    pub(super) fn handle(&self, shard: ShardId) -> Option<&ShardHandle> {
        match &self.entries.get(&shard)?.state {
            State::Absent | State::Waiting(_) => None,
            State::Starting(handle) | State::Running(handle) | State::Stopped(handle) => Some(handle),
        }
    }

    /// Every shard with a connection (running or stopped) and its handle.
    pub(super) fn handles(&self) -> impl Iterator<Item = (ShardId, &ShardHandle)> {
        self.entries.keys().copied().filter_map(|id| Some((id, self.handle(id)?)))
    }

    /// Whether any shard waits for a connecting slot.
    pub(super) fn has_waiting(&self) -> bool {
        !self.line.is_empty()
    }

    /// `shard`'s slot in the merge, if it has one.
    pub(super) fn slot(&self, shard: ShardId) -> Option<usize> {
        self.entries.get(&shard)?.slot
    }

    /// Puts `shard` in line for a connecting slot, unless it runs or waits already.
    pub(super) fn add(&mut self, shard: ShardId) -> bool {
        if self.is_running(shard) {
            return false;
        }
        let entry = self.entries.entry(shard).or_insert_with(Entry::new);
        let last = match std::mem::replace(&mut entry.state, State::Absent) {
            State::Stopped(handle) => Some(handle),
            _ => None,
        };
        entry.state = State::Waiting(last);
        self.line.push_back(shard);
        true
    }

    /// `shard` is to connect again (a restart): back in line for a
    /// connecting slot, to resume `session` if there is one. Its newest
    /// connection has ended (or never ran); one already waiting keeps its
    /// place.
    pub(super) fn requeue(&mut self, shard: ShardId, session: Option<Session>) {
        let entry = self.entries.entry(shard).or_insert_with(Entry::new);
        if let Some(session) = session {
            entry.resume = Some(Box::new(session));
        }
        if matches!(entry.state, State::Waiting(_)) {
            return;
        }
        entry.state = match std::mem::replace(&mut entry.state, State::Absent) {
            State::Starting(handle) | State::Running(handle) | State::Stopped(handle) => State::Waiting(Some(handle)),
            _ => State::Waiting(None),
        };
        self.starting.remove(&shard);
        self.line.push_back(shard);
    }

    /// The next shard in line and the session it is to resume, if fewer
    /// than `max_connecting` shards hold a connecting slot. It leaves the
    /// line as not running (stopped, or absent): [`started`](Self::started)
    /// once its connection is built.
    pub(super) fn next_to_start(&mut self, max_connecting: usize) -> Option<(ShardId, Option<Session>)> {
        if self.line.is_empty() {
            return None;
        }
        // Connections past their socket's opening give their slot back.
        let entries = &mut self.entries;
        self.starting.retain(|id| {
            let Some(entry) = entries.get_mut(id) else { return false };
            let State::Starting(handle) = &entry.state else { return false };
            if matches!(handle.status(), Status::Connecting { .. } | Status::AwaitingHello) {
                return true;
            }
            if let State::Starting(handle) = std::mem::replace(&mut entry.state, State::Absent) {
                entry.state = State::Running(handle);
            }
            false
        });
        if self.starting.len() >= max_connecting {
            return None;
        }
        let shard = self.line.pop_front()?;
        let entry = self.entries.get_mut(&shard)?;
        entry.state = match std::mem::replace(&mut entry.state, State::Absent) {
            State::Waiting(Some(handle)) => State::Stopped(handle),
            _ => State::Absent,
        };
        let session = entry.resume.take().map(|session| *session);
        self.tidy(shard);
        Some((shard, session))
    }

    /// `shard` left the line but its connection could not be built. A
    /// session it was to resume was used by no connection and stays valid:
    /// the entry keeps it (out of the group, as for a session given for a
    /// shard added later), so a later add resumes it and a resumable close
    /// hands it back.
    pub(super) fn not_started(&mut self, shard: ShardId, session: Option<Session>) {
        let Some(session) = session else { return };
        let entry = self.entries.entry(shard).or_insert_with(Entry::new);
        entry.state = State::Absent;
        entry.resume = Some(Box::new(session));
    }

    /// `shard`'s new connection runs (it holds a connecting slot until its
    /// socket is open), in the merge at `slot`.
    pub(super) fn started(&mut self, shard: ShardId, handle: ShardHandle, slot: usize) {
        let entry = self.entries.entry(shard).or_insert_with(Entry::new);
        if matches!(entry.state, State::Waiting(_)) {
            self.line.retain(|id| *id != shard);
        }
        entry.state = State::Starting(handle);
        entry.slot = Some(slot);
        entry.resume = None;
        self.starting.insert(shard);
    }

    /// `shard`'s newest connection has ended.
    pub(super) fn stopped(&mut self, shard: ShardId) {
        let Some(entry) = self.entries.get_mut(&shard) else { return };
        entry.state = match std::mem::replace(&mut entry.state, State::Absent) {
            State::Starting(handle) | State::Running(handle) => State::Stopped(handle),
            other => other,
        };
        self.starting.remove(&shard);
    }

    /// The merge's slot `slot` of `shard` has ended and was removed.
    pub(super) fn slot_ended(&mut self, shard: ShardId, slot: usize) {
        if let Some(entry) = self.entries.get_mut(&shard) {
            if entry.slot == Some(slot) {
                entry.slot = None;
                self.tidy(shard);
            }
        }
    }

    /// What restarting `shard` means now.
    pub(super) fn restart(&self, shard: ShardId) -> Restart {
        match self.entries.get(&shard).map(|entry| &entry.state) {
            None | Some(State::Absent) => Restart::Unknown,
            Some(State::Waiting(_)) => Restart::Waiting,
            Some(State::Stopped(_)) => Restart::Stopped,
            Some(State::Starting(handle) | State::Running(handle)) => Restart::Running(handle.clone()),
        }
    }

    /// Forgets `shard`. One waiting for a connecting slot never connected:
    /// the session it was to resume is handed back when `mode` is `Resumable`.
    pub(super) fn remove(&mut self, shard: ShardId, mode: CloseMode) -> Removed {
        let Some(entry) = self.entries.get_mut(&shard) else { return Removed::Unknown };
        let removed = match std::mem::replace(&mut entry.state, State::Absent) {
            State::Absent => Removed::Unknown,
            State::Waiting(_) => {
                self.line.retain(|id| *id != shard);
                Removed::NotRunning(
                    entry.resume.take().filter(|_| mode == CloseMode::Resumable).map(|session| *session),
                )
            }
            State::Starting(handle) | State::Running(handle) => Removed::Running(handle),
            State::Stopped(_) => Removed::NotRunning(None),
        };
        self.starting.remove(&shard);
        self.tidy(shard);
        removed
    }

    /// Forgets every shard `select` picks, and every session given for
    /// one of them: the sessions of those that never connected (when `mode`
    /// is `Resumable`), and the handles of the running ones, to close.
    pub(super) fn remove_where(
        &mut self,
        select: impl Fn(ShardId) -> bool,
        mode: CloseMode,
    ) -> (Vec<ShardSession>, Vec<ShardHandle>) {
        let chosen: Vec<ShardId> = self.entries.keys().copied().filter(|id| select(*id)).collect();
        let mut sessions = Vec::new();
        let mut running = Vec::new();
        for shard in chosen {
            let Some(entry) = self.entries.get_mut(&shard) else { continue };
            if let Some(session) = entry.resume.take().filter(|_| mode == CloseMode::Resumable) {
                sessions.push(ShardSession { shard, session: *session });
            }
            if let Removed::Running(handle) = self.remove(shard, mode) {
                running.push(handle);
            }
        }
        (sessions, running)
    }

    /// Drops `shard`'s entry if nothing in it is left to keep.
    fn tidy(&mut self, shard: ShardId) {
        if self.entries.get(&shard).is_some_and(Entry::is_empty) {
            self.entries.remove(&shard);
        }
    }

    /// Panics unless the indexes match the entries.
    #[cfg(test)]
    fn check(&self) {
        let waiting: BTreeSet<ShardId> = self
            .entries
            .iter()
            .filter(|(_, entry)| matches!(entry.state, State::Waiting(_)))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(self.line.len(), waiting.len(), "each waiting shard is in line once");
        assert_eq!(self.line.iter().copied().collect::<BTreeSet<_>>(), waiting);
        let starting: BTreeSet<ShardId> = self
            .entries
            .iter()
            .filter(|(_, entry)| matches!(entry.state, State::Starting(_)))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(self.starting, starting);
        for (id, entry) in &self.entries {
            assert!(!entry.is_empty(), "{id}: an empty entry is dropped");
            if entry.resume.is_some() {
                assert!(
                    matches!(entry.state, State::Absent | State::Waiting(_)),
                    "{id}: a running shard has no session to resume"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intents::Intents;
    use crate::protocol::Config;
    use crate::shard::Shard;
    use crate::transport::Target;

    fn id(n: u32) -> ShardId {
        ShardId::new(n, 8).unwrap()
    }

    /// A shard that never connects (its driver is not polled): `Connecting`
    /// until `mark_ended`.
    fn shard(n: u32) -> Shard {
        let offline =
            |_: Target| async { Err::<futures_util::io::Cursor<Vec<u8>>, _>(std::io::Error::other("offline")) };
        Shard::with_connector(Config::new("token", Intents::GUILDS).shard(id(n)), offline).unwrap()
    }

    fn session(n: u32) -> ShardSession {
        let session = Session { id: format!("s{n}"), seq: u64::from(n), resume_url: None };
        ShardSession { shard: id(n), session }
    }

    /// Starts what the roster lets start; each new connection gets slot `n`
    /// for shard `n` (or keeps the one it has).
    fn start_all(roster: &mut Roster, max: usize, shards: &mut Vec<Shard>) -> Vec<(ShardId, Option<Session>)> {
        let mut started = Vec::new();
        while let Some((shard_id, resume)) = roster.next_to_start(max) {
            roster.check();
            let running = shard(shard_id.id);
            let slot = roster.slot(shard_id).unwrap_or(shard_id.id as usize);
            roster.started(shard_id, running.handle(), slot);
            roster.check();
            shards.push(running);
            started.push((shard_id, resume));
        }
        started
    }

    #[test]
    fn the_line_starts_in_order_within_the_connecting_slots() {
        let mut shards = Vec::new();
        let mut roster = Roster::new([session(1), session(6)], (0..4).map(id));
        roster.check();
        assert_eq!(roster.ids(), (0..4).map(id).collect::<Vec<_>>(), "a session alone is no member");
        assert_eq!(roster.status(id(1)), Some(Status::Connecting { resume: true }));
        assert_eq!(roster.status(id(6)), None);
        let started = start_all(&mut roster, 2, &mut shards);
        assert_eq!(started, [(id(0), None), (id(1), Some(session(1).session))]);
        assert!(roster.has_waiting());
        assert!(roster.is_running(id(3)) && roster.handle(id(3)).is_none());
        // Shard 0's socket is open (here: it ended): its slot is free.
        shards[0].mark_ended();
        assert_eq!(start_all(&mut roster, 2, &mut shards), [(id(2), None)]);
        assert!(start_all(&mut roster, 2, &mut shards).is_empty(), "1 and 2 still connecting");
        // Added later: it resumes the session given for it.
        assert!(roster.add(id(6)));
        assert!(!roster.add(id(6)), "already waiting");
        shards[1].mark_ended();
        shards[2].mark_ended();
        let started = start_all(&mut roster, 2, &mut shards);
        assert_eq!(started, [(id(3), None), (id(6), Some(session(6).session))]);
        assert!(!roster.has_waiting());
        roster.check();
    }

    #[test]
    fn entries_keep_their_invariants_through_stop_restart_remove_and_close() {
        let mut shards = Vec::new();
        let mut roster = Roster::new([session(5)], (0..3).map(id));
        start_all(&mut roster, 8, &mut shards);
        // Shard 0 stops; its slot drains.
        roster.stopped(id(0));
        roster.check();
        assert!(!roster.is_running(id(0)));
        assert!(roster.handle(id(0)).is_some(), "a stopped shard keeps its last handle");
        assert!(matches!(roster.restart(id(0)), Restart::Stopped));
        assert!(matches!(roster.restart(id(1)), Restart::Running(_)));
        assert!(matches!(roster.restart(id(5)), Restart::Unknown));
        // Added again: it waits (no handle: its last connection is closed),
        // then starts in the same slot.
        assert!(roster.add(id(0)));
        assert!(roster.handle(id(0)).is_none());
        assert!(matches!(roster.restart(id(0)), Restart::Waiting));
        roster.check();
        start_all(&mut roster, 8, &mut shards);
        assert_eq!(roster.slot(id(0)), Some(0));
        // Removing a running shard forgets it, but its slot drains on.
        assert!(matches!(roster.remove(id(1), CloseMode::Final), Removed::Running(_)));
        roster.check();
        assert!(!roster.ids().contains(&id(1)));
        assert!(matches!(roster.remove(id(1), CloseMode::Final), Removed::Unknown));
        assert_eq!(roster.slot(id(1)), Some(1));
        roster.stopped(id(1));
        roster.slot_ended(id(1), 1);
        roster.check();
        assert_eq!(roster.slot(id(1)), None);
        assert!(!roster.entries.contains_key(&id(1)), "nothing left: the entry is gone");
        // A slot that ended is forgotten only if it is the shard's current one.
        roster.slot_ended(id(2), 7);
        assert_eq!(roster.slot(id(2)), Some(2));
        // Removing a waiting shard hands back its session when resumable.
        assert!(roster.add(id(5)));
        assert!(roster.add(id(4)));
        let Removed::NotRunning(Some(back)) = roster.remove(id(5), CloseMode::Resumable) else { panic!() };
        assert_eq!(back, session(5).session);
        roster.check();
        // Closing everything: the waiting shard's and the running ones' fates.
        let (sessions, running) = roster.remove_where(|_| true, CloseMode::Resumable);
        roster.check();
        assert!(sessions.is_empty());
        let mut closing: Vec<ShardId> = running.iter().map(ShardHandle::id).collect();
        closing.sort();
        assert_eq!(closing, [id(0), id(2)]);
        assert!(roster.ids().is_empty());
        assert!(!roster.has_waiting());
        for (shard, slot) in [(id(0), 0), (id(2), 2)] {
            roster.stopped(shard);
            roster.slot_ended(shard, slot);
        }
        roster.check();
        assert!(roster.entries.is_empty());
    }

    #[test]
    fn a_restart_goes_back_in_line_with_its_session() {
        let mut shards = Vec::new();
        let mut roster = Roster::new([], (0..3).map(id));
        start_all(&mut roster, 1, &mut shards);
        // Shard 0 holds the only connecting slot; 1 and 2 wait.
        let resumed = session(0).session;
        roster.requeue(id(0), Some(resumed.clone()));
        roster.check();
        assert_eq!(roster.line, [id(1), id(2), id(0)], "behind the shards already waiting");
        assert_eq!(roster.status(id(0)), Some(Status::Connecting { resume: true }));
        assert!(roster.handle(id(0)).is_none(), "no handle while it waits: the old connection is closed");
        // One already waiting keeps its place (and takes a session given now).
        roster.requeue(id(1), None);
        roster.check();
        assert_eq!(roster.line, [id(1), id(2), id(0)]);
        shards[0].mark_ended();
        // One at a time: each frees the slot once its socket is open (here: ended).
        let mut started = Vec::new();
        for _ in 0..3 {
            started.extend(start_all(&mut roster, 1, &mut shards));
            shards.last().map(Shard::mark_ended);
        }
        assert_eq!(started, [(id(1), None), (id(2), None), (id(0), Some(resumed))]);
        assert_eq!(roster.slot(id(0)), Some(0), "the same slot, behind its old connection");
        // A stopped shard goes back in line too.
        roster.stopped(id(2));
        roster.requeue(id(2), None);
        roster.check();
        assert_eq!(roster.status(id(2)), Some(Status::Connecting { resume: false }));
    }

    #[test]
    fn a_shard_whose_connection_cannot_be_built_keeps_its_session() {
        let mut roster = Roster::new([session(2)], [id(2), id(3)]);
        let (shard, resume) = roster.next_to_start(8).unwrap();
        assert_eq!((shard, resume.clone()), (id(2), Some(session(2).session)));
        roster.not_started(shard, resume);
        roster.check();
        assert!(!roster.ids().contains(&id(2)), "it is not in the group");
        let (next, _) = roster.next_to_start(8).unwrap();
        roster.not_started(next, None);
        roster.check();
        // A resumable close hands the unused session back; added again, it resumes it.
        assert!(roster.add(id(2)));
        assert_eq!(roster.next_to_start(8), Some((id(2), Some(session(2).session))));
        roster.not_started(id(2), Some(session(2).session));
        let (sessions, running) = roster.remove_where(|_| true, CloseMode::Resumable);
        assert_eq!(sessions, [session(2)]);
        assert!(running.is_empty());
        roster.check();
        assert!(roster.entries.is_empty());
    }

    #[test]
    fn closing_a_total_hands_back_the_sessions_of_shards_that_never_ran() {
        let other = ShardId::new(0, 2).unwrap();
        let given = Session { id: "other".into(), seq: 1, resume_url: None };
        let mut roster = Roster::new([session(3), ShardSession { shard: other, session: given.clone() }], [id(3)]);
        let (sessions, running) = roster.remove_where(|shard| shard.total == 2, CloseMode::Resumable);
        assert_eq!(sessions, [ShardSession { shard: other, session: given }]);
        assert!(running.is_empty());
        let (sessions, _) = roster.remove_where(|_| true, CloseMode::Final);
        assert!(sessions.is_empty(), "a final close drops them");
        roster.check();
        assert!(roster.entries.is_empty());
    }
}
