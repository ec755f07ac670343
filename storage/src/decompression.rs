//! The broker-wide bound on memory that decompressed batches hold while an
//! append validates them. Each compressed batch reserves its log's
//! `batch_decompressed_bytes_max` before it is decompressed (its real size
//! is only known afterwards) and gives it back when validation is done;
//! an append that would go past `decompression_bytes_max` waits on its
//! blocking thread until others finish. Without it, every append in
//! flight could hold a decompression bomb's worth at once.
//!
//! **Invariant:** the bytes reserved never exceed `bytes_max`; a single
//! reservation larger than `bytes_max` is cut to it (a log's limit is
//! checked against the budget when the broker starts, so this only
//! happens in tests).

use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// The default `decompression_bytes_max`: four batches at the default
/// `batch_decompressed_bytes_max` at once.
pub const DECOMPRESSION_BYTES_MAX_DEFAULT: usize = 256 << 20;

/// Bytes that decompressed batches may hold at once.
#[derive(Debug)]
pub struct DecompressionBudget {
    bytes_max: usize,
    in_use: Mutex<usize>,
    freed: Condvar,
}

impl DecompressionBudget {
    /// A budget of `bytes_max` (at least 1).
    pub fn new(bytes_max: usize) -> Arc<Self> {
        Arc::new(Self {
            bytes_max: bytes_max.max(1),
            in_use: Mutex::new(0),
            freed: Condvar::new(),
        })
    }

    /// The budget's size.
    pub fn bytes_max(&self) -> usize {
        self.bytes_max
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> usize {
        *self.in_use.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `bytes` fit, and holds them until the reservation drops.
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Reservation {
        let bytes = bytes.min(self.bytes_max);
        let mut in_use = self.in_use.lock().unwrap_or_else(PoisonError::into_inner);
        while *in_use + bytes > self.bytes_max {
            in_use = self
                .freed
                .wait(in_use)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *in_use += bytes;
        Reservation {
            budget: self.clone(),
            bytes,
        }
    }
}

/// Bytes of a [`DecompressionBudget`], given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<DecompressionBudget>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut in_use = self
            .budget
            .in_use
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *in_use -= self.bytes;
        self.budget.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_waits_for_room_and_gives_it_back() {
        let budget = DecompressionBudget::new(10);
        let a = budget.reserve(6);
        let (tx, rx) = std::sync::mpsc::channel();
        let b2 = budget.clone();
        let waiter = std::thread::spawn(move || {
            let r = b2.reserve(6);
            tx.send(b2.in_use()).unwrap();
            drop(r);
        });
        // The waiter cannot get in while `a` holds 6 of 10.
        assert!(rx.try_recv().is_err());
        assert_eq!(budget.in_use(), 6);
        drop(a);
        assert_eq!(
            rx.recv().unwrap(),
            6,
            "the waiter got its 6 once a gave back"
        );
        waiter.join().unwrap();
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.reserve(99).bytes, 10, "cut to the budget");
    }
}
