//! One node's Raft state as a trace line carries it (C-10, spec/conformance.md): the
//! simulator checks these after every step, and a broker started with `--raft-trace`
//! writes one line each time its state moves, for the same check over a real
//! multi-process run. Pure: encoding and parsing only.

use super::{RaftObservation, RaftPosition};

/// FNV-1a of an entry's bytes: entries are compared by term and this digest.
pub fn entry_digest(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// An entry as the rules compare it: its term and a hash of its bytes.
pub type Mark = (u64, u64);

/// One node's Raft state after a step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftSeen {
    pub term: u64,
    /// 0: no vote in this term.
    pub vote: u64,
    pub leader: bool,
    /// The snapshot's last index and term (0, 0: none).
    pub snapshot: (u64, u64),
    /// The index of `entries[0]`.
    pub first: u64,
    pub entries: Vec<Mark>,
    pub persisted: u64,
    pub committed: u64,
    pub applied: u64,
    pub repairing: bool,
}

impl RaftSeen {
    pub fn of(observed: &RaftObservation, leader: bool) -> Self {
        RaftSeen {
            term: observed.term,
            vote: observed.vote,
            leader,
            snapshot: (observed.snapshot_index, observed.snapshot_term),
            first: observed.first_index,
            entries: observed
                .entries
                .iter()
                .map(|e| (e.term, entry_digest(&e.data[..])))
                .collect(),
            persisted: observed.persisted,
            committed: observed.committed,
            applied: observed.applied,
            repairing: observed.repairing,
        }
    }

    /// The position a node in this state reports (`MetadataNode::position`).
    pub fn position(&self) -> RaftPosition {
        let last_index = self.last();
        RaftPosition {
            term: self.term,
            vote: self.vote,
            leader: self.leader,
            first_index: self.first,
            last_index,
            last_term: self.term_at(last_index).unwrap_or(0),
            persisted: self.persisted,
            committed: self.committed,
            applied: self.applied,
            repairing: self.repairing,
            snapshot_index: self.snapshot.0,
        }
    }

    pub fn last(&self) -> u64 {
        (self.first + self.entries.len() as u64).saturating_sub(1)
    }

    pub fn mark(&self, index: u64) -> Option<Mark> {
        let offset = index.checked_sub(self.first)?;
        self.entries.get(usize::try_from(offset).ok()?).copied()
    }

    /// Whether the node holds `mark` at `index`: in memory, as its snapshot's last
    /// entry (by term), or compacted into its snapshot.
    pub fn holds(&self, index: u64, mark: Mark) -> bool {
        match self.mark(index) {
            Some(held) => held == mark,
            None if index == self.snapshot.0 => self.snapshot.1 == mark.0,
            None => index < self.snapshot.0,
        }
    }

    /// The term at `index`, at the snapshot's point too.
    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.0 {
            return Some(self.snapshot.1);
        }
        self.mark(index).map(|(term, _)| term)
    }

    pub fn last_position(&self) -> (u64, u64) {
        let last = self.last();
        (self.term_at(last).unwrap_or(0), last)
    }

    /// The first index at which `self` and `after` hold different entries (one
    /// holding an entry the other has not counts), over what both keep in memory
    /// and beyond.
    pub fn first_difference(&self, after: &RaftSeen) -> Option<u64> {
        let from = self.first.max(after.first);
        let to = self.last().max(after.last());
        (from..=to).find(|&i| self.mark(i) != after.mark(i))
    }
}

/// What a trace line says happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftTraceEvent {
    /// The process started (every earlier state of the node is gone but its disk).
    Start,
    /// A step left the node in this state.
    Step(RaftSeen),
    /// A step failed (a write or an fsync) in this state, and the node stops.
    Failed(RaftSeen),
}

/// One line of a Raft trace: when (nanoseconds of a clock every traced process on
/// the machine shares), which node, what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftTraceLine {
    pub at_ns: u64,
    pub node: u64,
    pub event: RaftTraceEvent,
}

const TAG: &str = "chronik-raft-1";

