//! The partitions of one simulated node: the core's `Partitions` on the node's
//! `MemDisk`, with a `ManualCommitter` whose rounds run where the schedule puts them,
//! driven as the broker's shell drives them (the Produce handler, follower serving in
//! Fetch, OffsetForLeaderEpoch, the replica fetcher, the ISR upkeep, housekeeping).
//! Every decision is a call into `chronik_core::replication`; what is here is the
//! waiting and the messages, which in the broker are tokio tasks and sockets.
//!
//! Not yet through the Kafka codec: partition messages travel as the typed values
//! below. A produced batch is prepared by the core's `prepare_produced`, as the
//! Produce handler prepares it.

pub use crate::message::Message;
use crate::wire::{self, Asked};
use chronik_core::disk::Disk;
use chronik_core::errors::{self, ErrorCode};
use chronik_core::log::produced::prepare_produced;
use chronik_core::log::{
    AppendInfo, FsyncPolicy, LogConfig, LogError, ManualCommitter, PartitionLog,
};
use chronik_core::metadata::{MetadataCommand, MetadataState, PartitionInfo};
use chronik_core::replication::{
    follower_fetch_offset, truncation_point_for_answer, AnswerRecords, DeletionStarted, FetchStep,
    Fetched, FollowerFetch, LocalView, NoEvents, PartitionKey, Partitions, ProduceWait, RepairStep,
    Repairs, ReplicationBugs,
};
use kafka_protocol::messages::ApiKey;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where a node keeps its partition directories, as the broker keeps them in
/// `<data>/logs`.
pub const LOGS_DIR: &str = "/logs";

/// How long a follower waits for an answer before it asks again.
const FETCH_RETRY_MS: u64 = 200;
/// Questions of one start kept waiting for their answers (lost ones are never
/// answered).
const MAX_UNANSWERED: usize = 1_024;
/// DeleteRecords' timeout, as an admin client's default request timeout scaled
/// to the simulated runs.
const DELETE_TIMEOUT_MS: u64 = 5_000;
/// The ISR upkeep and housekeeping period (the broker's 100 ms).
const UPKEEP_MS: u64 = 100;
/// `replica.lag.time.max.ms`, short so that runs see shrinks and expansions.
pub const LAG_MAX_MS: u64 = 1_000;
/// A produce's `timeout.ms` (Kafka's default request timeout): longer than a run,
/// so that a request a deposed leader holds is still waiting if it ever leads again.
const PRODUCE_TIMEOUT_MS: u64 = 30_000;
/// What a follower asks for per fetch.
const FETCH_MAX_BYTES: usize = 64 << 10;

/// What the node asks the world to do.
#[derive(Debug)]
pub enum Out {
    Send(u64, Message),
    Propose(MetadataCommand),
    /// A `RepairReplica` (R-REPL-4) whose outcome goes back to `repair_answered`.
    ProposeRepair(PartitionKey, MetadataCommand),
    Note(String),
    /// A rule broken at this node (a client's frame its codec refused).
    Broken(String),
}

struct PendingProduce {
    client: u64,
    wait: ProduceWait,
    deadline: u64,
}

/// A DeleteRecords the leader carried out, waiting for its followers.
struct PendingDeletion {
    client: u64,
    key: PartitionKey,
    started: DeletionStarted,
    deadline: u64,
}

type Completions = Arc<Mutex<Vec<(u64, Result<AppendInfo, LogError>)>>>;

