//! The partition leader's view of its followers: each follower's durable log end (the
//! offset it fetches from, since a follower syncs what it appended before fetching
//! again) and when it was last caught up. Deterministic: the caller passes the clock.
//!
//! - The high watermark is the least durable log end over the ISR (R-REPL-1).
//! - A follower that has not caught up for `lag_max_ms` leaves the ISR; one that has
//!   caught up with the high watermark joins it (R-REPL-2), judged only by fetches
//!   served at the partition's current partition epoch: a replica that left the ISR
//!   to repair damage (R-REPL-4) cuts its log after that, and a fetch from before
//!   must not bring it back.

use std::collections::BTreeMap;

use crate::log::PartitionLog;

/// Where a follower cuts its log once its leader answered OffsetForLeaderEpoch for
/// the follower's last epoch with `answer` (the leader's largest epoch at or below
/// it, and where that ends in the leader's log; `None`: the leader has no such
/// epoch). When the leader's epoch is older than the one asked about, the records
/// here from later epochs are not the leader's even below its end offset, so the
/// cut is also where that epoch ends here (Kafka's KIP-279; found by the
/// replication model: a follower kept a record the new leader never had).
pub fn truncation_point(log: &PartitionLog, answer: Option<(i32, u64)>) -> u64 {
    match answer {
        None => log.log_start_offset(),
        Some((epoch, leader_end)) => {
            let own = log
                .end_offset_for_epoch(epoch)
                .map_or(log.log_start_offset(), |(_, end)| end);
            leader_end.min(own)
        }
    }
}

/// [`truncation_point`] from OffsetForLeaderEpoch as the wire carries its answer:
/// a leader epoch of -1 (or a negative end) means the leader has no such epoch.
pub fn truncation_point_for_answer(log: &PartitionLog, leader_epoch: i32, end_offset: i64) -> u64 {
    let answer =
        (leader_epoch >= 0 && end_offset >= 0).then_some((leader_epoch, end_offset as u64));
    truncation_point(log, answer)
}

/// One follower's Fetch as its leader takes it: the follower fetches from its
/// durable log end and reports its log start (Kafka's Fetch `log_start_offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetch {
    pub follower: i32,
    pub fetch_offset: u64,
    pub log_start: u64,
}

#[derive(Debug, Clone, Copy)]
struct Follower {
    log_end: u64,
    /// Below this the follower holds nothing (DeleteRecords, retention); a record
    /// deleted on the leader is deleted everywhere once every live replica's start
    /// passed it.
    log_start: u64,
    caught_up_ms: u64,
    /// The partition epoch the leader's metadata showed when it served that fetch.
    partition_epoch: u64,
}

#[derive(Debug, Clone, Default)]
pub struct FollowerTracker {
    /// The leader epoch this tracker belongs to; a new epoch starts afresh.
    epoch: i32,
    /// When this broker became leader in `epoch`.
    since_ms: u64,
    followers: BTreeMap<i32, Follower>,
}

impl FollowerTracker {
    pub fn new(epoch: i32, now_ms: u64) -> Self {
        FollowerTracker {
            epoch,
            since_ms: now_ms,
            followers: BTreeMap::new(),
        }
    }

    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// A follower fetched from `fetch_offset` while the leader's log ended at
    /// `leader_end` and its metadata showed `partition_epoch`.
    pub fn on_fetch(
        &mut self,
        follower: i32,
        fetch_offset: u64,
        leader_end: u64,
        partition_epoch: u64,
        now_ms: u64,
    ) {
        let entry = self.followers.entry(follower).or_insert(Follower {
            log_end: 0,
            log_start: 0,
            caught_up_ms: 0,
            partition_epoch,
        });
        entry.log_end = fetch_offset;
        entry.partition_epoch = partition_epoch;
        if fetch_offset >= leader_end {
            entry.caught_up_ms = now_ms;
        }
    }

    /// A follower reported its log start; true if it moved on (a DeleteRecords
    /// waiting for it may now be answered).
    pub fn on_log_start(&mut self, follower: i32, log_start: u64) -> bool {
        let Some(entry) = self.followers.get_mut(&follower) else {
            return false;
        };
        let moved = log_start > entry.log_start;
        entry.log_start = log_start;
        moved
    }

    /// Kafka's low watermark: the least log start over this leader (`own_start`) and
    /// every other replica in `replicas`; one that has not fetched in this epoch
    /// counts as starting at 0, so nothing it may still need is deleted.
    pub fn low_watermark(&self, own_start: u64, replicas: &[i32], leader: Option<i32>) -> u64 {
        replicas
            .iter()
            .filter(|r| Some(**r) != leader)
            .map(|r| self.followers.get(r).map_or(0, |f| f.log_start))
            .fold(own_start, u64::min)
    }

    pub fn follower_end(&self, follower: i32) -> Option<u64> {
        self.followers.get(&follower).map(|f| f.log_end)
    }

    /// The least durable log end over the ISR; `own_end` is the leader's.
    pub fn high_watermark(&self, own_end: u64, isr: &[i32], me: i32) -> u64 {
        isr.iter()
            .filter(|r| **r != me)
            .map(|r| self.followers.get(r).map_or(0, |f| f.log_end))
            .fold(own_end, u64::min)
    }

