//! Symmetry reduction for the metadata model (stateright's `symmetry_fn`, DFS only).
//!
//! Nodes are interchangeable except the partition's leader (`PARTITION_LEADER`, node
//! 0): the model treats every other id alike (elections, forwarding, registration and
//! replica fetches do not depend on which id a node has), so a state and the same state
//! with nodes 1 and 2 swapped have the same futures, up to the swap, and satisfy the same
//! properties (each property quantifies over all nodes or names only node 0). The
//! checker then visits one state of each such pair. The canonical one is the pair member
//! whose hash is smaller: both members of a pair choose the same one.
//!
//! Where nothing is ever produced (`max_produce` 0), node 0 is no different either:
//! its partition stays empty, so a replica fetch or a consumer's fetch changes nothing
//! (and `step` gives it no successor), its high watermark and checkpoint stay 0, and
//! the properties that name node 0 read only those. Then every renaming of the three
//! nodes is a symmetry, and the checker visits one state of each class of up to six.
//! `tests/symmetry.rs` checks both claims along random walks.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use crate::model::{ChronikModel, PARTITION_LEADER};
use crate::state::*;

/// The renamings that keep the partition's leader: the identity and the swap of nodes
/// 1 and 2.
const KEEP_PARTITION_LEADER: [[NodeId; 3]; 2] = [[0, 1, 2], [0, 2, 1]];

/// Every renaming of three nodes.
const ALL_RENAMINGS: [[NodeId; 3]; 6] = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
];

/// The representative the checker may use for model `m`: every renaming where nothing
/// is ever produced, otherwise only the swap that keeps the partition's leader.
pub fn representative_for(m: &ChronikModel) -> fn(&State) -> State {
    if m.max_produce == 0 {
        representative_without_partition_data
    } else {
        representative
    }
}

/// The representative of `s`'s class under swapping the non-leader nodes (3 nodes).
pub fn representative(s: &State) -> State {
    if PARTITION_LEADER != 0 {
        return s.clone();
    }
    least_renaming(s, &KEEP_PARTITION_LEADER)
}

/// The representative of `s`'s class under every renaming of the three nodes: only for
/// a model in which nothing is produced (see the module's comment).
pub fn representative_without_partition_data(s: &State) -> State {
    least_renaming(s, &ALL_RENAMINGS)
}

/// Of `s` renamed by each of `renamings` (the identity first), the one with the least
/// hash: every member of a class picks the same one.
fn least_renaming(s: &State, renamings: &[[NodeId; 3]]) -> State {
    if s.nodes.len() != 3 {
        return s.clone();
    }
    let mut best = s.clone();
    let mut best_hash = hash_of(s);
    for to in &renamings[1..] {
        let renamed = rewrite(s, &|n| to[usize::from(n)]);
        let h = hash_of(&renamed);
        if h < best_hash {
            best = renamed;
            best_hash = h;
        }
    }
    best
}

fn hash_of(s: &State) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// `s` with every node id `n` renamed `to(n)`: the nodes' places, and every id and
/// per-node array inside states, messages and ghosts.
pub fn rewrite(s: &State, to: &dyn Fn(NodeId) -> NodeId) -> State {
    let mut nodes = s.nodes.clone();
    for (i, n) in s.nodes.iter().enumerate() {
        nodes[usize::from(to(i as NodeId))] = rewrite_node(n, to).into();
    }
    let net = s.net.iter().map(|e| rewrite_envelope(e, to)).collect();
    let mut ghost = s.ghost.clone();
    ghost.elected = s.ghost.elected.iter().map(|(t, n)| (*t, to(*n))).collect();
    ghost.committed = s
        .ghost
        .committed
        .iter()
        .map(|(e, t)| (rewrite_entry(e, to), *t))
        .collect();
    ghost.boots = permute(&s.ghost.boots, to);
    ghost.damaged_nodes = rewrite_mask(s.ghost.damaged_nodes, to);
    State { nodes, net, ghost }
}

