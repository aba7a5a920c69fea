//! Trace validation of partition directories (R-RECOVER-8, issue 11): for every topic
//! name an admin creates, what its hosting node shows of it (the metadata it has
//! applied, the log it has open, the topic id stamped in its directory on disk) after
//! each start, each published view and each crash is checked against the directories
//! model (`chronik_model::dirs::trace`): every step must be one the model allows. The
//! end-of-run checks see only lost data; this sees a wrong decision even in a run
//! where it happened to lose nothing.
//!
//! The committed log is read from what the nodes report and applied in index order to
//! a reference `MetadataState`, so a command counts as the model's `CreateTopic`,
//! `DeleteTopic` or `Register` only if the state machine took it. Topic ids become the
//! model's by the order their creations were committed.

use crate::records;
use chronik_core::consensus::RaftObservation;
use chronik_core::disk::MemDisk;
use chronik_core::metadata::{CommandEnvelope, MetadataCommand, MetadataState};
use chronik_core::replication::{read_stamp, Partitions, Stamp};
use chronik_model::dirs::trace::{DirEvent, DirObservation, DirTrace};
use chronik_model::dirs::{len8, DCmd, TopicId};
use std::collections::BTreeMap;
use std::path::Path;

/// One command of a node's model log: its commit index, the topic name it is about
/// (none for the node's registrations), the command.
type Logged = (u64, Option<String>, DCmd);

#[derive(Default)]
pub struct DirTraces {
    reference: MetadataState,
    next_index: u64,
    /// Committed entries reported ahead of one not reported yet.
    ahead: BTreeMap<u64, Vec<u8>>,
    /// Topic id -> its number among its name's creations (from 1).
    numbers: BTreeMap<String, TopicId>,
    creations: BTreeMap<String, TopicId>,
    /// Name -> the node hosting its partition 0.
    owners: BTreeMap<String, u64>,
    logs: BTreeMap<u64, Vec<Logged>>,
    /// (node, incarnation) -> the node's start number; per node, its starts so far.
    start_of: BTreeMap<(u64, u64), u8>,
    starts: BTreeMap<u64, u8>,
    /// Per node, its events so far (consecutive views merged) with the applied
    /// index after each: a name created later replays them before its first event.
    history: BTreeMap<u64, Vec<(DirEvent, u64)>>,
    traces: BTreeMap<(u64, String), DirTrace>,
    /// Per node, what each of its names showed at its last crash, followed only at
    /// its next start: a leader may commit and sync entries that nobody reported
    /// before it died, and the start's durable commit is the first sign of them, so
    /// the model takes the crash with every commit known by then.
    pending_crashes: BTreeMap<u64, Vec<(String, DirObservation)>>,
    pub steps_validated: u64,
    pub started: u64,
    /// Traces given up because the reference lacked entries the node had applied
    /// (compacted into a snapshot in the step that applied them, on every node,
    /// before any reported them): counted, never silent.
    pub abandoned: u64,
    pub rejections: Vec<String>,
}

/// What a node shows at an event: whether it runs, and its applied metadata and
/// open logs if it does.
pub struct Shown<'a> {
    pub node: u64,
    pub event: DirEvent,
    pub state: Option<&'a MetadataState>,
    pub partitions: Option<&'a Partitions>,
    pub disk: &'a MemDisk,
    pub logs_dir: &'a Path,
    /// At a start, the durable commit index recovery found.
    pub durable_commit: Option<u64>,
}

impl DirTraces {
    pub fn new() -> Self {
        DirTraces {
            next_index: 1,
            ..Default::default()
        }
    }

    /// A node started with this incarnation (before its `Start` event).
    pub fn started(&mut self, node: u64, incarnation: u64) {
        let n = self.starts.entry(node).or_default();
        *n += 1;
        self.start_of.insert((node, incarnation), *n);
    }

    /// Entries a node reports committed; applied to the reference in index order.
    pub fn committed(&mut self, observed: &RaftObservation) {
        for (k, entry) in observed.entries.iter().enumerate() {
            let index = observed.first_index + k as u64;
            if index >= self.next_index && index <= observed.committed {
                self.ahead
                    .entry(index)
                    .or_insert_with(|| entry.data.to_vec());
            }
        }
        while let Some(data) = self.ahead.remove(&self.next_index) {
            let index = self.next_index;
            self.next_index += 1;
            if !data.is_empty() {
                self.apply(index, &data);
            }
        }
    }

