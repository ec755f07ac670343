//! Sets of partitions as the API carries them: `TopicPartitions`, one entry
//! per topic with its partition numbers. The broker and the client both
//! convert between that and flat `(topic, partition)` pairs.

use std::collections::BTreeSet;

use crate::v1::TopicPartitions;

/// A topic and a partition.
pub type Tp = (String, u32);

/// Groups `(topic, partition)` pairs by topic, in the order given (pass
/// them sorted to get one entry per topic).
pub fn by_topic<'a>(tps: impl IntoIterator<Item = &'a Tp>) -> Vec<TopicPartitions> {
    let mut out: Vec<TopicPartitions> = Vec::new();
    for (topic, partition) in tps {
        match out.last_mut() {
            Some(t) if &t.topic == topic => t.partitions.push(*partition),
            _ => out.push(TopicPartitions {
                topic: topic.clone(),
                partitions: vec![*partition],
            }),
        }
    }
    out
}

/// The pairs in `tps`, as a set.
pub fn flatten(tps: Vec<TopicPartitions>) -> BTreeSet<Tp> {
    tps.into_iter()
        .flat_map(|t| {
            let topic = t.topic;
            t.partitions.into_iter().map(move |p| (topic.clone(), p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_and_flattening_round_trip() {
        let set: BTreeSet<Tp> = [("a".into(), 2), ("a".into(), 0), ("b".into(), 1)].into();
        let grouped = by_topic(&set);
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped[0].partitions, vec![0, 2]);
        assert_eq!(flatten(grouped), set);
    }
}
