//! Assignors: which member of a group should own which partition.
//!
//! Pure functions from the members' subscriptions, the partition counts and
//! the previous target to the next target. The group (`super::group`) then
//! moves partitions toward the target safely, revoking before assigning.
//! Every assignor gives each partition of a subscribed topic to exactly one
//! member that subscribes to it, and every member appears in the result.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::error::{BrokerError, Result};

pub use strata_proto::partitions::Tp;

/// Members' subscriptions: member id to topics.
pub type Subscriptions = BTreeMap<String, BTreeSet<String>>;

/// An assignment: member id to partitions.
pub type Assignment = BTreeMap<String, BTreeSet<Tp>>;

/// How a group spreads partitions over its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Assignor {
    /// Balanced, and moves as few partitions as it can when members come
    /// and go (Kafka's `uniform` server assignor). The default.
    #[default]
    Sticky,
    /// Per topic, contiguous ranges of partitions to members sorted by id.
    Range,
    /// All partitions, sorted, dealt to members in turn.
    RoundRobin,
}

impl Assignor {
    /// Every assignor's name.
    pub const NAMES: &'static str = "sticky, range, roundrobin";

    /// Parses a name; empty means the default.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "" | "sticky" | "uniform" => Ok(Self::Sticky),
            "range" => Ok(Self::Range),
            "roundrobin" | "round-robin" => Ok(Self::RoundRobin),
            other => Err(BrokerError::InvalidArgument(format!(
                "unknown assignor {other:?} (known: {})",
                Self::NAMES
            ))),
        }
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sticky => "sticky",
            Self::Range => "range",
            Self::RoundRobin => "roundrobin",
        }
    }

    /// The target assignment. `counts` holds the partition count of every
    /// topic that exists (a subscribed topic that does not is skipped);
    /// `previous` is the last target, which the sticky assignor keeps as
    /// much of as balance allows.
    pub fn assign(
        self,
        members: &Subscriptions,
        counts: &BTreeMap<String, u32>,
        previous: &Assignment,
    ) -> Assignment {
        let mut out: Assignment = members
            .keys()
            .map(|m| (m.clone(), BTreeSet::new()))
            .collect();
        match self {
            Self::Range => range(members, counts, &mut out),
            Self::RoundRobin => round_robin(members, counts, &mut out),
            Self::Sticky => sticky(members, counts, previous, &mut out),
        }
        out
    }
}

/// Every partition of every subscribed, existing topic, sorted.
fn subscribed_partitions(members: &Subscriptions, counts: &BTreeMap<String, u32>) -> Vec<Tp> {
    let topics: BTreeSet<&String> = members.values().flatten().collect();
    topics
        .into_iter()
        .filter_map(|t| counts.get(t).map(|&n| (t, n)))
        .flat_map(|(t, n)| (0..n).map(move |p| (t.clone(), p)))
        .collect()
}

fn range(members: &Subscriptions, counts: &BTreeMap<String, u32>, out: &mut Assignment) {
    let topics: BTreeSet<&String> = members.values().flatten().collect();
    for topic in topics {
        let Some(&n) = counts.get(topic) else {
            continue;
        };
        let subs: Vec<&String> = members
            .iter()
            .filter(|(_, t)| t.contains(topic))
            .map(|(m, _)| m)
            .collect();
        let (each, extra) = (n / subs.len() as u32, n % subs.len() as u32);
        let mut next = 0;
        for (i, m) in subs.into_iter().enumerate() {
            let take = each + u32::from((i as u32) < extra);
            let set = out.get_mut(m).expect("every member is in the output");
            set.extend((next..next + take).map(|p| (topic.clone(), p)));
            next += take;
        }
    }
}

fn round_robin(members: &Subscriptions, counts: &BTreeMap<String, u32>, out: &mut Assignment) {
    let ids: Vec<&String> = members.keys().collect();
    let mut turn = 0;
    for tp in subscribed_partitions(members, counts) {
        // The next member in turn that subscribes to the topic; one exists,
        // since the partition comes from a subscription.
        for _ in 0..ids.len() {
            let m = ids[turn % ids.len()];
            turn += 1;
            if members[m].contains(&tp.0) {
                out.get_mut(m).expect("member").insert(tp);
                break;
            }
        }
    }
}

