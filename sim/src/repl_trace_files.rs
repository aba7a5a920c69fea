//! C-9 over a real run: the replication traces brokers wrote (`chronik
//! --replication-trace FILE`, one file per broker), merged by their CLOCK_MONOTONIC
//! stamps, are fed to the same trace validation as the simulator's runs
//! (`repl_traces.rs`): after every line, what each broker last showed of the traced
//! partition, the commands first applied, the fetch steps and the acknowledgements.
//!
//! A broker is down from the line that notes its start until its first look at the
//! partition: the model crashes it there (in the start it had), and it comes back
//! with what its recovery kept. Between its death and that start it shows what it last showed; a dead
//! broker takes no step, so to the model it is only idle a while longer.

use crate::repl_traces::{NodeShown, ReplTraces};
use chronik_core::replication::{
    FetchStep, PartitionShown, ReplicationEvent, ReplicationTraceLine,
};
use chronik_model::replication::REPLICAS;
use std::path::PathBuf;

/// What the check found.
pub struct Checked {
    pub lines: usize,
    pub steps_validated: u64,
    /// Why the trace ended before its last line (none: it ran to the end).
    pub ended: Option<String>,
    pub rejection: Option<String>,
    /// With `showing_steps`: every step checked, described.
    pub shown: Vec<String>,
}

#[derive(Default, Clone)]
struct Broker {
    incarnation: u64,
    shown: Option<PartitionShown>,
}

/// What the lines so far say: each broker's last look, the acknowledged records
/// (offset, value digest) and the highest offset a deletion was acknowledged below.
struct Merged {
    brokers: Vec<Broker>,
    acked: Vec<(u64, u64)>,
    deleted: u64,
}

impl Merged {
    /// Takes broker index `n`'s line; the fetch steps it reports.
    fn take(
        &mut self,
        n: usize,
        line: &ReplicationTraceLine,
        traces: &mut ReplTraces,
    ) -> Vec<(usize, FetchStep)> {
        match &line.event {
            // Down, as the simulator shows a crashed node: in the start it had.
            ReplicationEvent::Start => {
                traces.started(line.broker as u64);
                self.brokers[n].shown = None;
            }
            ReplicationEvent::Shown { shown, steps } => {
                self.brokers[n] = Broker {
                    incarnation: line.incarnation,
                    shown: Some(shown.clone()),
                };
                return steps.iter().map(|s| (n, s.clone())).collect();
            }
            ReplicationEvent::Applied { index, meta } => traces.applied(*index, meta.clone()),
            ReplicationEvent::Acknowledged { offset, values } => {
                self.acked.extend((*offset..).zip(values.iter().copied()));
            }
            ReplicationEvent::DeletionAcknowledged { offset } => {
                self.deleted = self.deleted.max(*offset)
            }
        }
        Vec::new()
    }

    fn nodes(&self) -> Vec<NodeShown<'_>> {
        self.brokers
            .iter()
            .map(|b| NodeShown {
                incarnation: b.incarnation,
                running: b.shown.as_ref(),
                disk_limited: false,
            })
            .collect()
    }
}

/// Reads, merges and checks the traces; `Err` if a file cannot be read or holds a
/// line that does not parse (other than a torn last line).
pub fn check(paths: &[PathBuf], showing_steps: bool) -> Result<Checked, String> {
    let lines = read_merged(paths)?;
    let mut traces = validation(&lines, showing_steps);
    let mut merged = Merged {
        brokers: vec![Broker::default(); REPLICAS],
        acked: Vec::new(),
        deleted: 0,
    };
    let mut shown = Vec::new();
    for line in &lines {
        let n = usize::try_from(line.broker - 1)
            .ok()
            .filter(|n| *n < REPLICAS)
            .ok_or_else(|| format!("broker {} holds no replica the model has", line.broker))?;
        let steps = merged.take(n, line, &mut traces);
        let acked = (merged.acked.len(), || merged.acked.clone());
        traces.observe(&merged.nodes(), acked, merged.deleted, &steps);
        shown.append(&mut traces.take_shown());
        if !traces.active() {
            break;
        }
    }
    Ok(Checked {
        lines: lines.len(),
        steps_validated: traces.steps_validated,
        ended: traces.ended.clone(),
        rejection: traces.rejection.clone(),
        shown,
    })
}

/// The validation a real run's lines get: with its appends reported, of the
/// partition its steps name (every step a broker writes is of the one it traces).
fn validation(lines: &[ReplicationTraceLine], showing_steps: bool) -> ReplTraces {
    let traced = lines.iter().find_map(|line| match &line.event {
        ReplicationEvent::Shown { steps, .. } => steps.first().map(|s| s.key().clone()),
        _ => None,
    });
    let mut traces = ReplTraces::new().with_produce_hints();
    if let Some(key) = traced {
        traces = traces.of_partition(key);
    }
    if showing_steps {
        traces = traces.showing_steps();
    }
    traces
}

/// Every file's lines, merged by time (a file's own lines keep their order).
fn read_merged(paths: &[PathBuf]) -> Result<Vec<ReplicationTraceLine>, String> {
    let mut lines = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let count = text.lines().count();
        for (i, line) in text.lines().enumerate() {
            match ReplicationTraceLine::parse(line) {
                Ok(line) => lines.push(line),
                // A killed broker may leave its last line torn.
                Err(e) if i + 1 == count => eprintln!("{}: last line torn: {e}", path.display()),
                Err(e) => return Err(format!("{}:{}: {e}", path.display(), i + 1)),
            }
        }
    }
    lines.sort_by_key(|line| line.at_ns);
    Ok(lines)
}