fn rewrite_node(n: &Node, to: &dyn Fn(NodeId) -> NodeId) -> Node {
    let mut m = n.clone();
    m.vote = n.vote.map(to);
    m.leader = n.leader.map(to);
    m.votes = rewrite_mask(n.votes, to);
    m.log = rewrite_log(&n.log, to);
    m.next = permute(&n.next, to);
    m.matched = permute(&n.matched, to);
    m.paused = permute(&n.paused, to);
    m.hs_sent = rewrite_hs(n.hs_sent, to);
    m.outbox = sorted(n.outbox.iter().map(|e| rewrite_envelope(e, to)).collect());
    m.ready = n.ready.as_ref().map(|r| ReadyRec {
        last: r.last,
        persisted_msgs: sorted(
            r.persisted_msgs
                .iter()
                .map(|e| rewrite_envelope(e, to))
                .collect(),
        ),
    });
    m.image.brokers = permute(&n.image.brokers, to);
    m.replica_leo = permute(&n.replica_leo, to);
    m.disk.log = rewrite_log(&n.disk.log, to);
    m.disk.durable_log = rewrite_log(&n.disk.durable_log, to);
    m.disk.hs = rewrite_hs(n.disk.hs, to);
    m.disk.durable_hs = rewrite_hs(n.disk.durable_hs, to);
    m
}

/// A set of nodes, one bit each.
fn rewrite_mask(mask: u8, to: &dyn Fn(NodeId) -> NodeId) -> u8 {
    (0..MAX_NODES as NodeId)
        .filter(|i| mask & (1 << i) != 0)
        .fold(0, |acc, i| acc | (1 << to(i)))
}

/// Messages a node has queued go out together, so their order carries nothing.
fn sorted(mut v: Vec<Envelope>) -> Vec<Envelope> {
    v.sort();
    v
}

fn permute<T: Copy>(a: &[T; MAX_NODES], to: &dyn Fn(NodeId) -> NodeId) -> [T; MAX_NODES] {
    let mut out = *a;
    for (i, x) in a.iter().enumerate() {
        out[usize::from(to(i as NodeId))] = *x;
    }
    out
}

fn rewrite_hs(hs: HardState, to: &dyn Fn(NodeId) -> NodeId) -> HardState {
    HardState {
        vote: hs.vote.map(to),
        ..hs
    }
}

fn rewrite_log(log: &[Entry], to: &dyn Fn(NodeId) -> NodeId) -> Vec<Entry> {
    log.iter().map(|e| rewrite_entry(e, to)).collect()
}

fn rewrite_entry(e: &Entry, to: &dyn Fn(NodeId) -> NodeId) -> Entry {
    Entry {
        cmd: rewrite_cmd(e.cmd, to),
        ..*e
    }
}

fn rewrite_cmd(c: Cmd, to: &dyn Fn(NodeId) -> NodeId) -> Cmd {
    match c {
        Cmd::Register(n, incarnation) => Cmd::Register(to(n), incarnation),
        other => other,
    }
}

fn rewrite_envelope(e: &Envelope, to: &dyn Fn(NodeId) -> NodeId) -> Envelope {
    let msg = match &e.msg {
        Msg::Append {
            term,
            prev_idx,
            prev_term,
            entries,
            commit,
        } => Msg::Append {
            term: *term,
            prev_idx: *prev_idx,
            prev_term: *prev_term,
            entries: rewrite_log(entries, to),
            commit: *commit,
        },
        Msg::Forward { cmd, req } => Msg::Forward {
            cmd: rewrite_cmd(*cmd, to),
            req: *req,
        },
        Msg::Snapshot { term, entries } => Msg::Snapshot {
            term: *term,
            entries: rewrite_log(entries, to),
        },
        other => other.clone(),
    };
    Envelope {
        src: to(e.src),
        dst: to(e.dst),
        msg,
    }
}