    /// The ISR the leader should propose, if it differs from `isr` (the ISR at
    /// `partition_epoch`): lagging followers dropped, caught-up live replicas added.
    /// The leader stays in it.
    #[allow(clippy::too_many_arguments)]
    pub fn wanted_isr(
        &self,
        (isr, partition_epoch): (&[i32], u64),
        replicas: &[i32],
        live: &[i32],
        me: i32,
        high_watermark: u64,
        now_ms: u64,
        lag_max_ms: u64,
    ) -> Option<Vec<i32>> {
        let lagging = |r: &i32| {
            let last = self
                .followers
                .get(r)
                .map_or(self.since_ms, |f| f.caught_up_ms.max(self.since_ms));
            now_ms.saturating_sub(last) > lag_max_ms
        };
        let caught_up = |r: &i32| {
            self.followers.get(r).is_some_and(|f| {
                f.partition_epoch == partition_epoch
                    && f.log_end >= high_watermark
                    && now_ms.saturating_sub(f.caught_up_ms) <= lag_max_ms
            })
        };
        let wanted: Vec<i32> = replicas
            .iter()
            .copied()
            .filter(|r| {
                *r == me
                    || (live.contains(r)
                        && if isr.contains(r) {
                            !lagging(r)
                        } else {
                            caught_up(r)
                        })
            })
            .collect();
        let mut current = isr.to_vec();
        current.sort_unstable();
        let mut sorted = wanted.clone();
        sorted.sort_unstable();
        (sorted != current).then_some(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_repl_1_high_watermark_is_the_least_durable_end_over_the_isr() {
        let mut t = FollowerTracker::new(1, 0);
        assert_eq!(t.high_watermark(10, &[1], 1), 10);
        assert_eq!(t.high_watermark(10, &[1, 2, 3], 1), 0);
        t.on_fetch(2, 7, 10, 0, 5);
        t.on_fetch(3, 9, 10, 0, 5);
        assert_eq!(t.high_watermark(10, &[1, 2, 3], 1), 7);
        assert_eq!(t.high_watermark(10, &[1, 3], 1), 9);
        assert_eq!(t.high_watermark(8, &[1, 3], 1), 8);
    }

    #[test]
    fn r_wire_5_the_low_watermark_waits_for_every_replica_to_report_its_log_start() {
        let mut t = FollowerTracker::new(1, 0);
        assert_eq!(t.low_watermark(8, &[1], Some(1)), 8);
        assert_eq!(
            t.low_watermark(8, &[1, 2, 3], Some(1)),
            0,
            "nobody reported yet"
        );
        t.on_fetch(2, 10, 10, 0, 5);
        t.on_fetch(3, 10, 10, 0, 5);
        assert!(t.on_log_start(2, 8));
        assert!(!t.on_log_start(2, 8), "no move, nothing to wake");
        assert_eq!(t.low_watermark(8, &[1, 2, 3], Some(1)), 0);
        assert!(t.on_log_start(3, 5));
        assert_eq!(t.low_watermark(8, &[1, 2, 3], Some(1)), 5);
        assert_eq!(t.low_watermark(8, &[1, 2], Some(1)), 8);
    }

    #[test]
    fn r_repl_2_lagging_followers_leave_and_caught_up_ones_join_the_isr() {
        let mut t = FollowerTracker::new(1, 0);
        let replicas = [1, 2, 3];
        let live = [1, 2, 3];
        // Within the lag bound at the start of the epoch, nobody leaves.
        assert_eq!(
            t.wanted_isr((&[1, 2, 3], 0), &replicas, &live, 1, 0, 100, 1000),
            None
        );
        t.on_fetch(2, 10, 10, 0, 1500);
        // Follower 3 never caught up: it leaves after the bound.
        assert_eq!(
            t.wanted_isr((&[1, 2, 3], 0), &replicas, &live, 1, 10, 1600, 1000),
            Some(vec![1, 2])
        );
        // It catches up with the high watermark and comes back.
        t.on_fetch(3, 10, 10, 1, 1700);
        assert_eq!(
            t.wanted_isr((&[1, 2], 1), &replicas, &live, 1, 10, 1700, 1000),
            Some(vec![1, 2, 3])
        );
        // A fenced replica is never added.
        assert_eq!(
            t.wanted_isr((&[1, 2], 1), &replicas, &[1, 2], 1, 10, 1700, 1000),
            None
        );
    }

    #[test]
    fn r_repl_4_only_a_fetch_at_the_current_partition_epoch_brings_a_replica_back() {
        let mut t = FollowerTracker::new(1, 0);
        let replicas = [1, 2];
        // Caught up at partition epoch 4; then it left the ISR to repair (epoch 5).
        t.on_fetch(2, 10, 10, 4, 100);
        assert_eq!(
            t.wanted_isr((&[1], 5), &replicas, &replicas, 1, 10, 200, 1000),
            None
        );
        // A fetch served after its repair counts, once it is caught up again.
        t.on_fetch(2, 3, 10, 5, 300);
        assert_eq!(
            t.wanted_isr((&[1], 5), &replicas, &replicas, 1, 10, 300, 1000),
            None
        );
        t.on_fetch(2, 10, 10, 5, 400);
        assert_eq!(
            t.wanted_isr((&[1], 5), &replicas, &replicas, 1, 10, 400, 1000),
            Some(vec![1, 2])
        );
    }
}