fn sticky(
    members: &Subscriptions,
    counts: &BTreeMap<String, u32>,
    previous: &Assignment,
    out: &mut Assignment,
) {
    let valid = |m: &String, tp: &Tp| {
        members[m].contains(&tp.0) && counts.get(&tp.0).is_some_and(|&n| tp.1 < n)
    };
    // Keep what each member had, where it still may have it.
    let mut taken: BTreeSet<Tp> = BTreeSet::new();
    for (m, tps) in previous {
        if !members.contains_key(m) {
            continue;
        }
        for tp in tps {
            if valid(m, tp) && taken.insert(tp.clone()) {
                out.get_mut(m).expect("member").insert(tp.clone());
            }
        }
    }
    // Hand out the rest, each to the least loaded member that may take it.
    for tp in subscribed_partitions(members, counts) {
        if taken.contains(&tp) {
            continue;
        }
        let m = out
            .iter()
            .filter(|(m, _)| members[*m].contains(&tp.0))
            .min_by_key(|(m, set)| (set.len(), (*m).clone()))
            .map(|(m, _)| m.clone())
            .expect("a subscriber exists");
        out.get_mut(&m).expect("member").insert(tp);
    }
    // Balance: move one partition at a time from a member with at least two
    // more than another that may take it. Each move lowers the sum of
    // squared loads, so this ends; it moves only what balance needs.
    loop {
        let mut by_load: Vec<(usize, String)> =
            out.iter().map(|(m, s)| (s.len(), m.clone())).collect();
        by_load.sort();
        let mut moved = false;
        'search: for (hi_load, hi) in by_load.iter().rev() {
            for (lo_load, lo) in by_load.iter() {
                if *hi_load < lo_load + 2 {
                    break;
                }
                let candidate = out[hi]
                    .iter()
                    .rev()
                    .find(|tp| members[lo].contains(&tp.0))
                    .cloned();
                if let Some(tp) = candidate {
                    out.get_mut(hi).expect("member").remove(&tp);
                    out.get_mut(lo).expect("member").insert(tp);
                    moved = true;
                    break 'search;
                }
            }
        }
        if !moved {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn subs(members: &[(&str, &[&str])]) -> Subscriptions {
        members
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn counts(c: &[(&str, u32)]) -> BTreeMap<String, u32> {
        c.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn loads(a: &Assignment) -> Vec<usize> {
        a.values().map(|s| s.len()).collect()
    }

    #[test]
    fn range_gives_contiguous_blocks_per_topic() {
        let m = subs(&[("a", &["t"]), ("b", &["t"])]);
        let a = Assignor::Range.assign(&m, &counts(&[("t", 5)]), &Assignment::new());
        let parts = |m: &str| a[m].iter().map(|tp| tp.1).collect::<Vec<_>>();
        assert_eq!(parts("a"), vec![0, 1, 2]);
        assert_eq!(parts("b"), vec![3, 4]);
    }

    #[test]
    fn sticky_moves_only_what_balance_needs_when_a_member_joins() {
        let c = counts(&[("t", 6)]);
        let three = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let before = Assignor::Sticky.assign(&three, &c, &Assignment::new());
        assert_eq!(loads(&before), vec![2, 2, 2]);
        let four = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"]), ("d", &["t"])]);
        let after = Assignor::Sticky.assign(&four, &c, &before);
        let mut l = loads(&after);
        l.sort();
        assert_eq!(l, vec![1, 1, 2, 2]);
        let moved: usize = before
            .iter()
            .map(|(m, s)| s.difference(&after[m]).count())
            .sum();
        // 2,2,2 -> 2,2,1,1: one partition moves, to the newcomer.
        assert_eq!(moved, 1, "{before:?} -> {after:?}");
    }

    #[test]
    fn unknown_topics_and_unsubscribed_members_get_nothing() {
        let m = subs(&[("a", &["missing"]), ("b", &["t"])]);
        for kind in [Assignor::Sticky, Assignor::Range, Assignor::RoundRobin] {
            let a = kind.assign(&m, &counts(&[("t", 2)]), &Assignment::new());
            assert!(a["a"].is_empty(), "{kind:?}");
            assert_eq!(a["b"].len(), 2, "{kind:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        /// Every assignor covers each subscribed partition exactly once, with
        /// a subscriber; range and sticky stay balanced on uniform
        /// subscriptions; sticky keeps what the previous target had where
        /// balance allows.
        #[test]
        fn assignments_are_complete_exclusive_and_balanced(
            members in proptest::collection::btree_map("[a-f]", proptest::collection::btree_set("[xyz]", 1..3), 1..6),
            nx in 0u32..8, ny in 0u32..8, nz in 0u32..5,
            leaving in "[a-f]",
        ) {
            let c = counts(&[("x", nx), ("y", ny), ("z", nz)]);
            let expected: BTreeSet<Tp> = subscribed_partitions(&members, &c).into_iter().collect();
            for kind in [Assignor::Sticky, Assignor::Range, Assignor::RoundRobin] {
                let a = kind.assign(&members, &c, &Assignment::new());
                let mut seen = BTreeSet::new();
                for (m, tps) in &a {
                    for tp in tps {
                        prop_assert!(members[m].contains(&tp.0));
                        prop_assert!(seen.insert(tp.clone()), "{tp:?} given twice by {kind:?}");
                    }
                }
                prop_assert_eq!(&seen, &expected);
            }
            let uniform = members.values().all(|t| t == members.values().next().unwrap());
            let first = Assignor::Sticky.assign(&members, &c, &Assignment::new());
            let mut fewer = members.clone();
            fewer.remove(&leaving);
            if fewer.is_empty() {
                return Ok(());
            }
            let second = Assignor::Sticky.assign(&fewer, &c, &first);
            if uniform {
                let l = loads(&second);
                prop_assert!(l.iter().max().unwrap() - l.iter().min().unwrap() <= 1, "{second:?}");
                // A member that stays loses nothing when another leaves.
                for (m, s) in &second {
                    prop_assert!(first[m].is_subset(s), "{m} lost partitions: {first:?} -> {second:?}");
                }
            }
        }
    }
}
