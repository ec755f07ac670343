//! Failed authentication attempts, limited per client address: an address
//! may fail `per_min` times in a minute (a token bucket holding a minute's
//! worth), after which its attempts are refused before any credential is
//! checked, with the time until its next try. Success costs nothing, so a
//! client with good credentials is never slowed by the limit; a client
//! guessing is slowed to `per_min` guesses a minute.
//!
//! Memory is bounded: at most `addresses_max` addresses are tracked; when
//! that many are, the ones whose buckets have refilled are forgotten, and
//! if none has, the new address is refused as if it had failed (a flood of
//! addresses cannot push out the ones being limited).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use super::quota::Bucket;

// The bucket counts in 60ths of a failure, so that `per_min` failures a
// minute is `per_min` units a second and a full bucket is a minute's worth.
const WINDOW_MS: u64 = 60_000;
const COST: u64 = 60;

/// Failed attempts per address.
#[derive(Debug)]
pub struct FailureLimit {
    /// Failures a minute an address may make.
    pub per_min: u64,
    addresses_max: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl FailureLimit {
    /// `per_min` failures a minute per address, `addresses_max` tracked.
    pub fn new(per_min: u64, addresses_max: usize) -> Self {
        Self {
            per_min: per_min.max(1),
            addresses_max: addresses_max.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` if `ip` may try now, else the ms until it may.
    pub fn check(&self, ip: IpAddr, now_ms: u64) -> Result<(), u64> {
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !b.contains_key(&ip) && b.len() >= self.addresses_max {
            let limited = b
                .values()
                .all(|bucket| !bucket.is_full(self.per_min, WINDOW_MS, now_ms));
            return if limited {
                Err(WINDOW_MS.div_ceil(self.per_min))
            } else {
                Ok(())
            };
        }
        match b.get_mut(&ip) {
            None => Ok(()),
            Some(bucket) => bucket.fits(self.per_min, WINDOW_MS, COST, now_ms),
        }
    }

    /// Counts a failed attempt of `ip`.
    pub fn failed(&self, ip: IpAddr, now_ms: u64) {
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !b.contains_key(&ip) && b.len() >= self.addresses_max {
            let (rate, window) = (self.per_min, WINDOW_MS);
            b.retain(|_, bucket| !bucket.is_full(rate, window, now_ms));
        }
        if !b.contains_key(&ip) && b.len() >= self.addresses_max {
            return;
        }
        let bucket = b
            .entry(ip)
            .or_insert_with(|| Bucket::full(self.per_min, WINDOW_MS, now_ms));
        let _ = bucket.take(self.per_min, WINDOW_MS, COST, now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_slowed_to_its_rate_and_others_are_not() {
        let limit = FailureLimit::new(3, 100);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert!(limit.check(a, 0).is_ok());
            limit.failed(a, 0);
        }
        assert_eq!(
            limit.check(a, 0),
            Err(20_000),
            "a minute holds 3: one every 20 s"
        );
        assert!(limit.check(b, 0).is_ok(), "another address is apart");
        assert!(limit.check(a, 20_000).is_ok(), "20 s later, one more try");
        limit.failed(a, 20_000);
        assert!(limit.check(a, 20_001).is_err());
    }

    #[test]
    fn the_table_is_bounded_without_forgetting_the_limited() {
        let limit = FailureLimit::new(1, 2);
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        limit.failed(ip(1), 0);
        limit.failed(ip(2), 0);
        limit.failed(ip(3), 0); // no room: nobody has refilled
        assert!(limit.check(ip(1), 0).is_err(), "the limited stay limited");
        assert!(
            limit.check(ip(4), 0).is_err(),
            "new addresses are refused while full"
        );
        // A minute later both refilled: room again.
        limit.failed(ip(3), 60_000);
        assert!(limit.check(ip(3), 60_000).is_err());
        assert!(limit.check(ip(1), 60_000).is_ok());
        assert!(limit.check(ip(4), 60_000).is_ok());
    }
}
