//! The bounded hand-off between a shard's driver and its stream.
//!
//! A ring behind a mutex with two wakers: unlike futures' `mpsc`, it
//! allocates nothing per item once warm (one allocation per dispatch is the
//! budget, and the dispatch's own text takes it).
//!
//! Bounded twice: by a count of items and by the heap bytes they keep
//! alive, so a burst of megabyte payloads cannot queue hundreds of them. An
//! item is always accepted into an empty queue, so one payload larger than
//! the byte bound still passes; the queue then holds at most the byte bound
//! plus one item. A ring that a burst grew past 64 slots is given back
//! once the burst is over (a fill-and-drain cycle that needed few slots).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// A ring larger than `4 × KEEP_SLOTS` slots is shrunk back to this many
/// once it drains after a fill-and-drain cycle that needed no more than
/// this many: busy traffic keeps its ring, a burst gives its growth back
/// when it is over.
const KEEP_SLOTS: usize = 16;

struct Inner<T> {
    /// Items with the bytes each keeps alive.
    items: VecDeque<(T, usize)>,
    capacity: usize,
    /// Bytes of the items queued now, and the bound on them.
    bytes: usize,
    /// The most items queued since the ring last drained.
    peak: usize,
    max_bytes: usize,
    consumer: Option<Waker>,
    producer: Option<Waker>,
    producer_gone: bool,
    consumer_gone: bool,
}

fn lock<T>(shared: &Mutex<Inner<T>>) -> MutexGuard<'_, Inner<T>> {
    // Nothing panics while holding the lock; recover the data regardless.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn wake(waker: &mut Option<Waker>) {
    if let Some(waker) = waker.take() {
        waker.wake();
    }
}

/// The driver's end.
pub(crate) struct Producer<T> {
    shared: Arc<Mutex<Inner<T>>>,
}

/// The stream's end.
pub(crate) struct Consumer<T> {
    shared: Arc<Mutex<Inner<T>>>,
    finished: bool,
}

/// A queue holding at most `capacity` items and, past its first item, at
/// most `max_bytes` bytes.
pub(crate) fn bounded<T>(capacity: usize, max_bytes: usize) -> (Producer<T>, Consumer<T>) {
    let shared = Arc::new(Mutex::new(Inner {
        // Grows on demand and keeps its size: idle shards stay small, busy
        // ones stop allocating once warm.
        items: VecDeque::new(),
        capacity: capacity.max(1),
        bytes: 0,
        peak: 0,
        max_bytes,
        consumer: None,
        producer: None,
        producer_gone: false,
        consumer_gone: false,
    }));
    (Producer { shared: Arc::clone(&shared) }, Consumer { shared, finished: false })
}

/// The consumer is gone: nothing will read what is pushed.
#[derive(Debug)]
pub(crate) struct Gone;

impl<T> Producer<T> {
    /// Pushes `item` if there is room, else hands it back (waking this task
    /// when room appears). `Err(Gone)` once the consumer was dropped.
    /// `weight` is the heap bytes the item keeps alive.
    pub(crate) fn try_push(&self, item: T, weight: usize, cx: &mut Context<'_>) -> Result<Option<T>, Gone> {
        let mut inner = lock(&self.shared);
        if inner.consumer_gone {
            return Err(Gone);
        }
        let full = inner.items.len() >= inner.capacity || (inner.bytes >= inner.max_bytes && !inner.items.is_empty());
        if full {
            inner.producer = Some(cx.waker().clone());
            return Ok(Some(item));
        }
        inner.items.push_back((item, weight));
        inner.bytes = inner.bytes.saturating_add(weight);
        inner.peak = inner.peak.max(inner.items.len());
        wake(&mut inner.consumer);
        Ok(None)
    }

    /// Pushes `item`, waiting for room. `Err(Gone)` if the consumer was dropped.
    pub(crate) async fn push(&self, item: T, weight: usize) -> Result<(), Gone> {
        let mut slot = Some(item);
        std::future::poll_fn(|cx| match slot.take() {
            Some(item) => match self.try_push(item, weight, cx)? {
                None => Poll::Ready(Ok(())),
                Some(back) => {
                    slot = Some(back);
                    Poll::Pending
                }
            },
            None => Poll::Ready(Ok(())),
        })
        .await
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        let mut inner = lock(&self.shared);
        inner.producer_gone = true;
        wake(&mut inner.consumer);
    }
}