impl RaftTraceLine {
    pub fn encode(&self) -> String {
        let head = format!("{TAG} {} {}", self.at_ns, self.node);
        let (kind, seen) = match &self.event {
            RaftTraceEvent::Start => return format!("{head} start"),
            RaftTraceEvent::Step(seen) => ("step", seen),
            RaftTraceEvent::Failed(seen) => ("failed", seen),
        };
        let entries: Vec<String> = seen
            .entries
            .iter()
            .map(|(t, h)| format!("{t}:{h:x}"))
            .collect();
        format!(
            "{head} {kind} {} {} {} {} {} {} {} {} {} {} {} [{}]",
            seen.term,
            seen.vote,
            u8::from(seen.leader),
            seen.snapshot.0,
            seen.snapshot.1,
            seen.first,
            seen.persisted,
            seen.committed,
            seen.applied,
            u8::from(seen.repairing),
            seen.entries.len(),
            entries.join(",")
        )
    }

    /// A line as `encode` wrote it; a torn last line (a killed process) is an error
    /// the reader may skip.
    pub fn parse(line: &str) -> Result<RaftTraceLine, String> {
        let mut words = line.split(' ');
        if words.next() != Some(TAG) {
            return Err(format!("not a Raft trace line: {line:?}"));
        }
        let mut number = |what: &str| -> Result<u64, String> {
            let word = words
                .next()
                .ok_or_else(|| format!("no {what} in {line:?}"))?;
            word.parse()
                .map_err(|_| format!("bad {what} {word:?} in {line:?}"))
        };
        let at_ns = number("time")?;
        let node = number("node")?;
        let tail = line.splitn(4, ' ').nth(3).unwrap_or("");
        let (kind, fields) = tail.split_once(' ').unwrap_or((tail, ""));
        let event = match kind {
            "start" => RaftTraceEvent::Start,
            "step" => RaftTraceEvent::Step(parse_seen(fields, line)?),
            "failed" => RaftTraceEvent::Failed(parse_seen(fields, line)?),
            _ => return Err(format!("unknown event {kind:?} in {line:?}")),
        };
        Ok(RaftTraceLine { at_ns, node, event })
    }
}

fn parse_seen(fields: &str, line: &str) -> Result<RaftSeen, String> {
    let (numbers, entries) = fields
        .split_once(" [")
        .ok_or_else(|| format!("no entries in {line:?}"))?;
    let numbers: Vec<u64> = numbers
        .split(' ')
        .map(|w| {
            w.parse()
                .map_err(|_| format!("bad number {w:?} in {line:?}"))
        })
        .collect::<Result<_, _>>()?;
    let [term, vote, leader, snap_index, snap_term, first, persisted, committed, applied, repairing, count] =
        numbers[..]
    else {
        return Err(format!("expected 11 numbers in {line:?}"));
    };
    let entries = entries
        .strip_suffix(']')
        .ok_or_else(|| format!("torn entries in {line:?}"))?;
    let entries: Vec<Mark> = entries
        .split(',')
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (t, h) = e
                .split_once(':')
                .ok_or_else(|| format!("bad entry {e:?}"))?;
            let term = t.parse().map_err(|_| format!("bad entry term {t:?}"))?;
            let hash = u64::from_str_radix(h, 16).map_err(|_| format!("bad entry hash {h:?}"))?;
            Ok((term, hash))
        })
        .collect::<Result<_, String>>()?;
    if entries.len() as u64 != count {
        return Err(format!(
            "{} entries where {count} were written in {line:?}",
            entries.len()
        ));
    }
    Ok(RaftSeen {
        term,
        vote,
        leader: leader == 1,
        snapshot: (snap_index, snap_term),
        first,
        entries,
        persisted,
        committed,
        applied,
        repairing: repairing == 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_10_a_trace_line_reads_back_as_written() {
        let seen = RaftSeen {
            term: 7,
            vote: 2,
            leader: true,
            snapshot: (100, 6),
            first: 101,
            entries: vec![(6, 0xdead_beef), (7, 1)],
            persisted: 102,
            committed: 101,
            applied: 101,
            repairing: false,
        };
        for event in [
            RaftTraceEvent::Start,
            RaftTraceEvent::Step(seen.clone()),
            RaftTraceEvent::Failed(RaftSeen {
                entries: Vec::new(),
                ..seen
            }),
        ] {
            let line = RaftTraceLine {
                at_ns: 42,
                node: 3,
                event,
            };
            assert_eq!(RaftTraceLine::parse(&line.encode()), Ok(line));
        }
        let torn = RaftTraceLine {
            at_ns: 1,
            node: 1,
            event: RaftTraceEvent::Step(RaftSeen {
                entries: vec![(1, 1)],
                ..RaftSeen::default()
            }),
        }
        .encode();
        assert!(RaftTraceLine::parse(&torn[..torn.len() - 3]).is_err());
    }
}