    fn apply(&mut self, index: u64, data: &[u8]) {
        let Ok(envelope) = CommandEnvelope::decode(data) else {
            return;
        };
        // The topic of the name the command is about, as it was before: all a
        // creation or a deletion is judged by.
        let named = match &envelope.command {
            MetadataCommand::CreateTopic { name, .. } | MetadataCommand::DeleteTopic { name } => {
                self.reference.topics.get(name).map(|t| t.topic_id.clone())
            }
            _ => None,
        };
        self.reference.apply(index, &envelope);
        match &envelope.command {
            MetadataCommand::CreateTopic {
                name, partitions, ..
            } if name != records::TOPIC => {
                let Some(topic) = self.reference.topics.get(name) else {
                    return;
                };
                if named.is_some() {
                    return;
                }
                let number = self.creations.entry(name.clone()).or_default();
                *number += 1;
                self.numbers.insert(topic.topic_id.clone(), *number);
                let Some(owner) = partitions.first().and_then(|r| r.first()) else {
                    return;
                };
                let owner = *owner as u64;
                let first = !self.owners.contains_key(name);
                self.owners.entry(name.clone()).or_insert(owner);
                let logged = (index, Some(name.clone()), DCmd::Create(*number));
                self.logs.entry(owner).or_default().push(logged);
                if first {
                    self.replay_history(owner, name);
                }
            }
            MetadataCommand::DeleteTopic { name } => {
                let Some(gone) = named else {
                    return;
                };
                if self.reference.topics.contains_key(name) {
                    return;
                }
                let (Some(&number), Some(&owner)) =
                    (self.numbers.get(&gone), self.owners.get(name))
                else {
                    return;
                };
                let logged = (index, Some(name.clone()), DCmd::Delete(number));
                self.logs.entry(owner).or_default().push(logged);
            }
            MetadataCommand::RegisterBroker {
                broker_id,
                incarnation,
                ..
            } => {
                let node = *broker_id as u64;
                let took = self
                    .reference
                    .brokers
                    .get(broker_id)
                    .is_some_and(|b| b.incarnation == *incarnation);
                let Some(&start) = self.start_of.get(&(node, *incarnation)) else {
                    return;
                };
                let log = self.logs.entry(node).or_default();
                let again = log.iter().any(|(_, _, c)| *c == DCmd::Register(start));
                if took && !again {
                    log.push((index, None, DCmd::Register(start)));
                }
            }
            _ => {}
        }
    }

    /// The node's model log for `name`, up to commit index `upto`.
    fn committed_for(&self, node: u64, name: &str, upto: u64) -> Vec<DCmd> {
        self.logs
            .get(&node)
            .into_iter()
            .flatten()
            .filter(|(index, n, _)| *index <= upto && n.as_deref().is_none_or(|n| n == name))
            .map(|(_, _, cmd)| *cmd)
            .collect()
    }

    /// A name's first creation: its trace begins with the node's past events.
    fn replay_history(&mut self, node: u64, name: &str) {
        let mut trace = DirTrace::new();
        let past = self.history.get(&node).cloned().unwrap_or_default();
        // What was committed then extends what the node had applied by then.
        let mut known = 0;
        let crash_pending = self.pending_crashes.contains_key(&node);
        // The pending crash is the last event: the node has shown nothing since.
        let followed = past.len().saturating_sub(usize::from(crash_pending));
        for &(event, applied_index) in &past[..followed] {
            known = known.max(applied_index);
            let committed = self.committed_for(node, name, known);
            let running = event != DirEvent::Crash;
            let applied = self.committed_for(node, name, applied_index);
            let observed = DirObservation {
                running,
                applied: if running { len8(&applied) } else { 0 },
                live: None,
                open: None,
                dir: None,
                durable: None,
            };
            if let Err(e) = trace.observe(event, &committed, &observed) {
                self.rejections
                    .push(format!("node {node}, {name} (before it existed): {e}"));
                return;
            }
        }
        if let Some(pending) = self.pending_crashes.get_mut(&node) {
            let down = DirObservation {
                running: false,
                applied: 0,
                live: None,
                open: None,
                dir: None,
                durable: None,
            };
            pending.push((name.to_string(), down));
        }
        self.started += 1;
        self.traces.insert((node, name.to_string()), trace);
    }

