//! Properties of the replication model, each named after its rule in spec/cluster.md.

use stateright::Property;

use super::*;

pub mod names {
    pub const ACKED_ON_ISR: &str = "R-REPL-1 acknowledged records are durable on every ISR member";
    pub const HW_DURABLE: &str = "R-REPL-1 a leader's high watermark is within its durable log";
    pub const LEADER_IN_ISR: &str = "R-REPL-2 the leader is in the ISR";
    pub const CONVERGES: &str = "R-REPL-2 a healed partition converges when quiescent";
    pub const ONE_VALUE: &str = "R-REPL-3 one value per offset";
    pub const READ_ON_ISR: &str = "R-WIRE-7 records read are durable on every ISR member";
    pub const ONE_LEADER: &str = "R-CLUSTER-2 one leader per leader epoch";
    pub const COMMITTED_ON_ISR: &str =
        "R-REPL-1 every record below the true high watermark is durable on every ISR member";
    pub const COMMITTED_ON_LEADER: &str =
        "R-REPL-1 the controller's leader holds every record below the true high watermark";
    pub const LOG_MATCHING: &str = "R-REPL-3 replicas agree below both their high watermarks";
    pub const MAXIMAL_ISR: &str =
        "R-REPL-2 a current leader's maximal ISR contains the controller's ISR";
    pub const FENCED_OUT_OF_ISR: &str = "R-REPL-2 a fenced broker is in no ISR of two or more";
    pub const NO_DUPLICATE: &str = "R-REPL-3 an idempotent retry is committed at most once";
    pub const HW_MONOTONIC: &str = "R-REPL-1 a running broker's high watermark never goes back";
    pub const ELIGIBLE_COMPLETE: &str =
        "R-REPL-6 every eligible replica holds every record below the true high watermark";
    pub const DELETED_STAY_DELETED: &str =
        "R-WIRE-5 no consumer reads a record below an acknowledged deletion";

    pub const EX_FAILOVER: &str = "example: acknowledged records read after a failover";
    pub const EX_TRUNCATED: &str = "example: a returning replica truncates to its leader";
    pub const EX_EXPANDED: &str = "example: a follower rejoins the ISR";
    pub const EX_CUT_SHORT: &str =
        "example: a full disk cuts a fetch answer short and every acknowledged record is read";
    pub const EX_REPAIRED: &str =
        "example: a damaged copy is repaired and every acknowledged record is read";
    pub const EX_DELETED: &str =
        "example: a deletion is acknowledged and the next leader serves what is left";
    pub const EX_STARTED_AFRESH: &str =
        "example: a follower away during a deletion starts afresh at its leader's log start";
    pub const EX_TORN_REPAIRED: &str =
        "example: a copy marked short by a torn crash is repaired back into the ISR";
}
use names::*;

