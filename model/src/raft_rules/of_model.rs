//! The metadata model's own paths through the Raft rules (C-10): each node's state
//! after every model action, as a real node's would be observed. The rules are
//! hand-written from the model; a model path they refuse would mean they are
//! stricter than the model (or the model than Raft), and a bug switch they let pass
//! would mean they are blind to it.
//!
//! A model action may stop between a Ready's write and its fsync, which a real
//! simulator step never does; so what the rules count as a node's persisted entries
//! is what is durable on its disk, and a crash leaves what the disk kept (a vote
//! that was only in memory never left the node, and is forgotten).

use super::RaftHistory;
use crate::state::{Cmd, Entry, HardState, Node, NodeId, Phase, Role, State};
use chronik_core::consensus::{Mark, RaftSeen};

/// Feeds every node of `state` to `history`: a step for each running node whose
/// Raft state moved, a crash for each node that went down.
pub fn observe(history: &mut RaftHistory, state: &State) {
    for (n, node) in state.nodes.iter().enumerate() {
        let id = n as u64 + 1;
        match node.phase {
            Phase::Down | Phase::Failed => {
                if history.is_up(id) {
                    history.went_down(id, durable(node));
                }
            }
            _ => {
                let seen = running(node);
                if history.moved(id, seen.position()) {
                    let damaged = node.disk.damaged.is_some() || node.repairing;
                    history.observe(id, seen, damaged);
                }
            }
        }
    }
}

fn running(node: &Node) -> RaftSeen {
    let durable_prefix = node
        .log
        .iter()
        .zip(&node.disk.durable_log)
        .take_while(|(held, kept)| held == kept)
        .count();
    RaftSeen {
        term: u64::from(node.term),
        vote: node.vote.map_or(0, node_id),
        leader: node.role == Role::Leader,
        snapshot: snapshot_of(&node.log, node.snap_idx),
        first: 1,
        entries: node.log.iter().map(mark).collect(),
        persisted: durable_prefix as u64,
        committed: u64::from(node.commit),
        applied: u64::from(node.applied),
        repairing: node.repairing,
    }
}

/// What a crash of `node` keeps: its durable HardState and log.
fn durable(node: &Node) -> RaftSeen {
    let hs = node.disk.durable_hs;
    let log = &node.disk.durable_log;
    RaftSeen {
        term: u64::from(hs.term),
        vote: vote_of(hs, hs.term),
        leader: false,
        snapshot: snapshot_of(log, node.disk.snap_idx),
        first: 1,
        entries: log.iter().map(mark).collect(),
        persisted: log.len() as u64,
        committed: u64::from(hs.commit),
        applied: 0,
        repairing: false,
    }
}

/// The durable vote, if it is of `term`: a vote only in memory has not left the
/// node (raft-rs sends it with the Ready's persisted messages).
fn vote_of(hs: HardState, term: u8) -> u64 {
    match hs.vote {
        Some(v) if hs.term == term => node_id(v),
        _ => 0,
    }
}

fn node_id(n: NodeId) -> u64 {
    u64::from(n) + 1
}

fn snapshot_of(log: &[Entry], snap_idx: u8) -> (u64, u64) {
    let term = match snap_idx {
        0 => 0,
        i => log.get(usize::from(i) - 1).map_or(0, |e| u64::from(e.term)),
    };
    (u64::from(snap_idx), term)
}

/// An entry's identity: its term and everything it carries.
fn mark(entry: &Entry) -> Mark {
    let cmd = match entry.cmd {
        Cmd::Noop => 1,
        Cmd::Register(broker, incarnation) => {
            0x100 | u64::from(broker) << 4 | u64::from(incarnation)
        }
        Cmd::CreateTopic => 2,
    };
    let bytes = cmd | u64::from(entry.req) << 32 | u64::from(entry.fwd) << 40;
    (u64::from(entry.term), bytes)
}
