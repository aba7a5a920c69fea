//! The run's trace: every event is hashed (so a test can assert that a seed always
//! gives the same run), and the notable ones are kept for a failing seed's report.

use std::collections::VecDeque;
use std::fmt::Write as _;

/// Events kept for the report when the full trace is not asked for.
const KEPT: usize = 400;

#[derive(Debug, Default)]
pub struct Trace {
    hash: u64,
    kept: VecDeque<String>,
    full: bool,
}

impl Trace {
    pub fn new(full: bool) -> Self {
        Trace {
            hash: 0xcbf2_9ce4_8422_2325,
            kept: VecDeque::new(),
            full,
        }
    }

    /// An event that only counts towards the hash (message deliveries, ticks).
    pub fn hash_only(&mut self, at: u64, event: &str) {
        self.mix(at, event);
    }

    /// An event a reader of a failing seed wants to see.
    pub fn note(&mut self, at: u64, event: String) {
        self.mix(at, &event);
        let mut line = String::new();
        let _ = write!(line, "{at:>7} ms  {event}");
        self.kept.push_back(line);
        if !self.full && self.kept.len() > KEPT {
            self.kept.pop_front();
        }
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    pub fn lines(&self) -> Vec<String> {
        self.kept.iter().cloned().collect()
    }

    /// FNV-1a: stable across platforms and releases, unlike std's hasher.
    fn mix(&mut self, at: u64, event: &str) {
        for byte in at.to_le_bytes().iter().chain(event.as_bytes()) {
            self.hash ^= u64::from(*byte);
            self.hash = self.hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