pub fn properties(m: &ReplicationModel) -> Vec<Property<ReplicationModel>> {
    let mut v = vec![
        Property::always(ACKED_ON_ISR, |m, s: &RState| {
            s.ghost.acked.iter().all(|r| on_every_isr_member(m, s, *r))
        }),
        Property::always(HW_DURABLE, |m: &ReplicationModel, s: &RState| {
            ReplicationModel::ids().all(|n| {
                let r = &s.replicas[usize::from(n)];
                !m.leading(s, n) || r.hw <= held(m, r)
            })
        }),
        Property::always(LEADER_IN_ISR, |_, s: &RState| {
            s.meta.leader.is_none_or(|l| has(s.meta.isr, l))
        }),
        Property::always(CONVERGES, converges),
        Property::always(ONE_VALUE, |_, s: &RState| {
            let mut seen = std::collections::BTreeMap::new();
            s.ghost
                .acked
                .iter()
                .chain(&s.ghost.read)
                .all(|(o, v)| *seen.entry(*o).or_insert(*v) == *v)
        }),
        Property::always(READ_ON_ISR, |m, s: &RState| {
            s.ghost.read.iter().all(|r| on_every_isr_member(m, s, *r))
        }),
        Property::always(ONE_LEADER, |_, s: &RState| {
            let epochs: Vec<u8> = s.ghost.leaders.iter().map(|(e, _)| *e).collect();
            epochs.windows(2).all(|w| w[0] != w[1])
        }),
        Property::always(COMMITTED_ON_ISR, |m, s: &RState| {
            !s.ghost.committed_conflict && counted_isr(m, s).all(|b| holds_committed(m, s, b))
        }),
        Property::always(COMMITTED_ON_LEADER, |m, s: &RState| {
            s.meta
                .leader
                .filter(|l| counted(m, s, *l))
                .is_none_or(|l| holds_committed(m, s, l))
        }),
        Property::always(LOG_MATCHING, log_matching_below_hw),
        Property::always(MAXIMAL_ISR, maximal_isr_covers_controller_isr),
        Property::always(FENCED_OUT_OF_ISR, |_, s: &RState| {
            members(s.meta.isr).count() < 2 || s.meta.isr & s.meta.fenced == 0
        }),
        Property::always(NO_DUPLICATE, |_, s: &RState| {
            let c = &s.ghost.committed;
            c.iter()
                .enumerate()
                .all(|(i, a)| c[i + 1..].iter().all(|b| a.value != b.value))
        }),
        Property::always(ELIGIBLE_COMPLETE, |m, s: &RState| {
            members(s.meta.elr)
                .filter(|b| !short_until_registered(s, *b) && !crashed_unverified(m, s, *b))
                .all(|b| holds_committed(m, s, b))
        }),
        Property::always(HW_MONOTONIC, |_, s: &RState| {
            s.replicas
                .iter()
                .zip(&s.ghost.hw_mark)
                .all(|(r, mark)| mark.is_none_or(|(_, highest)| r.hw >= highest))
        }),
        Property::always(DELETED_STAY_DELETED, |_, s: &RState| !s.ghost.read_deleted),
    ];
    if m.max_deletes >= 1 && m.max_produce >= 1 && m.max_fences + m.max_crashes >= 1 {
        v.push(Property::sometimes(EX_DELETED, |_, s: &RState| {
            s.ghost.deleted > 0
                && s.meta.leader.is_some_and(|l| {
                    let r = &s.replicas[usize::from(l)];
                    l != 0 && r.leading(l) && r.log_start >= s.ghost.deleted
                })
        }));
    }
    if m.max_deletes >= 1 && m.max_produce >= 2 && m.max_shrinks + m.max_fences >= 1 {
        v.push(Property::sometimes(EX_STARTED_AFRESH, |_, s: &RState| {
            s.ghost.started_afresh
        }));
    }
    if m.max_produce >= 1 && m.max_fences + m.max_crashes >= 1 {
        v.push(Property::sometimes(EX_FAILOVER, |_, s: &RState| {
            !s.ghost.acked.is_empty()
                && s.meta.leader.is_some_and(|l| l != 0)
                && s.ghost.acked.is_subset(&s.ghost.read)
        }));
    }
    if m.max_produce >= 2 && m.max_fences >= 1 {
        v.push(Property::sometimes(EX_TRUNCATED, |_, s: &RState| {
            s.ghost.truncated
        }));
    }
    if m.max_damage >= 1 && m.max_produce >= 1 {
        v.push(Property::sometimes(EX_REPAIRED, |_, s: &RState| {
            s.ghost.repaired
                && !s.ghost.acked.is_empty()
                && s.ghost.acked.is_subset(&s.ghost.read)
                && s.meta.isr == ALL
        }));
    }
    if m.torn_crashes && m.max_crashes >= 1 && m.max_produce >= 1 {
        // The conservative mark of R-REPL-4 costs a repair, never the copy.
        v.push(Property::sometimes(EX_TORN_REPAIRED, |_, s: &RState| {
            s.ghost.repaired && s.meta.isr == ALL && s.ghost.damages == 0
        }));
    }
    if m.max_full >= 1 && m.max_produce >= 1 {
        v.push(Property::sometimes(EX_CUT_SHORT, |_, s: &RState| {
            s.ghost.cut_short && !s.ghost.acked.is_empty() && s.ghost.acked.is_subset(&s.ghost.read)
        }));
    }
    if m.max_shrinks >= 1 || m.max_fences >= 1 {
        v.push(Property::sometimes(EX_EXPANDED, |_, s: &RState| {
            s.ghost.expanded
        }));
    }
    v
}

/// What a copy holds for sure: its durable records, or under the interval policy
/// (R-REPL-5) everything written, since a running broker serves it and a crash
/// leaves only the durable part in the log anyway.
fn held(m: &ReplicationModel, r: &Replica) -> u8 {
    if m.acks_before_fsync {
        r.len()
    } else {
        r.durable
    }
}

/// The ISR members whose copies the rules judge: all of them, or under the interval
/// policy those running in the start the controller knows (a restarted broker's
/// crash may have cut what it acknowledged, and its registration takes it out of
/// the ISR, R-REPL-5; until then it serves nothing).
///
/// A copy whose recovery marked a cut tail (`Replica::lost_tail`, R-REPL-4) is not
/// counted either: it knows it may lack records, takes no write and answers no
/// OffsetForLeaderEpoch while another ISR member holds them, and leaves the ISR
/// through its repair. Once it drops the mark it is counted again.
fn counted(m: &ReplicationModel, s: &RState, b: NodeId) -> bool {
    !unclean_until_registered(m, s, b) && !s.replicas[usize::from(b)].lost_tail()
}

