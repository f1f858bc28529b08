//! One shard id's place in the group's merge: its current connection and
//! the ones that replace it, in order.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;

use crate::dispatch::Dispatch;
use crate::error::ShardError;
use crate::shard::Shard;
use crate::shard_id::ShardId;
use crate::store::Ack;

/// The streams of one shard id, one after the other: a restarted (or
/// removed and re-added) shard's new connection yields nothing until the
/// old one has handed over every dispatch it had received, so the shard's
/// dispatches stay in `s` order. The waiting ones are driven all the same.
pub(crate) struct Slot {
    id: ShardId,
    current: Shard,
    next: VecDeque<Shard>,
}

impl Slot {
    pub(crate) fn new(shard: Shard) -> Slot {
        Slot { id: shard.id(), current: shard, next: VecDeque::new() }
    }

    pub(crate) fn id(&self) -> ShardId {
        self.id
    }

    /// Queues `shard` behind the current one.
    pub(crate) fn push(&mut self, shard: Shard) {
        self.next.push_back(shard);
    }

    /// Whether a newer connection waits behind the current one.
    pub(crate) fn has_successor(&self) -> bool {
        !self.next.is_empty()
    }

    /// The acknowledgement of the dispatch just yielded (see [`Shard::last_ack`]).
    pub(crate) fn last_ack(&self) -> Option<Ack> {
        self.current.last_ack()
    }

    /// Marks every connection of the slot ended (see [`Shard::mark_ended`]).
    pub(crate) fn mark_ended(&self) {
        self.current.mark_ended();
        for shard in &self.next {
            shard.mark_ended();
        }
    }
}

impl Stream for Slot {
    type Item = Result<Dispatch, ShardError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        for waiting in &mut this.next {
            waiting.poll_drive(cx);
        }
        loop {
            match Pin::new(&mut this.current).poll_next(cx) {
                Poll::Ready(None) => {
                    this.current.mark_ended();
                    match this.next.pop_front() {
                        Some(successor) => this.current = successor,
                        None => return Poll::Ready(None),
                    }
                }
                other => return other,
            }
        }
    }
}