pub struct Host {
    me: i32,
    incarnation: u64,
    pub partitions: Arc<Partitions>,
    committer: ManualCommitter,
    /// Appends whose commit round completed, by request.
    completions: Completions,
    produces: BTreeMap<u64, PendingProduce>,
    deletions: BTreeMap<u64, PendingDeletion>,
    /// Followed partitions with a question in flight, by the leader asked (the
    /// broker runs one replica fetcher per leader, so a question to a new leader does
    /// not wait for the old leader's answer), since when.
    asking: BTreeMap<(u64, PartitionKey), u64>,
    proposed_isr: BTreeMap<PartitionKey, (Vec<i32>, u64)>,
    /// Damaged copies on their way to repair (R-REPL-4), as the broker keeps them.
    repairs: Repairs,
    /// Clients' requests not answered yet, by client, API and request number (each
    /// client kind numbers its own requests, as each Kafka connection numbers its
    /// correlation ids): how their answers are encoded.
    asked: BTreeMap<(u64, i16, u64), Asked>,
    /// The number of this node's last question to a leader; numbers of different
    /// starts never meet.
    next_request: u64,
    /// Questions of this start not answered yet, by number and leader: as a Kafka
    /// connection matches a response to its request, an answer to a question of an
    /// earlier start (its connection closed with that process) is none of them.
    unanswered: BTreeSet<(u64, u64)>,
    next_upkeep: u64,
    /// Fetch steps since the last `take_fetch_steps`; `None` when not kept.
    fetch_steps: Option<Vec<FetchStep>>,
}

