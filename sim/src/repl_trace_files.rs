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

/// Reads, merges and checks the traces; `Err` if a file cannot be read or holds a
/// line that does not parse (other than a torn last line).
pub fn check(paths: &[PathBuf], showing_steps: bool) -> Result<Checked, String> {
    let lines = read_merged(paths)?;
    // Every step a broker writes is of the partition it traces.
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
    let mut brokers: Vec<Broker> = vec![Broker::default(); REPLICAS];
    let mut acked: Vec<(u64, u64)> = Vec::new();
    let mut deleted = 0;
    let mut shown = Vec::new();
    for line in &lines {
        let Some(n) = usize::try_from(line.broker - 1)
            .ok()
            .filter(|n| *n < REPLICAS)
        else {
            return Err(format!(
                "broker {} holds no replica the model has",
                line.broker
            ));
        };
        let mut steps: Vec<(usize, FetchStep)> = Vec::new();
        match &line.event {
            // Down, as the simulator shows a crashed node: in the start it had.
            ReplicationEvent::Start => {
                traces.started(line.broker as u64);
                brokers[n].shown = None;
            }
            ReplicationEvent::Shown {
                shown,
                steps: taken,
            } => {
                brokers[n].incarnation = line.incarnation;
                brokers[n].shown = Some(shown.clone());
                steps.extend(taken.iter().map(|s| (n, s.clone())));
            }
            ReplicationEvent::Applied { index, meta } => traces.applied(*index, meta.clone()),
            ReplicationEvent::Acknowledged { offset, values } => {
                acked.extend((*offset..).zip(values.iter().copied()));
            }
            ReplicationEvent::DeletionAcknowledged { offset } => deleted = deleted.max(*offset),
        }
        let nodes: Vec<NodeShown> = brokers
            .iter()
            .map(|b| NodeShown {
                incarnation: b.incarnation,
                running: b.shown.as_ref(),
                disk_limited: false,
            })
            .collect();
        traces.observe(&nodes, (acked.len(), || acked.clone()), deleted, &steps);
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
