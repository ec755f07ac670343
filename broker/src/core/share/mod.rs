//! Share groups (work queues on the log): any number of members read the
//! same partitions, and each record is leased to one member at a time and
//! acknowledged on its own. Issue 17; what is here so far:
//!
//! - [`partition`]: one share partition's record states, without I/O:
//!   leases named by their delivery, acks (accept, release with a delay,
//!   reject, renew), expiry, retries with exponential backoff and jitter,
//!   the delivery limit and dead letters, the in-flight limit on leased
//!   records, and poison isolation.
//!
//! Not yet: persistence through the groups log, the coordinator's share
//! groups and sessions, the dead-letter topic, the gRPC API, the client.

pub mod partition;
