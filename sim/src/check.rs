//! The checkers that run while the simulation runs; each violation names the spec
//! rule it breaks. The end-of-run checks (convergence, liveness, no acknowledged
//! proposal lost) are in `world.rs`, next to the history they read.

use chronik_core::consensus::RaftObservation;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Checker {
    /// term -> the node that led it.
    leaders: BTreeMap<u64, u64>,
    /// Terms already reported with two leaders (one report each).
    split_terms: std::collections::BTreeSet<u64>,
    /// index -> (term, hash of the data) of the entry committed there.
    committed: BTreeMap<u64, (u64, u64)>,
    /// Per node, the highest committed index already compared.
    checked: BTreeMap<u64, u64>,
    pub violations: Vec<String>,
}

impl Checker {
    /// I-1: at most one leader per term.
    pub fn leader(&mut self, node: u64, term: u64) {
        match self.leaders.get(&term) {
            Some(&other) if other != node => {
                if self.split_terms.insert(term) {
                    self.violations.push(format!(
                        "I-1 election safety: nodes {other} and {node} both led term {term}"
                    ));
                }
            }
            Some(_) => {}
            None => {
                self.leaders.insert(term, node);
            }
        }
    }

    /// I-2 and I-4: every node's committed entries agree, index by index, with what
    /// any node ever had committed there.
    pub fn committed(&mut self, node: u64, observed: &RaftObservation) {
        let from = self.checked.get(&node).copied().unwrap_or(0);
        for (offset, entry) in observed.entries.iter().enumerate() {
            let index = observed.first_index + offset as u64;
            if index <= from || index > observed.committed {
                continue;
            }
            let seen = (entry.term, fnv(&entry.data[..]));
            match self.committed.get(&index) {
                Some(&first) if first != seen => self.violations.push(format!(
                    "I-4 state machine safety: node {node} committed (term {}, data {:016x}) at \
                     index {index} where (term {}, data {:016x}) was committed before",
                    seen.0, seen.1, first.0, first.1
                )),
                Some(_) => {}
                None => {
                    self.committed.insert(index, seen);
                }
            }
        }
        self.checked.insert(node, observed.committed.max(from));
    }

    /// A restarted node's log is compared again from its start.
    pub fn restarted(&mut self, node: u64) {
        self.checked.remove(&node);
    }
}

pub fn fnv(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
