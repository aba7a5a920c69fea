//! Properties, each named after the spec rule it checks (spec/README.md traces them).
//!
//! Liveness is encoded as "every quiescent state with a live quorum satisfies X", because
//! stateright's `eventually` misses counterexamples that end in a cycle.

use stateright::Property;

use crate::model::{ChronikModel, PARTITION_LEADER};
use crate::state::*;

pub use crate::property_names as names;
use names::*;

pub fn properties(m: &ChronikModel) -> Vec<Property<ChronikModel>> {
    let mut v = vec![
        Property::always(START_1, loop_running),
        Property::always(START_2, listener_up),
        Property::always(START_3, live_brokers_registered),
        Property::always(START_4, sole_voter_leads_when_listening),
        Property::always(PROPOSE_1, answered_is_committed),
        Property::always(PROPOSE_1_APPLIED, answered_is_applied),
        Property::always(PERSIST_1, ack_implies_durable),
        Property::always(PERSIST_2, applied_implies_durable),
        Property::always(PERSIST_2_HS, hardstate_loadable),
        Property::always(PERSIST_4, hw_within_durable),
        Property::always(RECOVER_1, recovered_is_durable_prefix),
        Property::always(RECOVER_2, replay_rebuilds_image),
        Property::always(RECOVER_4, read_stays_readable),
        Property::always(WIRE_7, fetched_durable),
        Property::always(I_1, election_safety),
        Property::always(I_2, log_matching),
        Property::always(I_3, leader_completeness),
        Property::always(I_4, state_machine_safety),
        Property::always(I_5, metadata_converges),
        Property::always(I_6, no_acked_produce_lost),
        Property::sometimes(EX_ALL_REGISTERED, |_, s: &State| {
            s.nodes.iter().all(|n| n.phase == Phase::Registered)
        }),
    ];
    if m.max_produce >= 1 {
        v.push(Property::sometimes(EX_ACKED, |_, s: &State| {
            !s.ghost.acked.is_empty()
        }));
    }
    if m.nodes >= 2 {
        v.push(Property::sometimes(EX_FORWARDED, |_, s: &State| {
            s.nodes
                .iter()
                .any(|n| n.log[..usize::from(n.applied)].iter().any(|e| e.fwd))
        }));
    }
    if m.max_crashes >= 1 {
        v.push(Property::sometimes(EX_RESTART, |_, s: &State| {
            s.ghost.restarted && s.nodes.iter().any(|n| n.phase == Phase::Registered)
        }));
    }
    if m.max_crashes >= 1 && m.max_produce >= 1 {
        v.push(Property::sometimes(EX_READ_AFTER_CRASH, |_, s: &State| {
            s.ghost.restarted && !s.ghost.acked.is_empty() && !s.ghost.read.is_empty()
        }));
    }
    if m.max_damage >= 1 && m.max_crashes >= 1 && m.nodes == 1 {
        v.push(Property::sometimes(EX_DAMAGE_REFUSED, |_, s: &State| {
            s.ghost.damages > 0 && s.nodes.iter().any(|n| n.phase == Phase::Failed)
        }));
    }
    if m.max_damage >= 1 && m.max_crashes >= 1 && m.nodes >= 2 {
        v.push(Property::sometimes(EX_REPAIRED, |_, s: &State| {
            s.ghost.repaired
        }));
    }
    if m.snapshot_interval > 0 && m.max_crashes >= 1 && m.nodes >= 2 {
        v.push(Property::sometimes(
            EX_SNAPSHOT_INSTALLED,
            |_, s: &State| s.ghost.snapshot_installed,
        ));
    }
    if m.undecodable && m.max_crashes >= 1 && m.max_proposals >= 1 {
        v.push(Property::sometimes(EX_LOUD_FAILURE, |_, s: &State| {
            s.nodes.iter().any(|n| n.phase == Phase::Failed)
        }));
    }
    v
}

fn loop_running(m: &ChronikModel, s: &State) -> bool {
    let started = s
        .nodes
        .iter()
        .filter(|n| n.live())
        .all(|n| n.loop_running());
    started || !m.live_quorum(s) || !m.quiescent(s)
}

