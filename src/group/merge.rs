//! A fair merge of many streams: round robin among the ones with items ready.
//!
//! `futures::stream::SelectAll` allocates a task per item it yields; this
//! keeps one waker per stream and a queue of ready indices, so a merged
//! dispatch costs no allocation, and a busy stream goes to the back of the
//! queue after each item so it cannot starve the others.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use futures_util::Stream;

/// What [`Merge::poll_next`] yields.
pub(crate) enum Merged<S: Stream> {
    /// An item of the stream at this key.
    Item(usize, S::Item),
    /// The stream at this key ended and was removed.
    Ended(usize, S),
}

/// Indices of streams that were woken, and the merge's own waker.
#[derive(Default)]
struct ReadyQueue {
    queue: Mutex<VecDeque<usize>>,
    parent: AtomicWaker,
}

impl ReadyQueue {
    fn push(&self, index: usize) {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push_back(index);
        self.parent.wake();
    }

    fn pop(&self) -> Option<usize> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front()
    }
}

/// One stream's waker: queues its index once until it is polled again.
struct EntryWaker {
    index: usize,
    queued: AtomicBool,
    ready: Arc<ReadyQueue>,
}

impl Wake for EntryWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.push(self.index);
        }
    }
}

struct Entry<S> {
    stream: S,
    flag: Arc<EntryWaker>,
    waker: Waker,
}

/// Many streams polled as one, fairly.
pub(crate) struct Merge<S> {
    entries: Vec<Option<Entry<S>>>,
    free: Vec<usize>,
    ready: Arc<ReadyQueue>,
    len: usize,
}

impl<S: Stream + Unpin> Merge<S> {
    pub(crate) fn new() -> Merge<S> {
        Merge { entries: Vec::new(), free: Vec::new(), ready: Arc::default(), len: 0 }
    }

    /// Adds a stream; it is polled on the next `poll_next`. Returns its key.
    pub(crate) fn insert(&mut self, stream: S) -> usize {
        let index = self.free.pop().unwrap_or(self.entries.len());
        let flag = Arc::new(EntryWaker { index, queued: AtomicBool::new(true), ready: Arc::clone(&self.ready) });
        let entry = Entry { stream, waker: Waker::from(Arc::clone(&flag)), flag };
        if index == self.entries.len() {
            self.entries.push(Some(entry));
        } else {
            self.entries[index] = Some(entry);
        }
        self.len += 1;
        self.ready.push(index);
        index
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut S> {
        Some(&mut self.entries.get_mut(key)?.as_mut()?.stream)
    }

    /// Polls the stream at `key` again on the next `poll_next` (after it was
    /// polled elsewhere, e.g. driven by `Shard::close`, whose wakers were not ours).
    pub(crate) fn wake(&self, key: usize) {
        if let Some(Some(entry)) = self.entries.get(key) {
            entry.waker.wake_by_ref();
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn remove(&mut self, key: usize) -> Option<S> {
        let entry = self.entries.get_mut(key)?.take()?;
        self.free.push(key);
        self.len -= 1;
        Some(entry.stream)
    }

    /// The next item of any stream, round robin among ready ones;
    /// `Ready(None)` when no stream is left.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Merged<S>>> {
        self.ready.parent.register(cx.waker());
        // Bound the work per call: streams that wake themselves while being
        // polled must not keep this loop spinning.
        let mut budget = self.len.saturating_mul(2).max(1);
        loop {
            if self.len == 0 {
                return Poll::Ready(None);
            }
            let Some(index) = self.ready.pop() else { return Poll::Pending };
            // A stale index (the stream since removed) is skipped; one whose
            // slot was reused only costs a spurious poll.
            let Some(entry) = self.entries.get_mut(index).and_then(Option::as_mut) else { continue };
            entry.flag.queued.store(false, Ordering::Release);
            let mut entry_cx = Context::from_waker(&entry.waker);
            match Pin::new(&mut entry.stream).poll_next(&mut entry_cx) {
                Poll::Ready(Some(item)) => {
                    // It may have more: back of the queue, behind the others.
                    entry.waker.wake_by_ref();
                    return Poll::Ready(Some(Merged::Item(index, item)));
                }
                Poll::Ready(None) => {
                    if let Some(stream) = self.remove(index) {
                        return Poll::Ready(Some(Merged::Ended(index, stream)));
                    }
                }
                Poll::Pending => {
                    budget -= 1;
                    if budget == 0 {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream::{self, StreamExt};

    fn drain<S: Stream + Unpin>(merge: &mut Merge<S>) -> Vec<(usize, S::Item)> {
        // Every test stream is always ready: a no-op waker suffices.
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut out = Vec::new();
        loop {
            match merge.poll_next(&mut cx) {
                Poll::Ready(Some(Merged::Item(key, item))) => out.push((key, item)),
                Poll::Ready(Some(Merged::Ended(..))) => {}
                Poll::Ready(None) | Poll::Pending => return out,
            }
        }
    }

    #[test]
    fn a_busy_stream_alternates_with_the_others() {
        let mut merge = Merge::new();
        let busy = merge.insert(stream::iter(0..100).boxed());
        let quiet = merge.insert(stream::iter(100..103).boxed());
        let out = drain(&mut merge);
        assert_eq!(out.len(), 103);
        let first_six: Vec<usize> = out.iter().take(6).map(|(key, _)| *key).collect();
        assert_eq!(first_six, vec![busy, quiet, busy, quiet, busy, quiet]);
        assert!(merge.is_empty());
    }

    #[test]
    fn removed_slots_are_reused_without_mixing_streams() {
        let mut merge = Merge::new();
        merge.insert(stream::iter(vec![1]).boxed());
        assert_eq!(drain(&mut merge), vec![(0, 1)]);
        let key = merge.insert(stream::iter(vec![7, 8]).boxed());
        assert_eq!(key, 0);
        assert_eq!(drain(&mut merge), vec![(0, 7), (0, 8)]);
    }
}
