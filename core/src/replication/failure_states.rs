//! Which keys (partitions) are failing a periodic duty, so that a failure that repeats
//! on every pass is logged when it starts and when it ends, not on every pass (issue
//! 12: with the disk full, housekeeping logged an ERROR per partition every 100 ms,
//! which buried every other line).

use std::collections::BTreeSet;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    StartedFailing,
    Recovered,
}

pub struct FailureStates<K> {
    failing: Mutex<BTreeSet<K>>,
}

impl<K: Ord + Clone> Default for FailureStates<K> {
    fn default() -> Self {
        FailureStates {
            failing: Mutex::new(BTreeSet::new()),
        }
    }
}

impl<K: Ord + Clone> FailureStates<K> {
    /// Records one pass's outcome for `key`; the change of state, if any.
    pub fn record(&self, key: &K, failed: bool) -> Option<Change> {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        match (failed, failing.contains(key)) {
            (true, false) => {
                failing.insert(key.clone());
                Some(Change::StartedFailing)
            }
            (false, true) => {
                failing.remove(key);
                Some(Change::Recovered)
            }
            _ => None,
        }
    }

    /// Forgets keys that no longer exist (a deleted partition); returns how many
    /// are failing.
    pub fn retain(&self, exists: impl Fn(&K) -> bool) -> usize {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        failing.retain(|k| exists(k));
        failing.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_ops_3_a_repeated_failure_changes_state_once_each_way() {
        let states = FailureStates::default();
        assert_eq!(states.record(&1, false), None);
        assert_eq!(states.record(&1, true), Some(Change::StartedFailing));
        for _ in 0..10 {
            assert_eq!(states.record(&1, true), None);
        }
        assert_eq!(states.record(&2, true), Some(Change::StartedFailing));
        assert_eq!(states.record(&1, false), Some(Change::Recovered));
        assert_eq!(states.record(&1, false), None);
        assert_eq!(states.retain(|k| *k != 2), 0, "a deleted key is forgotten");
    }
}