fn listener_up(m: &ChronikModel, s: &State) -> bool {
    let started = s.nodes.iter().filter(|n| n.live()).all(|n| n.listening());
    started || !m.live_quorum(s) || !m.quiescent(s)
}

fn live_brokers_registered(m: &ChronikModel, s: &State) -> bool {
    let done = s
        .nodes
        .iter()
        .filter(|n| n.live())
        .all(|n| n.phase == Phase::Registered);
    done || !m.live_quorum(s) || !m.quiescent(s)
}

/// A client's first Metadata request to a single node finds a controller: the node
/// elected itself before its listener came up (issue 14).
fn sole_voter_leads_when_listening(m: &ChronikModel, s: &State) -> bool {
    m.nodes != 1
        || s.nodes
            .iter()
            .all(|n| !n.listening() || n.role == Role::Leader)
}

/// Every granted vote and successful append response in flight is backed by the sender's
/// durable HardState and log; every produce acknowledgement by the leader's durable log.
/// A client told its metadata write succeeded can rely on it: the command is in the
/// committed log (which every later leader holds, I-3), not only sent somewhere.
fn answered_is_committed(_: &ChronikModel, s: &State) -> bool {
    s.ghost
        .answered
        .iter()
        .all(|req| s.ghost.committed.iter().any(|(e, _)| e.req == *req))
}

/// What a client was told succeeded is what it finds, wherever it asks, once the
/// cluster has settled: not a proposal dropped on its way (seed 004: raft-rs drops a
/// forwarded `MsgPropose` at a node that no longer leads, and the broker had taken
/// `propose` returning Ok for success).
fn answered_is_applied(m: &ChronikModel, s: &State) -> bool {
    if !m.live_quorum(s) || !m.quiescent(s) {
        return true;
    }
    s.ghost.answered.iter().all(|req| {
        let at = s.ghost.committed.iter().position(|(e, _)| e.req == *req);
        at.is_some_and(|i| {
            s.nodes
                .iter()
                .filter(|n| n.live() && n.loop_running())
                .all(|n| usize::from(n.applied) > i)
        })
    })
}

/// Once the cluster has settled with every node up, a consumer can read again every
/// record it read before any crash: the partition leader's high watermark is back
/// (seed 002: recovery did not restore it, and nothing moved it again).
fn read_stays_readable(m: &ChronikModel, s: &State) -> bool {
    let l = &s.nodes[usize::from(PARTITION_LEADER)];
    let readable = usize::from(l.hw).min(l.disk.plog.len());
    let settled = s.nodes.iter().all(|n| n.listening()) && m.quiescent(s);
    !settled || readable >= s.ghost.read.len()
}

/// A node whose log a bad sector cut lost durable entries through no fault of its
/// own: what it acknowledged before is judged by R-RECOVER-9, not here.
fn ack_implies_durable(_: &ChronikModel, s: &State) -> bool {
    let msgs_ok = s.net.iter().all(|e| {
        if s.ghost.damaged_nodes & (1 << e.src) != 0 {
            return true;
        }
        let d = &s.nodes[usize::from(e.src)].disk;
        match e.msg {
            // A pre-vote records nothing (raft-rs): only a real vote must be durable.
            Msg::VoteResp {
                pre: false,
                term,
                granted: true,
            } => {
                d.durable_hs.term > term
                    || (d.durable_hs.term == term && d.durable_hs.vote == Some(e.dst))
            }
            Msg::AppendResp {
                term,
                ok: true,
                idx,
                ..
            } => {
                d.durable_hs.term > term
                    || (d.durable_hs.term == term && d.durable_log.len() >= usize::from(idx))
            }
            _ => true,
        }
    });
    let leader = &s.nodes[usize::from(PARTITION_LEADER)].disk;
    msgs_ok
        && s.ghost.acked.iter().all(|(o, id)| {
            usize::from(*o) < usize::from(leader.plog_durable)
                && leader.plog.get(usize::from(*o)) == Some(id)
        })
}

fn applied_implies_durable(_: &ChronikModel, s: &State) -> bool {
    s.nodes
        .iter()
        .filter(|n| n.live())
        .all(|n| usize::from(n.applied) <= n.disk.durable_log.len())
}

