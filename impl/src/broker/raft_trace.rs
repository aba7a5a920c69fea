//! `--raft-trace FILE`: the broker writes a line each time its metadata Raft state
//! moves (term, vote, role, log, persisted, commit or applied index), so that a
//! multi-process run (the e2e fault run) can be checked step by step against Raft's
//! rules afterwards, as the simulator checks its runs (C-10:
//! `chronik-sim --check-raft-trace`). A test aid: each line copies the entries in
//! memory, so a production broker leaves it off.

use crate::consensus::{MetadataNode, RaftPosition, RaftSeen, RaftTraceEvent, RaftTraceLine};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

pub struct RaftTrace {
    file: Option<File>,
    node: u64,
    last: Option<RaftPosition>,
}

impl RaftTrace {
    /// Opens (appends to) the trace and notes this start: what the node held before
    /// is gone but its disk.
    pub fn open(path: &Path, node: u64) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let mut trace = RaftTrace {
            file: Some(file),
            node,
            last: None,
        };
        trace.write(RaftTraceEvent::Start);
        Ok(trace)
    }

    /// After a driver step, before its effects leave: a peer that hears of this step
    /// writes its own line later, so the merged trace keeps cause before effect.
    pub fn after_step(&mut self, node: &MetadataNode, failed: bool) {
        let position = node.position();
        if !failed && self.last == Some(position) {
            return;
        }
        self.last = Some(position);
        let seen = RaftSeen::of(&node.observe(), position.leader);
        self.write(match failed {
            true => RaftTraceEvent::Failed(seen),
            false => RaftTraceEvent::Step(seen),
        });
    }

    fn write(&mut self, event: RaftTraceEvent) {
        let Some(file) = &mut self.file else {
            return;
        };
        let line = RaftTraceLine {
            at_ns: monotonic_ns(),
            node: self.node,
            event,
        };
        // One write per line, unbuffered: a killed process loses at most the line
        // it was writing.
        if let Err(e) = file.write_all(format!("{}\n", line.encode()).as_bytes()) {
            tracing::warn!(error = %e, "cannot write the Raft trace; no longer tracing");
            self.file = None;
        }
    }
}

/// CLOCK_MONOTONIC: one clock for every process on the machine, never stepped, so
/// the traces of several brokers merge in the order their steps happened.
pub(super) fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is given, which lives here.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        return 0;
    }
    (now.tv_sec as u64) * 1_000_000_000 + now.tv_nsec as u64
}