    /// Checks every name the node hosts against what it shows after `event`.
    pub fn observe(&mut self, shown: &Shown<'_>) {
        let history = self.history.entry(shown.node).or_default();
        // A crash shows nothing applied; what it lost is what the node had applied.
        let had_applied = history.last().map_or(0, |(_, at)| *at);
        let applied_index = shown.state.map_or(had_applied, |s| s.applied_index);
        match history.last_mut() {
            Some((DirEvent::View, at)) if shown.event == DirEvent::View => *at = applied_index,
            _ => history.push((shown.event, applied_index)),
        }
        let names: Vec<String> = self
            .traces
            .keys()
            .filter(|(n, _)| *n == shown.node)
            .map(|(_, name)| name.clone())
            .collect();
        // The reference has not taken every entry the node applied: a view waits for
        // the next (the model learns several entries in one step), a start or a crash
        // cannot be followed.
        let known = applied_index.max(shown.durable_commit.unwrap_or(0)) < self.next_index;
        if !known {
            if shown.event != DirEvent::View {
                self.abandoned += names.len() as u64;
                for name in names {
                    self.traces.remove(&(shown.node, name));
                }
            }
            return;
        }
        if shown.event == DirEvent::Crash {
            self.defer_crash(shown, names);
            return;
        }
        let crashed = match shown.event {
            DirEvent::Start => self.pending_crashes.remove(&shown.node),
            _ => None,
        };
        for (name, down) in crashed.into_iter().flatten() {
            self.follow(shown.node, &name, DirEvent::Crash, &down);
        }
        for name in names {
            let Some(observed) = self.observation(shown, &name) else {
                // A topic id the reference has not numbered: its creation is among
                // the entries it missed.
                self.abandoned += 1;
                self.traces.remove(&(shown.node, name));
                continue;
            };
            self.follow(shown.node, &name, shown.event, &observed);
        }
    }

    /// Notes what each name shows at a crash, for the node's next start.
    fn defer_crash(&mut self, shown: &Shown<'_>, names: Vec<String>) {
        let mut down = Vec::new();
        for name in names {
            match self.observation(shown, &name) {
                Some(observed) => down.push((name, observed)),
                None => {
                    self.abandoned += 1;
                    self.traces.remove(&(shown.node, name));
                }
            }
        }
        self.pending_crashes.insert(shown.node, down);
    }

    /// One step of a name's trace, with every commit known so far.
    fn follow(&mut self, node: u64, name: &str, event: DirEvent, observed: &DirObservation) {
        let committed = self.committed_for(node, name, u64::MAX);
        let Some(trace) = self.traces.get_mut(&(node, name.to_string())) else {
            return;
        };
        self.steps_validated += 1;
        if let Err(e) = trace.observe(event, &committed, observed) {
            self.rejections.push(format!("node {node}, {name}: {e}"));
            self.traces.remove(&(node, name.to_string()));
        }
    }

    fn observation(&self, shown: &Shown<'_>, name: &str) -> Option<DirObservation> {
        let number = |id: &str| self.numbers.get(id).copied();
        let applied = match shown.state {
            Some(state) => len8(&self.committed_for(shown.node, name, state.applied_index)),
            None => 0,
        };
        let live = match shown.state.and_then(|s| s.topics.get(name)) {
            Some(topic) => Some(number(&topic.topic_id)?),
            None => None,
        };
        let open = match shown.partitions.and_then(|p| p.open_topic_id(name, 0)) {
            Some(id) => Some(number(&id)?),
            None => None,
        };
        let stamp = read_stamp(shown.disk, &shown.logs_dir.join(format!("{name}-0")));
        let dir = match stamp.ok().flatten().as_ref().and_then(Stamp::id) {
            Some(id) => Some(number(id)?),
            // No directory, or one a crash left unstamped (removed as stray later;
            // the model has no such directory).
            None => None,
        };
        let durable = shown
            .durable_commit
            .map(|c| len8(&self.committed_for(shown.node, name, c)));
        Some(DirObservation {
            running: shown.state.is_some(),
            applied,
            live,
            open,
            dir,
            durable,
        })
    }
}
