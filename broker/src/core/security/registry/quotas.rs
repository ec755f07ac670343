//! Quotas in the security state: which entity's rate a call runs under
//! (Kafka's precedence), charging its bucket, and setting and listing
//! them. A child of [`super`] so it shares the state's one writer.

use super::{Security, full};
use crate::core::BrokerError;
use crate::core::security::principal::Principal;
use crate::core::security::quota::{QuotaKind, QuotaRates, Throttled};
use crate::core::security::store::QuotaValue;

impl Security {
    /// The quota of `kind` a call of `p` from client `client_id` ("": it
    /// sent none) runs under: its rate and the bucket it shares, named by
    /// the entity that set it. Kafka's order, most specific first: the
    /// principal with the client id, the principal, the client id (any
    /// principal), then the `--quota-*` defaults (a bucket per principal).
    /// Each kind falls through separately where an entity leaves it unset.
    pub fn quota_of(
        &self,
        p: &Principal,
        client_id: &str,
        kind: QuotaKind,
    ) -> Option<(u64, String)> {
        let inner = self.read();
        let default = self.limits.default_quotas.of(kind);
        // Cheapest first: most brokers set no quotas at all.
        if inner.state.quotas.is_empty() {
            return default.map(|rate| (rate, p.to_string()));
        }
        let name = p.to_string();
        let entities = [
            (name.as_str(), client_id),
            (name.as_str(), ""),
            ("", client_id),
        ];
        for (principal, client) in entities {
            if client.is_empty() && principal.is_empty() {
                continue;
            }
            let set = inner
                .state
                .quotas
                .iter()
                .find(|q| q.principal == principal && q.client_id == client);
            if let Some(rate) = set.and_then(|q| rates_of(q).of(kind)) {
                return Some((rate, format!("{principal}/{client}")));
            }
        }
        default.map(|rate| (rate, name))
    }

    /// Takes `cost` of the `kind` quota of `p` from `client_id` now, or
    /// says how long to wait. Super users are not throttled.
    pub fn charge(
        &self,
        p: &Principal,
        client_id: &str,
        kind: QuotaKind,
        cost: u64,
        now_ms: u64,
    ) -> Result<(), Throttled> {
        let Some((rate, key)) = self.quota_of(p, client_id, kind) else {
            return Ok(());
        };
        if self.is_super_user(p) {
            return Ok(());
        }
        self.quotas
            .take(&key, kind, &QuotaRates::only(kind, rate), cost, now_ms)
    }

    /// Takes `cost` after the fact (possibly into debt); see
    /// [`Quotas::take_after`].
    pub fn charge_after(
        &self,
        p: &Principal,
        client_id: &str,
        kind: QuotaKind,
        cost: u64,
        now_ms: u64,
    ) {
        if let Some((rate, key)) = self.quota_of(p, client_id, kind)
            && !self.is_super_user(p)
        {
            self.quotas
                .take_after(&key, kind, &QuotaRates::only(kind, rate), cost, now_ms);
        }
    }

    /// Sets (or, with every rate unset, removes) the quotas of `principal`
    /// (`User:alice`, or "" for any) with `client_id` ("" for any); not
    /// both empty: the defaults are flags.
    pub fn set_quota(
        &self,
        principal: &str,
        client_id: &str,
        rates: QuotaRates,
    ) -> Result<(), BrokerError> {
        if !principal.is_empty() {
            Principal::parse(principal, false)?;
        }
        if principal.is_empty() && client_id.is_empty() {
            return Err(BrokerError::InvalidArgument(
                "a quota names a principal, a client id or both (the defaults are the --quota-* flags)".into(),
            ));
        }
        if client_id.len() > CLIENT_ID_BYTES_MAX {
            return Err(BrokerError::InvalidArgument(format!(
                "client id longer than client_id_bytes_max ({CLIENT_ID_BYTES_MAX})"
            )));
        }
        self.mutate(|_, s| {
            s.quotas
                .retain(|q| q.principal != principal || q.client_id != client_id);
            if rates != QuotaRates::default() {
                if s.quotas.len() >= self.limits.users_max {
                    return Err(full(
                        "security_users_max",
                        self.limits.users_max,
                        "a quota".into(),
                    ));
                }
                s.quotas.push(QuotaValue {
                    principal: principal.into(),
                    client_id: client_id.into(),
                    produce_bytes_per_sec: rates.produce_bytes_per_sec,
                    fetch_bytes_per_sec: rates.fetch_bytes_per_sec,
                    requests_per_sec: rates.requests_per_sec,
                });
            }
            Ok(())
        })
    }

    /// Every entity's own quotas (principal, client id, rates), and the
    /// defaults.
    pub fn list_quotas(&self) -> (Vec<(String, String, QuotaRates)>, QuotaRates) {
        let own = self
            .read()
            .state
            .quotas
            .iter()
            .map(|q| (q.principal.clone(), q.client_id.clone(), rates_of(q)))
            .collect();
        (own, self.limits.default_quotas)
    }
}

/// The longest client id a call may send (`strata-client-id`) or a quota
/// may name (client_id_bytes_max; Kafka's is a 16-bit length).
pub const CLIENT_ID_BYTES_MAX: usize = 255;

fn rates_of(q: &QuotaValue) -> QuotaRates {
    QuotaRates {
        produce_bytes_per_sec: q.produce_bytes_per_sec,
        fetch_bytes_per_sec: q.fetch_bytes_per_sec,
        requests_per_sec: q.requests_per_sec,
    }
}
