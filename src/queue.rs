//! The bounded hand-off between a shard's driver and its stream.
//!
//! A ring behind a mutex with two wakers: unlike futures' `mpsc`, it
//! allocates nothing per item once warm (one allocation per dispatch is the
//! budget, and the dispatch's own text takes it).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

struct Inner<T> {
    items: VecDeque<T>,
    capacity: usize,
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

/// A queue holding at most `capacity` items.
pub(crate) fn bounded<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let shared = Arc::new(Mutex::new(Inner {
        // Grows on demand and keeps its size: idle shards stay small, busy
        // ones stop allocating once warm.
        items: VecDeque::new(),
        capacity: capacity.max(1),
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
    pub(crate) fn try_push(&self, item: T, cx: &mut Context<'_>) -> Result<Option<T>, Gone> {
        let mut inner = lock(&self.shared);
        if inner.consumer_gone {
            return Err(Gone);
        }
        if inner.items.len() >= inner.capacity {
            inner.producer = Some(cx.waker().clone());
            return Ok(Some(item));
        }
        inner.items.push_back(item);
        wake(&mut inner.consumer);
        Ok(None)
    }

    /// Pushes `item`, waiting for room. `Err(Gone)` if the consumer was dropped.
    pub(crate) async fn push(&self, item: T) -> Result<(), Gone> {
        let mut slot = Some(item);
        std::future::poll_fn(|cx| match slot.take() {
            Some(item) => match self.try_push(item, cx)? {
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
        if let Some(item) = inner.items.pop_front() {
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
    use futures::task::noop_waker;

    #[test]
    fn items_arrive_in_order_and_the_bound_holds() {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let (producer, mut consumer) = bounded(2);
        assert!(matches!(producer.try_push(1, &mut cx), Ok(None)));
        assert!(matches!(producer.try_push(2, &mut cx), Ok(None)));
        assert!(matches!(producer.try_push(3, &mut cx), Ok(Some(3))), "full: handed back");
        assert_eq!(consumer.poll_next(&mut cx), Poll::Ready(Some(1)));
        assert!(matches!(producer.try_push(3, &mut cx), Ok(None)));
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
        let (producer, consumer) = bounded::<u8>(1);
        drop(consumer);
        assert!(producer.try_push(1, &mut cx).is_err());
    }
}
