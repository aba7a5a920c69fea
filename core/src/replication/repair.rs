//! Repair of a damaged copy of a partition from its replicas (R-REPL-4).
//!
//! A replica whose log has a damaged range that held records (R-LOG-13) gets them
//! back by cutting its log below the damage and fetching again. Cutting drops
//! records the high watermark may count on, so the copy first leaves the ISR, and a
//! leader first hands leadership to another ISR member, through one metadata
//! command (`RepairReplica`). Only once that is applied does the copy cut. A sole
//! copy cannot be repaired this way: it keeps serving every undamaged offset, and
//! `chronik check-data --quarantine` is the operator's way out.
//!
//! The decisions are a function of the copy's progress, the applied partition
//! metadata and the clock; the replica fetcher (followers) and the ISR upkeep
//! (leaders) carry them out.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{PartitionKey, ReplicationBugs};
use crate::errors::ErrorCode;
use crate::metadata::{MetadataCommand, PartitionInfo};

/// How long a proposal may stay unanswered, or a refused one rest, before the
/// next one.
const RETRY_MS: u64 = 1_000;
/// A leader that is the only ISR member asks again this rarely: a follower may
/// have joined the ISR since, but it cannot while it needs the damaged records.
const SOLE_COPY_RETRY_MS: u64 = 10_000;
/// The code a `RepairReplica` is refused with when no other ISR member can lead.
const NOT_ENOUGH_REPLICAS: ErrorCode = crate::errors::NOT_ENOUGH_REPLICAS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    Proposed {
        at_ms: u64,
    },
    /// `RepairReplica` was applied: the copy left the ISR (and leadership).
    Applied,
    Refused {
        at_ms: u64,
        rest_ms: u64,
    },
    /// The only copy in the ISR: no one to repair from (said once).
    SoleCopy,
}

/// What a copy of a partition does about its damage now.
#[derive(Debug, Clone, PartialEq)]
pub enum RepairStep {
    /// No damaged range lost records.
    Healthy,
    /// Propose this `RepairReplica`, then report its outcome.
    Propose(MetadataCommand),
    /// Waiting for the proposal, or a sole copy: a follower does not fetch the
    /// partition meanwhile (a fetch would count towards rejoining the ISR); a
    /// leader serves what is undamaged.
    Wait,
    /// Out of the ISR and not leading: cut the log to this offset, then fetch.
    Cut(u64),
}

/// The repairs under way on this broker.
#[derive(Debug, Default)]
pub struct Repairs {
    progress: Mutex<BTreeMap<PartitionKey, Progress>>,
    bugs: ReplicationBugs,
}

impl Repairs {
    /// The same, with test-only faults.
    #[cfg(feature = "inject-bugs")]
    pub fn with_bugs(bugs: ReplicationBugs) -> Self {
        Repairs {
            bugs,
            ..Repairs::default()
        }
    }

    /// The next step for this broker's (`me`) copy of `key`, whose first lost offset
    /// is `lost_from`, with the partition as the applied metadata shows it.
    pub fn next_step(
        &self,
        key: &PartitionKey,
        info: &PartitionInfo,
        me: i32,
        lost_from: Option<u64>,
        now_ms: u64,
    ) -> RepairStep {
        let mut progress = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        let Some(from) = lost_from else {
            progress.remove(key);
            return RepairStep::Healthy;
        };
        if self.bugs.cut_damage_in_isr && info.leader != Some(me) {
            return RepairStep::Cut(from);
        }
        if info.leader == Some(me) && !others_may_hold(info, me) {
            if progress.insert(key.clone(), Progress::SoleCopy) != Some(Progress::SoleCopy) {
                warn_sole_copy(key);
            }
            return RepairStep::Wait;
        }
        let step = decide(progress.get(key).copied(), key, info, me, from, now_ms);
        if let RepairStep::Propose(_) = step {
            tracing::warn!(
                topic = %key.0,
                partition = key.1,
                lost_from = from,
                leads = info.leader == Some(me),
                "damaged copy: leaving the ISR to repair it from a replica"
            );
            progress.insert(key.clone(), Progress::Proposed { at_ms: now_ms });
        }
        step
    }

