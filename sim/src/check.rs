//! The checkers that run while the simulation runs; each violation names the spec
//! rule it breaks. Every Raft step is checked in `chronik_model::raft_rules` (I-1..I-4,
//! R-PERSIST-1); this one compares what the nodes publish as committed. The end-of-run checks (convergence, liveness, no acknowledged
//! proposal lost) are in `world.rs`, next to the history they read.

use chronik_core::consensus::{entry_digest, RaftObservation};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Checker {
    /// index -> (term, hash of the data) of the entry committed there.
    committed: BTreeMap<u64, (u64, u64)>,
    /// Per node, the highest committed index already compared.
    checked: BTreeMap<u64, u64>,
    pub violations: Vec<String>,
}

impl Checker {
    /// I-2 and I-4: every node's committed entries agree, index by index, with what
    /// any node ever had committed there.
    pub fn committed(&mut self, node: u64, observed: &RaftObservation) {
        let from = self.checked.get(&node).copied().unwrap_or(0);
        for (offset, entry) in observed.entries.iter().enumerate() {
            let index = observed.first_index + offset as u64;
            if index <= from || index > observed.committed {
                continue;
            }
            let seen = (entry.term, entry_digest(&entry.data[..]));
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