/// Under the interval policy, a broker down or restarted and not yet registered in
/// its new start: its crash may have cut what it acknowledged.
fn unclean_until_registered(m: &ReplicationModel, s: &RState, b: NodeId) -> bool {
    let r = &s.replicas[usize::from(b)];
    m.acks_before_fsync && !(r.up && s.meta.incarnation[usize::from(b)] == r.incarnation)
}

/// An unverified eligible replica (a leader whose lapse may have been a crash) that
/// did crash: its registration, to come, takes it out of the eligible set unless
/// nothing else could lead, and only a copy known short waits for it meanwhile
/// (R-REPL-6).
fn crashed_unverified(m: &ReplicationModel, s: &RState, b: NodeId) -> bool {
    has(s.meta.unverified, b) && unclean_until_registered(m, s, b)
}

/// A start short of records whose registration is still to come: an ISR change
/// applied first may have made it eligible. The start itself does nothing until that
/// registration (R-REPL-3), which names the short copy and takes it out of the
/// eligible set, or keeps it only as the last replica anything could be led from
/// (R-REPL-4); from then on it is judged. The controller may elect it meanwhile (its
/// earlier start counts live): the records are then kept by the other eligible
/// replicas, the leader it replaced among them, and R-REPL-1's properties judge the
/// outcome.
fn short_until_registered(s: &RState, b: NodeId) -> bool {
    let r = &s.replicas[usize::from(b)];
    r.damaged.is_some() && s.meta.incarnation[usize::from(b)] < r.incarnation
}

fn counted_isr<'a>(m: &'a ReplicationModel, s: &'a RState) -> impl Iterator<Item = NodeId> + 'a {
    members(s.meta.isr).filter(move |b| counted(m, s, *b))
}

/// Kafka's LeaderCandidateCompleteness: the copy of `b` holds every committed
/// record, as committed.
fn holds_committed(m: &ReplicationModel, s: &RState, b: NodeId) -> bool {
    let r = &s.replicas[usize::from(b)];
    let c = &s.ghost.committed;
    let from = usize::from(r.log_start).min(c.len());
    usize::from(held(m, r)) >= c.len() && r.log[from..c.len()] == c[from..]
}

/// Kafka's LogMatchingProperty: below both replicas' high watermarks their logs hold
/// the same records.
fn log_matching_below_hw(_: &ReplicationModel, s: &RState) -> bool {
    s.replicas.iter().enumerate().all(|(i, a)| {
        s.replicas[i + 1..].iter().all(|b| {
            let below = usize::from(a.hw.min(b.hw))
                .min(a.log.len())
                .min(b.log.len());
            let from = usize::from(a.log_start.max(b.log_start)).min(below);
            a.log[from..below] == b.log[from..below]
        })
    })
}

/// Kafka's ReplicationQuorumSupersetProperty: a leader in the controller's current
/// epoch counts (for its high watermark) at least every member the controller has
/// in the ISR, since any of them may be elected next.
fn maximal_isr_covers_controller_isr(m: &ReplicationModel, s: &RState) -> bool {
    ReplicationModel::ids().all(|n| {
        let r = &s.replicas[usize::from(n)];
        if !m.leading(s, n) || r.view.epoch != s.meta.epoch {
            return true;
        }
        s.meta.isr & !m.maximal_isr(r) == 0
    })
}

fn on_every_isr_member(m: &ReplicationModel, s: &RState, (offset, value): (u8, u8)) -> bool {
    counted_isr(m, s).all(|b| {
        let r = &s.replicas[usize::from(b)];
        // A record below the copy's log start was deleted on purpose (R-WIRE-5).
        offset < r.log_start || (offset < held(m, r) && r.log[usize::from(offset)].value == value)
    })
}

/// With every broker up and registered, no damage left and nothing left to do, the
/// partition has a leader, every replica is in the ISR with the leader's log, and
/// every produce has been answered. (A sole damaged copy cannot be repaired: its
/// partition never heals, and the operator's quarantine is outside the model.)
fn converges(m: &ReplicationModel, s: &RState) -> bool {
    let healed = s.replicas.iter().all(|r| r.up && r.damaged.is_none())
        && s.meta.fenced == 0
        && s.inbox.is_empty();
    if !healed || !m.quiescent(s) {
        return true;
    }
    let Some(l) = s.meta.leader else {
        return false;
    };
    let leader = &s.replicas[usize::from(l)];
    s.meta.isr == ALL
        && s.replicas.iter().all(|r| {
            // Log starts may differ: a deposed leader's deletion, answered
            // NOT_LEADER_OR_FOLLOWER, may have reached its followers and not the
            // next leader, as in Kafka.
            r.log == leader.log && r.waiting.is_empty() && r.deletions.is_empty()
        })
}