/// What raft-rs's `load_state` and `RawNode::new` would accept on restart.
fn hardstate_loadable(_: &ChronikModel, s: &State) -> bool {
    s.nodes.iter().all(|n| {
        let d = &n.disk;
        let last_term = d.durable_log.last().map_or(0, |e| e.term);
        let disk_ok = usize::from(d.durable_hs.commit) <= d.durable_log.len()
            && d.durable_hs.term >= last_term;
        let mem_ok = !n.live() || n.applied <= n.commit;
        disk_ok && mem_ok
    })
}

fn hw_within_durable(m: &ChronikModel, s: &State) -> bool {
    let l = &s.nodes[usize::from(PARTITION_LEADER)];
    (0..m.nodes).all(|r| l.hw <= s.nodes[r].disk.plog_durable)
}

fn recovered_is_durable_prefix(_: &ChronikModel, s: &State) -> bool {
    s.nodes.iter().filter(|n| n.live()).all(|n| {
        let st = usize::from(n.stable);
        !n.disk.torn
            && st <= n.disk.durable_log.len()
            && st <= n.log.len()
            && n.log[..st] == n.disk.durable_log[..st]
    })
}

fn replay_rebuilds_image(_: &ChronikModel, s: &State) -> bool {
    s.nodes.iter().filter(|n| n.live()).all(|n| {
        let mut img = Image::default();
        for e in n.log.iter().take(usize::from(n.applied)) {
            img.apply(e.cmd);
        }
        usize::from(n.applied) <= n.log.len() && img == n.image
    })
}

fn fetched_durable(_: &ChronikModel, s: &State) -> bool {
    let d = &s.nodes[usize::from(PARTITION_LEADER)].disk;
    s.ghost.read.len() <= usize::from(d.plog_durable) && d.plog.starts_with(&s.ghost.read)
}

fn election_safety(_: &ChronikModel, s: &State) -> bool {
    let v: Vec<&(u8, NodeId)> = s.ghost.elected.iter().collect();
    v.windows(2).all(|w| w[0].0 != w[1].0)
}

fn log_matching(_: &ChronikModel, s: &State) -> bool {
    let logs: Vec<&Vec<Entry>> = s
        .nodes
        .iter()
        .filter(|n| n.live())
        .map(|n| &n.log)
        .collect();
    for (i, a) in logs.iter().enumerate() {
        for b in &logs[i + 1..] {
            let common = a.len().min(b.len());
            // The highest index where terms agree must have identical prefixes.
            if let Some(k) = (0..common).rev().find(|k| a[*k].term == b[*k].term) {
                if a[..=k] != b[..=k] {
                    return false;
                }
            }
        }
    }
    true
}

fn leader_completeness(_: &ChronikModel, s: &State) -> bool {
    s.nodes
        .iter()
        .filter(|n| n.live() && n.role == Role::Leader)
        .all(|l| {
            s.ghost
                .committed
                .iter()
                .enumerate()
                .all(|(i, (e, ct))| l.term <= *ct || l.log.get(i) == Some(e))
        })
}

fn state_machine_safety(_: &ChronikModel, s: &State) -> bool {
    if s.ghost.committed_conflict {
        return false;
    }
    let applied: Vec<&[Entry]> = s
        .nodes
        .iter()
        .filter(|n| n.live())
        .map(|n| &n.log[..usize::from(n.applied).min(n.log.len())])
        .collect();
    applied.iter().enumerate().all(|(i, a)| {
        applied[i + 1..].iter().all(|b| {
            let c = a.len().min(b.len());
            a[..c] == b[..c]
        })
    })
}

fn metadata_converges(m: &ChronikModel, s: &State) -> bool {
    let live: Vec<&Node> = s
        .nodes
        .iter()
        .filter(|n| n.live() && n.loop_running())
        .map(|n| &**n)
        .collect();
    let same = live
        .windows(2)
        .all(|w| w[0].applied == w[1].applied && w[0].image == w[1].image);
    same || !m.live_quorum(s) || !m.quiescent(s)
}

fn no_acked_produce_lost(m: &ChronikModel, s: &State) -> bool {
    s.ghost.acked.iter().all(|(o, id)| {
        (0..m.nodes).all(|r| {
            let d = &s.nodes[r].disk;
            usize::from(*o) < usize::from(d.plog_durable) && d.plog.get(usize::from(*o)) == Some(id)
        })
    })
}
