//! How records learn their fate: one completion per batch, read by every
//! record's future.
//!
//! A batch's [`BatchCell`] is resolved once, with the batch's base offset
//! (or its error); a record's [`DeliveryFuture`] holds the cell and its
//! index in the batch and derives its own offset. That is one allocation
//! per batch instead of a channel per record. [`Completion`] is the
//! sender's end: dropping it unresolved (the producer's runtime shutting
//! down) resolves the batch with [`Error::Closed`], so no future hangs.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};
use crate::record::RecordMetadata;

/// Where a batch went.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Acked {
    /// Offset of its first record; -1 when produced with `Acks::None`.
    pub base_offset: i64,
    /// The broker's timestamp on log-append-time topics, else -1.
    pub log_append_time_ms: i64,
}

/// A batch's outcome, shared by its records' futures.
#[derive(Debug, Default)]
pub(crate) struct BatchCell {
    outcome: OnceLock<Result<Acked>>,
    /// One slot per waiting future, by its slot number, so a future polled
    /// again replaces its waker instead of adding one.
    wakers: Mutex<Vec<Option<Waker>>>,
}

impl BatchCell {
    fn resolve(&self, outcome: Result<Acked>) {
        if self.outcome.set(outcome).is_ok() {
            let wakers = std::mem::take(&mut *self.wakers.lock().expect("wakers lock"));
            for w in wakers.into_iter().flatten() {
                w.wake();
            }
        }
    }

    fn poll_slot(&self, slot: usize, cx: &mut Context<'_>) -> Poll<&Result<Acked>> {
        if let Some(o) = self.outcome.get() {
            return Poll::Ready(o);
        }
        let mut wakers = self.wakers.lock().expect("wakers lock");
        // Resolved while we took the lock: `resolve` sets the outcome
        // before it takes the wakers.
        if let Some(o) = self.outcome.get() {
            return Poll::Ready(o);
        }
        if wakers.len() <= slot {
            wakers.resize_with(slot + 1, || None);
        }
        match &mut wakers[slot] {
            Some(w) if w.will_wake(cx.waker()) => {}
            other => *other = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// The sender's end of a batch's cell.
#[derive(Debug)]
pub(crate) struct Completion(pub(crate) Arc<BatchCell>);

impl Completion {
    pub(crate) fn new() -> Self {
        Self(Arc::new(BatchCell::default()))
    }

    pub(crate) fn resolve(&self, outcome: Result<Acked>) {
        self.0.resolve(outcome);
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        // A no-op once resolved.
        self.0.resolve(Err(Error::Closed));
    }
}

/// Where one record of a batch is.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub cell: Arc<BatchCell>,
    pub topic: Arc<str>,
    pub partition: u32,
    /// The record's index in its batch.
    pub index: u32,
    pub timestamp_ms: i64,
}

impl Slot {
    fn metadata(&self, acked: &Acked, index: u32, timestamp_ms: i64) -> RecordMetadata {
        RecordMetadata {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: if acked.base_offset < 0 {
                -1
            } else {
                acked.base_offset + i64::from(index)
            },
            timestamp_ms: if acked.log_append_time_ms >= 0 {
                acked.log_append_time_ms
            } else {
                timestamp_ms
            },
        }
    }
}

/// Resolves to where the record was stored, or why it was not.
#[derive(Debug)]
pub struct DeliveryFuture(pub(crate) Slot);

impl DeliveryFuture {
    /// The partition the record went to.
    pub fn partition(&self) -> u32 {
        self.0.partition
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let s = &self.0;
        s.cell.poll_slot(s.index as usize, cx).map(|o| match o {
            Ok(acked) => Ok(s.metadata(acked, s.index, s.timestamp_ms)),
            Err(e) => Err(e.clone()),
        })
    }
}

/// A run of consecutive records of one [`super::Producer::send_all`] call
/// in one batch, or one record refused before it reached a batch.
#[derive(Debug)]
enum Part {
    Run {
        slot: Slot,
        /// Records in the run; their timestamps are in `timestamps`.
        count: u32,
    },
    Refused(Error),
}

/// Resolves, once every record of a [`super::Producer::send_all`] call is
/// resolved, to a result per record, in the order given.
#[derive(Debug, Default)]
pub struct BatchDelivery {
    parts: Vec<Part>,
    /// Each record's timestamp, in order (refused records included).
    timestamps: Vec<i64>,
    /// Parts found resolved so far.
    ready: usize,
}

impl BatchDelivery {
    pub(crate) fn push(&mut self, slot: Slot) {
        self.timestamps.push(slot.timestamp_ms);
        if let Some(Part::Run { slot: last, count }) = self.parts.last_mut()
            && Arc::ptr_eq(&last.cell, &slot.cell)
            && last.index + *count == slot.index
        {
            *count += 1;
            return;
        }
        self.parts.push(Part::Run { slot, count: 1 });
    }

    pub(crate) fn refuse(&mut self, e: Error) {
        self.timestamps.push(-1);
        self.parts.push(Part::Refused(e));
    }

    /// Records in the call.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether the call had no records.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }
}

impl Future for BatchDelivery {
    type Output = Vec<Result<RecordMetadata>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        while let Some(part) = this.parts.get(this.ready) {
            if let Part::Run { slot, .. } = part
                && slot.cell.poll_slot(slot.index as usize, cx).is_pending()
            {
                return Poll::Pending;
            }
            this.ready += 1;
        }
        let mut out = Vec::with_capacity(this.timestamps.len());
        let mut ts = this.timestamps.iter();
        for part in &this.parts {
            match part {
                Part::Refused(e) => {
                    ts.next();
                    out.push(Err(e.clone()));
                }
                Part::Run { slot, count } => {
                    let outcome = slot.cell.outcome.get().expect("resolved above");
                    for i in 0..*count {
                        let t = *ts.next().expect("a timestamp per record");
                        out.push(match outcome {
                            Ok(acked) => Ok(slot.metadata(acked, slot.index + i, t)),
                            Err(e) => Err(e.clone()),
                        });
                    }
                }
            }
        }
        Poll::Ready(out)
    }
}
