//! The Strata client: producer, consumer and admin.
//!
//! Not built yet (issue 4). It depends on `strata-proto` only, never on the
//! broker: it builds record batches with [`strata_proto::BatchBuilder`] and
//! will speak to the broker over gRPC.

pub use strata_proto as proto;