impl<T> Consumer<T> {
    /// The next item; `None` once the producer is gone and the queue drained.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let mut inner = lock(&self.shared);
        if let Some((item, weight)) = inner.items.pop_front() {
            inner.bytes = inner.bytes.saturating_sub(weight);
            if inner.items.is_empty() {
                if inner.peak <= KEEP_SLOTS && inner.items.capacity() > 4 * KEEP_SLOTS {
                    inner.items.shrink_to(KEEP_SLOTS);
                }
                inner.peak = 0;
            }
            wake(&mut inner.producer);
            return Poll::Ready(Some(item));
        }
        if inner.producer_gone {
            drop(inner);
            self.finished = true;
            return Poll::Ready(None);
        }
        inner.consumer = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Whether `poll_next` has returned `None`.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        let mut inner = lock(&self.shared);
        inner.consumer_gone = true;
        inner.items.clear();
        wake(&mut inner.producer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker;

    #[test]
    fn items_arrive_in_order_and_the_bound_holds() {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let (producer, mut consumer) = bounded(2, usize::MAX);
        assert!(matches!(producer.try_push(1, 0, &mut cx), Ok(None)));
        assert!(matches!(producer.try_push(2, 0, &mut cx), Ok(None)));
        assert!(matches!(producer.try_push(3, 0, &mut cx), Ok(Some(3))), "full: handed back");
        assert_eq!(consumer.poll_next(&mut cx), Poll::Ready(Some(1)));
        assert!(matches!(producer.try_push(3, 0, &mut cx), Ok(None)));
        assert_eq!(consumer.poll_next(&mut cx), Poll::Ready(Some(2)));
        assert_eq!(consumer.poll_next(&mut cx), Poll::Ready(Some(3)));
        assert_eq!(consumer.poll_next(&mut cx), Poll::Pending);
        drop(producer);
        assert_eq!(consumer.poll_next(&mut cx), Poll::Ready(None));
        assert!(consumer.is_finished());
    }

    #[test]
    fn a_dropped_consumer_is_reported_to_the_producer() {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let (producer, consumer) = bounded::<u8>(1, usize::MAX);
        drop(consumer);
        assert!(producer.try_push(1, 0, &mut cx).is_err());
    }

    #[test]
    fn the_byte_bound_holds_past_the_first_item() {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let (producer, mut consumer) = bounded(100, 1000);
        // One item larger than the bound still passes an empty queue ...
        assert!(matches!(producer.try_push(1, 5000, &mut cx), Ok(None)));
        // ... and nothing joins it until it is taken.
        assert!(matches!(producer.try_push(2, 1, &mut cx), Ok(Some(2))));
        assert_eq!(consumer.poll_next(&mut cx), Poll::Ready(Some(1)));
        assert!(matches!(producer.try_push(2, 600, &mut cx), Ok(None)));
        assert!(matches!(producer.try_push(3, 600, &mut cx), Ok(None)), "under the bound before it");
        assert!(matches!(producer.try_push(4, 1, &mut cx), Ok(Some(4))), "1,200 bytes queued: full");
        assert_eq!(consumer.poll_next(&mut cx), Poll::Ready(Some(2)));
        assert!(matches!(producer.try_push(4, 1, &mut cx), Ok(None)));
    }

    #[test]
    fn a_ring_grown_by_a_burst_is_given_back_once_drained() {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let (producer, mut consumer) = bounded(1000, usize::MAX);
        for n in 0..500 {
            assert!(matches!(producer.try_push(n, 0, &mut cx), Ok(None)));
        }
        assert!(lock(&consumer.shared).items.capacity() >= 500);
        for n in 0..500 {
            assert_eq!(consumer.poll_next(&mut cx), Poll::Ready(Some(n)));
        }
        // Drained after a big cycle: traffic may still be busy, keep the ring.
        assert!(lock(&consumer.shared).items.capacity() >= 500);
        // A cycle that needed only a few slots: the burst is over.
        assert!(matches!(producer.try_push(1, 0, &mut cx), Ok(None)));
        assert_eq!(consumer.poll_next(&mut cx), Poll::Ready(Some(1)));
        assert!(lock(&consumer.shared).items.capacity() <= KEEP_SLOTS);
        // A ring of 64 slots or fewer is never shrunk.
        for n in 0..60 {
            assert!(matches!(producer.try_push(n, 0, &mut cx), Ok(None)));
        }
        for n in 0..60 {
            assert_eq!(consumer.poll_next(&mut cx), Poll::Ready(Some(n)));
        }
        assert!(matches!(producer.try_push(1, 0, &mut cx), Ok(None)));
        assert_eq!(consumer.poll_next(&mut cx), Poll::Ready(Some(1)));
        assert!(lock(&consumer.shared).items.capacity() >= 60);
    }
}