    /// What became of a proposed `RepairReplica`: applied, or refused with `code`
    /// (`None`: no answer, it may yet be applied).
    pub fn outcome(&self, key: &PartitionKey, refused: Option<Option<ErrorCode>>, now_ms: u64) {
        let mut progress = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        let next = match refused {
            None => Progress::Applied,
            Some(Some(NOT_ENOUGH_REPLICAS)) => {
                warn_sole_copy(key);
                Progress::Refused {
                    at_ms: now_ms,
                    rest_ms: SOLE_COPY_RETRY_MS,
                }
            }
            Some(_) => Progress::Refused {
                at_ms: now_ms,
                rest_ms: RETRY_MS,
            },
        };
        progress.insert(key.clone(), next);
    }

    /// The copy was cut below its damage: it is a follower like any other now.
    pub fn cut_done(&self, key: &PartitionKey) {
        let mut progress = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        progress.remove(key);
    }
}

/// Another replica may hold what this copy lost: an ISR member, or an eligible one
/// (R-REPL-6: it holds everything committed). Then a copy short of records takes no
/// write and answers no OffsetForLeaderEpoch, and its repair can hand over; without
/// one it is the sole copy.
pub fn others_may_hold(info: &PartitionInfo, me: i32) -> bool {
    info.isr.iter().chain(&info.elr).any(|r| *r != me)
}

/// A leader whose copy lost records (damage, or a tail its recovery cut) drops no
/// member from the ISR while another holds them: its followers lag because it cannot
/// serve them (a damaged range, a refused OffsetForLeaderEpoch), and dropping them
/// would leave it the sole copy of records it lacks, free to write over them. Its
/// repair hands leadership over instead.
pub fn holds_isr(lost_from: Option<u64>, info: &PartitionInfo, me: i32) -> bool {
    lost_from.is_some() && info.isr.iter().any(|r| *r != me)
}

fn warn_sole_copy(key: &PartitionKey) {
    tracing::warn!(
        topic = %key.0,
        partition = key.1,
        "copy short of records (damaged, or a tail recovery cut) is the only one that \
         holds the partition: it serves what it holds and takes writes; a damaged range \
         stays until `chronik check-data --quarantine` on a stopped broker gives it up"
    );
}