/// The client request an answer answers: its API and number.
fn answered_request(answer: &Message) -> Option<(i16, u64)> {
    match answer {
        Message::ProduceAnswer { request, .. } => Some((ApiKey::Produce as i16, *request)),
        Message::ConsumerFetchAnswer { request, .. } => Some((ApiKey::Fetch as i16, *request)),
        Message::DeleteRecordsAnswer { request, .. } => {
            Some((ApiKey::DeleteRecords as i16, *request))
        }
        _ => None,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Host {
    /// Opens (recovers) the node's partition logs for the replayed `state`, as the
    /// broker's start-up does before it serves (R-START-1). Directories of deleted
    /// topics go once the metadata holds this start's registration (R-RECOVER-8).
    pub fn open(
        disk: Arc<dyn Disk>,
        (me, incarnation): (i32, u64),
        state: &MetadataState,
        bugs: ReplicationBugs,
        fsync: FsyncPolicy,
    ) -> Result<Host, LogError> {
        let committer = ManualCommitter::new();
        let config = LogConfig {
            fsync,
            ..LogConfig::default()
        };
        let partitions = Partitions::new(
            disk,
            PathBuf::from(LOGS_DIR),
            config,
            Arc::new(NoEvents),
            committer.queue(),
        )
        .with_bugs(bugs);
        partitions.reconcile_in_start(state, me, incarnation)?;
        Ok(Host {
            me,
            incarnation,
            partitions: Arc::new(partitions),
            committer,
            completions: Arc::default(),
            produces: BTreeMap::new(),
            deletions: BTreeMap::new(),
            asking: BTreeMap::new(),
            proposed_isr: BTreeMap::new(),
            repairs: Repairs::with_bugs(bugs),
            asked: BTreeMap::new(),
            next_request: incarnation << 32,
            unanswered: BTreeSet::new(),
            next_upkeep: 0,
            fetch_steps: None,
        })
    }

    /// Keep the fetch steps from now on, for `take_fetch_steps`.
    pub fn keep_fetch_steps(&mut self) {
        self.fetch_steps.get_or_insert_with(Vec::new);
    }

    pub fn take_fetch_steps(&mut self) -> Vec<FetchStep> {
        self.fetch_steps
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The fetch steps kept since the last `take_fetch_steps`.
    pub fn unreported_fetch_steps(&self) -> &[FetchStep] {
        self.fetch_steps.as_deref().unwrap_or_default()
    }

    fn kept(&mut self, step: FetchStep) {
        if let Some(steps) = &mut self.fetch_steps {
            steps.push(step);
        }
    }

    fn local<'a>(&'a self, state: &'a MetadataState) -> LocalView<'a> {
        LocalView {
            state,
            partitions: &self.partitions,
            me: self.me,
            incarnation: self.incarnation,
        }
    }

    /// What became of a `RepairReplica` this host proposed: applied (`None`), or
    /// refused with a code or unanswered.
    pub fn repair_answered(
        &self,
        key: &PartitionKey,
        refused: Option<Option<ErrorCode>>,
        now: u64,
    ) {
        self.repairs.outcome(key, refused, now);
    }

    /// The first offset this node's copies lost to damage, over all its logs.
    pub fn damaged(&self) -> Option<u64> {
        self.partitions
            .all()
            .iter()
            .filter_map(|(_, log)| log.first_lost_offset())
            .min()
    }

    /// Whether a copy of this node carries a lost-tail mark: its recovery cut a tail
    /// that may have held acknowledged records (R-REPL-4).
    pub fn marks_a_lost_tail(&self) -> bool {
        self.partitions
            .all()
            .iter()
            .any(|(_, log)| log.lost_tail().is_some())
    }

    /// The replica fetcher's repair step for a followed copy (`repair_before_fetch`):
    /// true if the partition is fetched in this round.
    fn repair_before_fetch(
        &self,
        now: u64,
        key: &PartitionKey,
        info: &PartitionInfo,
        log: &PartitionLog,
        out: &mut Vec<Out>,
    ) -> bool {
        match self
            .repairs
            .next_step(key, info, self.me, log.first_lost_offset(), now)
        {
            RepairStep::Healthy => true,
            RepairStep::Wait => false,
            RepairStep::Propose(command) => {
                out.push(Out::ProposeRepair(key.clone(), command));
                false
            }
            RepairStep::Cut(from) => {
                match self.partitions.cut_for_repair(|| log.truncate_to(from)) {
                    Ok(end) => {
                        out.push(Out::Note(format!(
                            "node {} cut its damaged copy of {}-{} to {end}",
                            self.me, key.0, key.1
                        )));
                        self.repairs.cut_done(key);
                        true
                    }
                    Err(e) => {
                        out.push(Out::Note(format!(
                            "node {} cannot cut its damaged copy of {}-{}: {e}",
                            self.me, key.0, key.1
                        )));
                        false
                    }
                }
            }
        }
    }

    /// The metadata changed: open and close logs as it assigns them.
    /// The logs follow the metadata; once it holds this start's registration, the
    /// directories of deleted topics go (R-RECOVER-8).
    pub fn on_view(&self, state: &MetadataState) -> Result<(), LogError> {
        self.partitions
            .reconcile_in_start(state, self.me, self.incarnation)
    }

    /// Produce and DeleteRecords requests still unanswered after their deadline.
    pub fn overdue_requests(&self, now: u64) -> usize {
        let produces = self.produces.values().filter(|p| now > p.deadline);
        let deletions = self.deletions.values().filter(|d| now > d.deadline);
        produces.count() + deletions.count()
    }

    pub fn handle(&mut self, now: u64, state: &MetadataState, from: u64, msg: Message) -> Vec<Out> {
        let outs = self.serve(now, state, from, msg);
        self.on_the_wire(outs)
    }

    /// What the node sends, as Kafka frames of the broker's codec: its questions to
    /// a leader numbered afresh, its answers to clients as their requests call for.
    fn on_the_wire(&mut self, outs: Vec<Out>) -> Vec<Out> {
        outs.into_iter()
            .map(|out| match out {
                Out::Send(to, message) => self.framed(to, message),
                other => other,
            })
            .collect()
    }

    fn framed(&mut self, to: u64, message: Message) -> Out {
        let encoded = match answered_request(&message) {
            Some((api, request)) => match self.asked.remove(&(to, api, request)) {
                Some(asked) => wire::encode_answer(request, &message, &asked),
                None => return Out::Send(to, message),
            },
            None => {
                self.next_request += 1;
                match wire::encode_request(&message, self.next_request, self.me) {
                    Some(encoded) => {
                        self.note_unanswered(to);
                        encoded
                    }
                    None => return Out::Send(to, message),
                }
            }
        };
        self.sent_or_broken(to, encoded)
    }

    /// Lost questions are never answered: the oldest are forgotten past a bound.
    /// This start sent `request` to `to` and waits for its answer.
    pub fn awaits_answer(&self, request: u64, to: u64) -> bool {
        self.unanswered.contains(&(request, to))
    }

    fn note_unanswered(&mut self, to: u64) {
        self.unanswered.insert((self.next_request, to));
        if self.unanswered.len() > MAX_UNANSWERED {
            self.unanswered.pop_first();
        }
    }

    /// An encoded message goes out; one the codec cannot encode breaks R-WIRE-13.
    fn sent_or_broken(&self, to: u64, encoded: Result<Message, String>) -> Out {
        encoded.map_or_else(
            |e| Out::Broken(format!("R-WIRE-13 node {} cannot encode: {e}", self.me)),
            |framed| Out::Send(to, framed),
        )
    }

    /// A replica's question, answered at once, in the frame it calls for.
    fn answer_replica(
        &mut self,
        now: u64,
        state: &MetadataState,
        from: u64,
        asked: Asked,
        request: u64,
        question: Message,
    ) -> Vec<Out> {
        let outs = self.serve(now, state, from, question);
        outs.into_iter()
            .map(|out| match out {
                Out::Send(to, answer) if to == from => {
                    self.sent_or_broken(to, wire::encode_answer(request, &answer, &asked))
                }
                other => other,
            })
            .collect()
    }

    fn serve(&mut self, now: u64, state: &MetadataState, from: u64, msg: Message) -> Vec<Out> {
        match msg {
            Message::KafkaRequest { request, frame } => {
                match wire::decode_request(request, frame) {
                    Ok((message, asked)) if asked.replica_epoch.is_some() => {
                        self.answer_replica(now, state, from, asked, request, message)
                    }
                    Ok((message, asked)) => {
                        self.asked.insert((from, asked.api as i16, request), asked);
                        self.serve(now, state, from, message)
                    }
                    Err(e) => vec![Out::Broken(format!(
                        "R-WIRE-13 node {} refuses request {request}'s frame: {e}",
                        self.me
                    ))],
                }
            }
            Message::KafkaAnswer { request, .. } if !self.unanswered.remove(&(request, from)) => {
                Vec::new()
            }
            Message::KafkaAnswer {
                request,
                asked,
                frame,
            } => match wire::decode_answer(request, &asked, &frame) {
                Ok(answer) => self.serve(now, state, from, answer),
                Err(e) => vec![Out::Broken(format!(
                    "R-WIRE-13 node {} cannot decode an answer: {e}",
                    self.me
                ))],
            },
            Message::Produce {
                request,
                key,
                acks,
                records,
            } => self.produce(now, state, (from, request), key, acks, &records),
            Message::EpochQuery {
                key,
                current_epoch,
                asked,
            } => {
                let answer = self
                    .local(state)
                    .epoch_end(&key.0, key.1, current_epoch, asked);
                if answer.is_ok() {
                    self.kept(FetchStep::EpochServed {
                        key: key.clone(),
                        follower: from as i32,
                    });
                }
                let reply = Message::EpochAnswer {
                    key,
                    current_epoch,
                    answer,
                };
                vec![Out::Send(from, reply)]
            }
            Message::Fetch {
                key,
                epoch,
                offset,
                log_start,
            } => {
                let fetch = FollowerFetch {
                    follower: from as i32,
                    fetch_offset: offset,
                    log_start,
                };
                let (answer, leader_start) = self.serve_fetch(now, state, &key, epoch, fetch);
                let (step_key, follower) = (key.clone(), from as i32);
                self.kept(match answer {
                    Err(errors::UNKNOWN_TOPIC_OR_PARTITION) => FetchStep::Unknown {
                        key: step_key,
                        follower,
                        offset,
                    },
                    _ => FetchStep::Served {
                        key: step_key,
                        follower,
                        offset,
                    },
                });
                let reply = Message::FetchAnswer {
                    key,
                    epoch,
                    answer,
                    leader_start,
                };
                vec![Out::Send(from, reply)]
            }
            Message::EpochAnswer {
                key,
                current_epoch,
                answer,
            } => {
                self.asking.remove(&(from, key.clone()));
                if answer.is_ok() {
                    self.kept(FetchStep::EpochAnswered {
                        key: key.clone(),
                        epoch: current_epoch,
                    });
                }
                self.truncate(state, &key, current_epoch, answer)
            }
            Message::FetchAnswer {
                key,
                epoch,
                answer,
                leader_start,
            } => {
                self.asking.remove(&(from, key.clone()));
                match &answer {
                    Ok(fetched) => self.kept(FetchStep::Answered {
                        key: key.clone(),
                        epoch,
                        records: AnswerRecords::of(fetched.records.as_deref()),
                        refused_at: None,
                    }),
                    Err(errors::OFFSET_OUT_OF_RANGE) => self.kept(FetchStep::Answered {
                        key: key.clone(),
                        epoch,
                        records: AnswerRecords::of(None),
                        refused_at: Some(leader_start),
                    }),
                    Err(_) => {}
                }
                self.apply_fetched(now, state, (&key, epoch), answer, leader_start)
            }
            Message::ConsumerFetch {
                request,
                key,
                offset,
            } => {
                let (answer, log_start) = self.serve_consumer(state, &key, offset);
                let reply = Message::ConsumerFetchAnswer {
                    request,
                    answer,
                    log_start,
                };
                vec![Out::Send(from, reply)]
            }
            Message::DeleteRecords {
                request,
                key,
                offset,
            } => self.delete_records(now, state, (from, request), key, offset),
            Message::ProduceAnswer { .. }
            | Message::ConsumerFetchAnswer { .. }
            | Message::DeleteRecordsAnswer { .. } => Vec::new(),
        }
    }

    /// `produce_submit`: admission, the batch prepared as the handler prepares it
    /// (Produce v9), then the append, whose commit round comes later; the answer
    /// waits as `acks` asks (`ProduceWait`).
    fn produce(
        &mut self,
        now: u64,
        state: &MetadataState,
        (client, request): (u64, u64),
        key: PartitionKey,
        acks: i16,
        records: &[u8],
    ) -> Vec<Out> {
        let refuse = |code: ErrorCode| {
            let result = Err(code);
            vec![Out::Send(
                client,
                Message::ProduceAnswer { request, result },
            )]
        };
        let (log, info) = match self.local(state).admit_produce(&key.0, key.1, acks) {
            Ok(admitted) => admitted,
            Err(code) => return refuse(code),
        };
        let topic_configs = self.local(state).topic_configs(&key.0);
        let configs = &*topic_configs;
        let limit = log.config().max_records_bytes();
        let version = self
            .asked
            .get(&(client, ApiKey::Produce as i16, request))
            .map_or(wire::PRODUCE_VERSION, |asked| asked.version);
        let prepared = match prepare_produced(records, version, configs, limit, now as i64) {
            Ok(Some(prepared)) => prepared,
            Ok(None) => return refuse(errors::INVALID_RECORD),
            Err(code) => return refuse(code),
        };
        let completions = Arc::clone(&self.completions);
        let wait = ProduceWait::append(
            key,
            log,
            info.leader_epoch,
            acks,
            &prepared.bytes,
            now,
            move |result| lock(&completions).push((request, result)),
        );
        self.produces.insert(
            request,
            PendingProduce {
                client,
                wait,
                deadline: now + PRODUCE_TIMEOUT_MS,
            },
        );
        Vec::new()
    }

    /// The leader's side of a follower's Fetch, as the Fetch handler serves it.
    fn serve_fetch(
        &self,
        now: u64,
        state: &MetadataState,
        key: &PartitionKey,
        epoch: i32,
        fetch: FollowerFetch,
    ) -> (Result<Fetched, ErrorCode>, u64) {
        let local = self.local(state);
        let (log, info) = match local.gate(&key.0, key.1, epoch) {
            Ok(gated) => gated,
            Err(code) => return (Err(code), 0),
        };
        let offset = fetch.fetch_offset;
        let upper = local
            .serve_follower_fetch(key, &log, info, fetch, now)
            .upper;
        let high_watermark = log.high_watermark() as i64;
        let log_start = log.log_start_offset();
        let read = log
            .read(offset, FETCH_MAX_BYTES, upper)
            .map_err(|e| errors::from_log_error(&e));
        let fetched = read.map(|read| Fetched {
            records: Some(read.records.into()),
            high_watermark,
            log_start_offset: log_start as i64,
        });
        (fetched, log_start)
    }

    /// A consumer's Fetch, as the Fetch handler serves it: from the leader only, up
    /// to the high watermark (R-WIRE-5, R-REPL-1).
    fn serve_consumer(
        &self,
        state: &MetadataState,
        key: &PartitionKey,
        offset: u64,
    ) -> (Result<Vec<u8>, ErrorCode>, u64) {
        let (log, _) = match self.local(state).gate(&key.0, key.1, -1) {
            Ok(gated) => gated,
            Err(code) => return (Err(code), 0),
        };
        let read = log
            .read(offset, FETCH_MAX_BYTES, log.high_watermark())
            .map(|read| read.records)
            .map_err(|e| errors::from_log_error(&e));
        (read, log.log_start_offset())
    }

    /// DeleteRecords, as its handler runs it: the leader deletes at once, the
    /// answer waits for the followers' log starts (`answer_deletions`).
    fn delete_records(
        &mut self,
        now: u64,
        state: &MetadataState,
        (client, request): (u64, u64),
        key: PartitionKey,
        offset: i64,
    ) -> Vec<Out> {
        match self.local(state).delete_records(&key.0, key.1, offset) {
            Err(code) => {
                let result = Err(code);
                let reply = Message::DeleteRecordsAnswer { request, result };
                vec![Out::Send(client, reply)]
            }
            Ok(started) => {
                let note = format!(
                    "node {} deletes {}-{} below {}",
                    self.me, key.0, key.1, started.target
                );
                self.kept(FetchStep::Deleted {
                    key: key.clone(),
                    offset: started.target,
                });
                let deletion = PendingDeletion {
                    client,
                    key,
                    started,
                    deadline: now + DELETE_TIMEOUT_MS,
                };
                self.deletions.insert(request, deletion);
                vec![Out::Note(note)]
            }
        }
    }

    fn answer_deletions(&mut self, now: u64, state: &MetadataState, out: &mut Vec<Out>) {
        let local = self.local(state);
        let mut answered = Vec::new();
        for (request, d) in &self.deletions {
            let result = match local.deletion_outcome(&d.key, &d.started, now) {
                Some(outcome) => outcome,
                None if now >= d.deadline => Err(errors::REQUEST_TIMED_OUT),
                None => continue,
            };
            answered.push(*request);
            let reply = Message::DeleteRecordsAnswer {
                request: *request,
                result,
            };
            out.push(Out::Send(d.client, reply));
        }
        for request in answered {
            self.deletions.remove(&request);
        }
    }

    /// The replica fetcher after OffsetForLeaderEpoch: cut where the leader's log
    /// diverges, and follow `epoch` from now on (R-REPL-3).
    fn truncate(
        &mut self,
        state: &MetadataState,
        key: &PartitionKey,
        epoch: i32,
        answer: Result<(i32, u64), ErrorCode>,
    ) -> Vec<Out> {
        let (Ok((leader_epoch, end)), Some(log)) = (answer, self.partitions.get(&key.0, key.1))
        else {
            return Vec::new();
        };
        let point = truncation_point_for_answer(&log, leader_epoch, end as i64);
        match self
            .local(state)
            .truncate_for_leader(key, epoch, &log, Some(point))
        {
            Ok(Some(cut)) => vec![Out::Note(format!(
                "node {} truncates {}-{} to {cut} for epoch {epoch}",
                self.me, key.0, key.1
            ))],
            Ok(None) => Vec::new(),
            Err(e) => vec![Out::Note(format!("node {} cannot truncate: {e}", self.me))],
        }
    }

    fn apply_fetched(
        &mut self,
        now: u64,
        state: &MetadataState,
        (key, epoch): (&PartitionKey, i32),
        answer: Result<Fetched, ErrorCode>,
        leader_start: u64,
    ) -> Vec<Out> {
        let Some(log) = self.partitions.get(&key.0, key.1) else {
            return Vec::new();
        };
        let fetched = match answer {
            Ok(fetched) => fetched,
            Err(code) => {
                let refusal = (code, leader_start);
                return match self.local(state).fetch_refused(key, epoch, &log, refusal) {
                    Ok(true) => vec![Out::Note(format!(
                        "node {} starts {}-{} afresh at its leader's log start {leader_start}",
                        self.me, key.0, key.1
                    ))],
                    Ok(false) => Vec::new(),
                    Err(e) => vec![Out::Note(format!(
                        "node {} cannot start {}-{} afresh: {e}",
                        self.me, key.0, key.1
                    ))],
                };
            }
        };
        let following = self.partitions.follower_epoch(key);
        match self
            .local(state)
            .apply_fetched(key, epoch, &log, &fetched, now)
        {
            Ok(applied) if following != Some(epoch) => vec![Out::Note(format!(
                "node {} got a late fetch answer of epoch {epoch} for {}-{} (it follows \
                 {following:?}; applied: {applied})",
                self.me, key.0, key.1
            ))],
            Ok(_) => Vec::new(),
            Err(e) => vec![Out::Note(format!(
                "node {} cannot apply a fetch of {}-{}: {e}",
                self.me, key.0, key.1
            ))],
        }
    }

    /// One pass of the node's background work at `now`; the waiting produce
    /// requests look at the view only if `waiters_look`.
    pub fn tick(&mut self, now: u64, state: &MetadataState, waiters_look: bool) -> Vec<Out> {
        let mut out = Vec::new();
        self.commit_round(now, state);
        self.follow(now, state, &mut out);
        if now >= self.next_upkeep {
            self.next_upkeep = now + UPKEEP_MS;
            self.maintain_isr(now, state, &mut out);
            self.partitions.housekeeping(now);
        }
        if waiters_look {
            self.answer_produces(now, state, &mut out);
            self.answer_deletions(now, state, &mut out);
        }
        self.on_the_wire(out)
    }

    /// The disk completes the queued fsyncs; each append learns its outcome and
    /// moves the high watermark (`produce_finish`).
    fn commit_round(&mut self, now: u64, state: &MetadataState) {
        self.committer.run_round();
        let done = std::mem::take(&mut *lock(&self.completions));
        let local = LocalView {
            state,
            partitions: &self.partitions,
            me: self.me,
            incarnation: self.incarnation,
        };
        for (request, result) in done {
            if let Some(pending) = self.produces.get_mut(&request) {
                pending.wait.on_outcome(&local, &result, now);
            }
        }
    }

    fn answer_produces(&mut self, now: u64, state: &MetadataState, out: &mut Vec<Out>) {
        let local = self.local(state);
        let mut answered = Vec::new();
        for (request, p) in &self.produces {
            let Some(result) = p.wait.answer(&local, now >= p.deadline) else {
                continue;
            };
            answered.push(*request);
            let key = p.wait.key();
            out.push(Out::Note(format!(
                "node {} answers produce {request} to {}-{}: {result:?}",
                self.me, key.0, key.1
            )));
            let reply = Message::ProduceAnswer {
                request: *request,
                result,
            };
            out.push(Out::Send(p.client, reply));
        }
        for request in answered {
            self.produces.remove(&request);
        }
    }

    /// The replica fetcher: for every partition this node follows, first the
    /// truncation for the leader's epoch, then fetches from the log end.
    fn follow(&mut self, now: u64, state: &MetadataState, out: &mut Vec<Out>) {
        for (topic, t) in &state.topics {
            for (index, p) in t.partitions.iter().enumerate() {
                let key = (topic.clone(), index as i32);
                let Some(leader) = self.local(state).followed_leader(p) else {
                    continue;
                };
                let to = leader as u64;
                let question = (to, key.clone());
                if self
                    .asking
                    .get(&question)
                    .is_some_and(|at| now < at + FETCH_RETRY_MS)
                {
                    continue;
                }
                let Some(log) = self.partitions.get(&key.0, key.1) else {
                    continue;
                };
                if !self.repair_before_fetch(now, &key, p, &log, out) {
                    continue;
                }
                let message = if self.partitions.follower_epoch(&key) != Some(p.leader_epoch) {
                    let Some(asked) = log.last_leader_epoch() else {
                        // Nothing to compare: follow the epoch without cutting.
                        let _ =
                            self.local(state)
                                .truncate_for_leader(&key, p.leader_epoch, &log, None);
                        continue;
                    };
                    Message::EpochQuery {
                        key: key.clone(),
                        current_epoch: p.leader_epoch,
                        asked,
                    }
                } else {
                    let offset = follower_fetch_offset(&log);
                    self.kept(FetchStep::Asked {
                        key: key.clone(),
                        offset,
                    });
                    Message::Fetch {
                        key: key.clone(),
                        epoch: p.leader_epoch,
                        offset,
                        log_start: log.log_start_offset(),
                    }
                };
                self.asking.insert(question, now);
                out.push(Out::Send(to, message));
            }
        }
    }

    /// `maintain_isr`: on every led partition, move the high watermark and propose
    /// the ISR the tracker wants, once per change and second; on every copy short of
    /// records, propose its repair.
    fn maintain_isr(&mut self, now: u64, state: &MetadataState, out: &mut Vec<Out>) {
        let live = state.live_brokers();
        let local = LocalView {
            state,
            partitions: &self.partitions,
            me: self.me,
            incarnation: self.incarnation,
        };
        for (key, log) in self.partitions.all() {
            let Some(info) = state.partition(&key.0, key.1) else {
                continue;
            };
            let lost_from = log.first_lost_offset();
            if !state.leads(info, self.me, self.incarnation) {
                // As the broker: a follower's repair does not wait for its fetcher,
                // which cannot reach a leader out of reach (seed 282).
                if let Some(RepairStep::Propose(command)) = lost_from
                    .map(|from| self.repairs.next_step(&key, info, self.me, Some(from), now))
                {
                    out.push(Out::ProposeRepair(key.clone(), command));
                }
                continue;
            }
            local.advance_high_watermark(&key, &log, now);
            if let RepairStep::Propose(command) =
                self.repairs.next_step(&key, info, self.me, lost_from, now)
            {
                out.push(Out::ProposeRepair(key.clone(), command));
                continue;
            }
            let Some(isr) = self
                .partitions
                .wanted_isr(&key, &log, info, &live, self.me, now, LAG_MAX_MS)
            else {
                continue;
            };
            let recent = self
                .proposed_isr
                .get(&key)
                .is_some_and(|(p, at)| *p == isr && now.saturating_sub(*at) < 1_000);
            if recent {
                continue;
            }
            self.proposed_isr.insert(key.clone(), (isr.clone(), now));
            if let Some(steps) = &mut self.fetch_steps {
                steps.push(FetchStep::IsrProposed {
                    key: key.clone(),
                    isr: isr.clone(),
                });
            }
            out.push(Out::Note(format!(
                "node {} proposes ISR {isr:?} for {}-{} (was {:?})",
                self.me, key.0, key.1, info.isr
            )));
            out.push(Out::Propose(local.isr_change(&key, info, isr)));
        }
    }
}
