//! DescribeLogDirs (API 35, `kafka-log-dirs.sh --describe`, GUIs' topic sizes): which
//! of the partition logs this broker holds an answer lists, and with what, as Kafka's
//! `ReplicaManager.describeLogDirs` answers for a log directory.

use std::collections::{BTreeMap, BTreeSet};

/// What the broker knows of one partition log it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldLog {
    pub topic: String,
    pub partition: i32,
    pub size_bytes: u64,
    pub log_end_offset: u64,
    pub high_watermark: u64,
}

/// One partition of the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribedLog {
    pub partition: i32,
    pub size_bytes: i64,
    /// Kafka's offset lag of a current (not future) log: how far its end is behind
    /// the high watermark, which for a log that holds its own high watermark is 0.
    pub offset_lag: i64,
}

/// The partitions asked for by topic; `None` asks for every partition held.
pub type Asked = Option<BTreeMap<String, BTreeSet<i32>>>;

/// The held logs an answer lists, by topic name: those asked for (all with `None`),
/// topics with no partition listed left out. Partitions asked for and not held here
/// are not listed, as Kafka lists none.
pub fn describe_held(held: &[HeldLog], asked: &Asked) -> BTreeMap<String, Vec<DescribedLog>> {
    let mut topics: BTreeMap<String, Vec<DescribedLog>> = BTreeMap::new();
    for log in held {
        let wanted = asked.as_ref().is_none_or(|asked| {
            asked
                .get(&log.topic)
                .is_some_and(|partitions| partitions.contains(&log.partition))
        });
        if !wanted {
            continue;
        }
        let lag = log.high_watermark.saturating_sub(log.log_end_offset);
        topics
            .entry(log.topic.clone())
            .or_default()
            .push(DescribedLog {
                partition: log.partition,
                size_bytes: i64::try_from(log.size_bytes).unwrap_or(i64::MAX),
                offset_lag: i64::try_from(lag).unwrap_or(i64::MAX),
            });
    }
    for partitions in topics.values_mut() {
        partitions.sort_by_key(|p| p.partition);
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(topic: &str, partition: i32, size_bytes: u64) -> HeldLog {
        HeldLog {
            topic: topic.into(),
            partition,
            size_bytes,
            log_end_offset: 10,
            high_watermark: 8,
        }
    }

    #[test]
    fn every_held_log_without_a_list_and_only_those_asked_with_one() {
        let logs = [held("a", 1, 300), held("a", 0, 100), held("b", 0, 7)];
        let all = describe_held(&logs, &None);
        assert_eq!(all.len(), 2);
        let a: Vec<(i32, i64)> = all["a"]
            .iter()
            .map(|p| (p.partition, p.size_bytes))
            .collect();
        assert_eq!(a, [(0, 100), (1, 300)]);
        assert_eq!(
            all["a"][0].offset_lag, 0,
            "a log ahead of its high watermark lags 0"
        );
        let asked: Asked = Some(BTreeMap::from([
            ("a".to_string(), BTreeSet::from([1, 5])),
            ("c".to_string(), BTreeSet::from([0])),
        ]));
        let some = describe_held(&logs, &asked);
        assert_eq!(
            some.keys().collect::<Vec<_>>(),
            ["a"],
            "no topic without partitions"
        );
        assert_eq!(some["a"].len(), 1);
        assert_eq!(some["a"][0].partition, 1);
    }
}