fn decide(
    progress: Option<Progress>,
    key: &PartitionKey,
    info: &PartitionInfo,
    me: i32,
    from: u64,
    now_ms: u64,
) -> RepairStep {
    let out_of_isr = info.leader != Some(me) && !info.isr.contains(&me);
    match progress {
        Some(Progress::Applied) if out_of_isr => RepairStep::Cut(from),
        Some(Progress::Proposed { at_ms }) if now_ms.saturating_sub(at_ms) < RETRY_MS => {
            RepairStep::Wait
        }
        Some(Progress::Refused { at_ms, rest_ms }) if now_ms.saturating_sub(at_ms) < rest_ms => {
            RepairStep::Wait
        }
        _ => RepairStep::Propose(MetadataCommand::RepairReplica {
            topic: key.0.clone(),
            partition: key.1,
            broker_id: me,
            leader_epoch: info.leader_epoch,
            partition_epoch: info.partition_epoch,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(leader: i32, isr: &[i32], partition_epoch: u64) -> PartitionInfo {
        PartitionInfo {
            leader: Some(leader),
            leader_epoch: 3,
            isr: isr.to_vec(),
            elr: Vec::new(),
            unverified: Vec::new(),
            replicas: vec![1, 2, 3],
            partition_epoch,
        }
    }

    fn key() -> PartitionKey {
        ("t".to_string(), 0)
    }

    #[test]
    fn r_repl_4_a_damaged_copy_cuts_only_after_it_left_the_isr() {
        let repairs = Repairs::default();
        let in_isr = partition(1, &[1, 2, 3], 7);
        assert_eq!(
            repairs.next_step(&key(), &in_isr, 2, None, 0),
            RepairStep::Healthy
        );
        let step = repairs.next_step(&key(), &in_isr, 2, Some(40), 0);
        assert_eq!(
            step,
            RepairStep::Propose(MetadataCommand::RepairReplica {
                topic: "t".into(),
                partition: 0,
                broker_id: 2,
                leader_epoch: 3,
                partition_epoch: 7,
            })
        );
        // Unanswered: no second proposal within the retry interval, and no cut.
        assert_eq!(
            repairs.next_step(&key(), &in_isr, 2, Some(40), 500),
            RepairStep::Wait
        );
        // Out of the ISR without its own command applied (an ISR shrink): still no
        // cut, an expansion computed before may yet bring it back.
        let shrunk = partition(1, &[1, 3], 8);
        assert!(matches!(
            repairs.next_step(&key(), &shrunk, 2, Some(40), 1_500),
            RepairStep::Propose(_)
        ));
        repairs.outcome(&key(), None, 1_600);
        let left = partition(1, &[1, 3], 9);
        assert_eq!(
            repairs.next_step(&key(), &left, 2, Some(40), 1_700),
            RepairStep::Cut(40)
        );
        repairs.cut_done(&key());
        assert_eq!(
            repairs.next_step(&key(), &left, 2, None, 1_800),
            RepairStep::Healthy
        );
    }

    #[test]
    fn r_repl_4_a_sole_copy_keeps_leading_and_proposes_nothing() {
        let repairs = Repairs::default();
        let alone = partition(1, &[1], 7);
        for now in [0, 100, 100_000] {
            assert_eq!(
                repairs.next_step(&key(), &alone, 1, Some(0), now),
                RepairStep::Wait
            );
        }
    }

    /// Alone in the ISR but with an eligible replica (R-REPL-6), which holds everything
    /// committed: the copy hands over to it rather than wait (found by the replication
    /// model's walks with a bad last frame: the marked sole leader answered its
    /// followers' OffsetForLeaderEpoch, and the eligible replica cut an acknowledged
    /// record).
    #[test]
    fn r_repl_4_a_sole_isr_member_with_an_eligible_replica_hands_over_to_it() {
        let repairs = Repairs::default();
        let alone = PartitionInfo {
            elr: vec![2],
            unverified: Vec::new(),
            ..partition(1, &[1], 7)
        };
        assert!(matches!(
            repairs.next_step(&key(), &alone, 1, Some(0), 0),
            RepairStep::Propose(_)
        ));
        assert!(others_may_hold(&alone, 1));
        assert!(
            !holds_isr(Some(0), &alone, 1),
            "no other ISR member to keep"
        );
    }

    #[test]
    fn r_repl_4_a_refused_handover_is_asked_again_rarely() {
        let repairs = Repairs::default();
        // The other ISR member died after this view: the controller refuses.
        let alone = partition(1, &[1, 2], 7);
        assert!(matches!(
            repairs.next_step(&key(), &alone, 1, Some(0), 0),
            RepairStep::Propose(_)
        ));
        repairs.outcome(&key(), Some(Some(NOT_ENOUGH_REPLICAS)), 10);
        assert_eq!(
            repairs.next_step(&key(), &alone, 1, Some(0), 5_000),
            RepairStep::Wait
        );
        assert!(matches!(
            repairs.next_step(&key(), &alone, 1, Some(0), 10_011),
            RepairStep::Propose(_)
        ));
        // Applied, but the view still shows it leading: propose again, never cut.
        repairs.outcome(&key(), None, 10_020);
        assert!(matches!(
            repairs.next_step(&key(), &alone, 1, Some(0), 10_030),
            RepairStep::Propose(_)
        ));
    }
}
