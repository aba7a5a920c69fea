//! The server-side assignors of KIP-848: `uniform` (Kafka's default: balanced, and
//! sticky: a member keeps what it had as far as balance allows) and `range`
//! (contiguous runs per topic). Both per topic, over the members subscribed to it, in
//! member-id order, so the result is deterministic.

use super::{Assignment, TopicId, TopicsView};
use std::collections::{BTreeMap, BTreeSet};

/// (member id, its subscribed topics).
pub type Subscriptions<'a> = Vec<(&'a str, &'a BTreeSet<String>)>;

pub fn assign(
    assignor: &str,
    members: &Subscriptions<'_>,
    topics: &TopicsView,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let mut target: BTreeMap<String, Assignment> = members
        .iter()
        .map(|(id, _)| (id.to_string(), Assignment::new()))
        .collect();
    for (name, (topic_id, count)) in topics {
        let subscribers: Vec<&str> = members
            .iter()
            .filter(|(_, subscribed)| subscribed.contains(name))
            .map(|(id, _)| *id)
            .collect();
        if subscribers.is_empty() || *count == 0 {
            continue;
        }
        let shares = match assignor {
            "range" => range(&subscribers, *count),
            _ => uniform(&subscribers, *count, *topic_id, previous),
        };
        for (member, partitions) in shares {
            if !partitions.is_empty() {
                if let Some(a) = target.get_mut(member) {
                    a.insert(*topic_id, partitions);
                }
            }
        }
    }
    target
}

/// How many partitions each of `n` members gets: `count / n`, one more for the first
/// `count % n`.
fn quotas(n: usize, count: u32) -> Vec<usize> {
    let count = count as usize;
    (0..n)
        .map(|i| count / n + usize::from(i < count % n))
        .collect()
}

fn range<'a>(subscribers: &[&'a str], count: u32) -> Vec<(&'a str, BTreeSet<i32>)> {
    let mut next = 0i32;
    subscribers
        .iter()
        .zip(quotas(subscribers.len(), count))
        .map(|(member, quota)| {
            let run: BTreeSet<i32> = (next..next + quota as i32).collect();
            next += quota as i32;
            (*member, run)
        })
        .collect()
}

fn uniform<'a>(
    subscribers: &[&'a str],
    count: u32,
    topic: TopicId,
    previous: &BTreeMap<String, Assignment>,
) -> Vec<(&'a str, BTreeSet<i32>)> {
    // Members that held more keep more: the larger quotas go to them first.
    let had = |m: &str| -> BTreeSet<i32> {
        previous
            .get(m)
            .and_then(|a| a.get(&topic))
            .map(|ps| ps.iter().copied().filter(|p| *p < count as i32).collect())
            .unwrap_or_default()
    };
    let mut order: Vec<&str> = subscribers.to_vec();
    order.sort_by_key(|m| std::cmp::Reverse(had(m).len()));
    let mut taken = BTreeSet::new();
    let mut shares: Vec<(&str, BTreeSet<i32>, usize)> = order
        .iter()
        .zip(quotas(order.len(), count))
        .map(|(m, quota)| {
            let kept: BTreeSet<i32> = had(m)
                .into_iter()
                .filter(|p| !taken.contains(p))
                .take(quota)
                .collect();
            taken.extend(kept.iter().copied());
            (*m, kept, quota)
        })
        .collect();
    let mut free = (0..count as i32).filter(|p| !taken.contains(p));
    for (_, kept, quota) in &mut shares {
        while kept.len() < *quota {
            match free.next() {
                Some(p) => {
                    kept.insert(p);
                }
                None => break,
            }
        }
    }
    shares.into_iter().map(|(m, ps, _)| (m, ps)).collect()
}
