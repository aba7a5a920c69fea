//! The shell around the group coordinator core (`chronik_core::groups`): it owns the
//! lock and the oneshot channels of requests waiting in JoinGroup and SyncGroup, and
//! delivers the core's replies to them. Every decision is the core's. A step that
//! changed a group's durable record returns a `Settlement`: the caller stores the
//! records (the metadata group) and only then delivers the replies (R-GROUP-8).

pub use chronik_core::groups::{
    code_of, CommitDecider, CommitFence, Committer, GroupConfig, GroupError, GroupRecord,
    GroupState, GroupSummary, JoinRequest, JoinResult, LeavingMember, SyncRequest, SyncResult,
};

pub use chronik_core::consumer_groups::{
    ConsumerGroupConfig, ConsumerGroupRecord, GroupView, Heartbeat, HeartbeatAnswer,
    HeartbeatError, TopicsView,
};

use chronik_core::errors::ErrorCode;
use chronik_core::groups::{settled_replies, ChangedRecords, GroupCoordinators, Reply, Token};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::oneshot;

enum Waiter {
    Join(oneshot::Sender<JoinResult>),
    Sync(oneshot::Sender<SyncResult>),
}

struct Inner {
    /// Classic and KIP-848 groups under one lock, as they share group ids.
    groups: GroupCoordinators,
    waiters: HashMap<Token, Waiter>,
    next_token: Token,
}

pub struct GroupService {
    inner: Mutex<Inner>,
}

/// The replies of a step, held back until the group records it changed are stored.
#[must_use = "deliver the replies with GroupService::settled"]
pub struct Settlement {
    replies: Vec<Reply>,
    pub records: ChangedRecords,
}

impl GroupService {
    pub fn new(config: GroupConfig, consumer_config: ConsumerGroupConfig) -> Self {
        // Member ids of this start must not collide with those of an earlier one.
        let salt = uuid::Uuid::new_v4().as_u64_pair().0;
        GroupService {
            inner: Mutex::new(Inner {
                groups: GroupCoordinators::new(config, consumer_config, salt),
                waiters: HashMap::new(),
                next_token: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn join(
        &self,
        request: JoinRequest,
        now_ms: u64,
    ) -> (oneshot::Receiver<JoinResult>, Settlement) {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        let token = inner.register(Waiter::Join(tx));
        let replies = inner.groups.join(request, now_ms, token);
        (rx, inner.settlement(replies))
    }

    pub fn sync(
        &self,
        request: SyncRequest,
        now_ms: u64,
    ) -> (oneshot::Receiver<SyncResult>, Settlement) {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        let token = inner.register(Waiter::Sync(tx));
        let replies = inner.groups.classic.sync(request, now_ms, token);
        (rx, inner.settlement(replies))
    }

    /// Delivers a step's replies once its records are stored (`stored`), or fails
    /// its SyncGroup answers and keeps the records to store at the next step.
    pub fn settled(&self, settlement: Settlement, stored: bool) {
        let mut inner = self.lock();
        if !stored {
            inner.groups.records_unstored(&settlement.records);
        }
        inner.deliver(settled_replies(settlement.replies, stored));
    }

    /// Takes over `group` from its stored record if that is newer than what this
    /// coordinator holds (after a restart, or when the group moved here).
    pub fn load(&self, group: &str, record: Option<&GroupRecord>, now_ms: u64) {
        self.lock().groups.load(group, record, None, now_ms);
    }

    /// The same for a KIP-848 group.
    pub fn load_consumer_group(
        &self,
        group: &str,
        record: Option<&ConsumerGroupRecord>,
        now_ms: u64,
    ) {
        if !self.lock().groups.load(group, None, record, now_ms) {
            tracing::error!(%group, "the stored consumer group record does not decode; the group starts over");
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        self.lock().groups.classic.heartbeat(
            group_id,
            member_id,
            instance_id,
            generation_id,
            now_ms,
        )
    }

    pub fn leave(
        &self,
        group_id: &str,
        leaving: &[LeavingMember],
        now_ms: u64,
    ) -> (Vec<Result<(), GroupError>>, Settlement) {
        let mut inner = self.lock();
        let (results, replies) = inner.groups.classic.leave(group_id, leaving, now_ms);
        (results, inner.settlement(replies))
    }

    /// When the classic coordinator next needs a tick (KIP-848 groups are ticked
    /// on the shell's poll period).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.lock().groups.classic.next_deadline_ms()
    }

    /// The timers, after forgetting the groups this broker no longer coordinates
    /// (`coordinates` says which it does).
    pub fn tick(&self, now_ms: u64, coordinates: impl Fn(&str) -> bool) -> Settlement {
        let mut inner = self.lock();
        let mut replies = inner.groups.unload_uncoordinated(coordinates);
        let (ticked, removed) = inner.groups.tick(now_ms);
        replies.extend(ticked);
        for (group, member) in removed {
            tracing::info!(%group, %member, "consumer group member removed (session or revocation timeout)");
        }
        inner.settlement(replies)
    }

    /// ConsumerGroupHeartbeat (KIP-848). The settlement holds the records to store
    /// before the answer goes out.
    pub fn consumer_heartbeat(
        &self,
        request: Heartbeat,
        topics: &TopicsView,
        now_ms: u64,
    ) -> (
        Result<HeartbeatAnswer, (HeartbeatError, String)>,
        Settlement,
    ) {
        let mut inner = self.lock();
        let answer = inner.groups.consumer_heartbeat(request, topics, now_ms);
        (answer, inner.settlement(Vec::new()))
    }

    pub fn consumer_group(&self, group_id: &str) -> Option<GroupView> {
        self.lock().groups.consumer.describe(group_id)
    }

    /// May an OffsetCommit be stored, by the rules of the group's protocol (a member
    /// epoch for KIP-848 groups, a generation for classic)? If so, the fence the
    /// metadata checks again when it applies the commit (R-GROUP-10); if not, the
    /// error code.
    /// The fence's sequence is taken under the lock: it is the order of the
    /// decisions.
    pub fn commit_check(
        &self,
        group_id: &str,
        who: Committer<'_>,
        decider: CommitDecider,
        now_ms: u64,
    ) -> Result<Option<CommitFence>, ErrorCode> {
        self.lock()
            .groups
            .commit_check(group_id, who, decider, now_ms)
    }

    /// The fence of an OffsetFetch's read barrier (`MetadataCommand::offsets_barrier`,
    /// R-GROUP-10).
    pub fn read_fence(&self, decider: CommitDecider) -> Option<CommitFence> {
        self.lock().groups.classic.commit_fence(decider, None)
    }

    /// The error code for an OffsetFetch v9 naming `member_id` and `member_epoch`, 0
    /// if it may read: only KIP-848 groups check them.
    pub fn offset_fetch_check(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        epoch: i32,
    ) -> ErrorCode {
        self.lock()
            .groups
            .offset_fetch_check(group_id, member_id, epoch)
    }

    pub fn topics_in_use(
        &self,
        group_id: &str,
    ) -> Result<std::collections::BTreeSet<String>, GroupError> {
        self.lock().groups.topics_in_use(group_id)
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        self.lock().groups.classic.describe(group_id)
    }

    pub fn list(&self) -> Vec<GroupSummary> {
        self.lock().groups.classic.list()
    }

    /// KIP-848 groups: (group id, state).
    pub fn list_consumer_groups(&self) -> Vec<(String, &'static str)> {
        self.lock().groups.consumer.list()
    }

    /// The state of a KIP-848 group, if it is one.
    pub fn consumer_group_state(&self, group_id: &str) -> Option<&'static str> {
        self.lock().groups.consumer.state(group_id)
    }

    pub fn delete(&self, group_id: &str) -> Result<(), GroupError> {
        self.lock().groups.delete(group_id)
    }
}

impl Inner {
    fn register(&mut self, waiter: Waiter) -> Token {
        self.next_token += 1;
        self.waiters.insert(self.next_token, waiter);
        self.next_token
    }

    /// Replies with nothing to store go out at once.
    fn settlement(&mut self, replies: Vec<Reply>) -> Settlement {
        let records = self.groups.take_records();
        if records.is_empty() {
            self.deliver(replies);
            return Settlement {
                replies: Vec::new(),
                records,
            };
        }
        Settlement { replies, records }
    }

    /// A waiter whose request timed out in the handler is gone; its reply is dropped.
    fn deliver(&mut self, replies: Vec<Reply>) {
        for reply in replies {
            match reply {
                Reply::Join(token, result) => {
                    if let Some(Waiter::Join(tx)) = self.waiters.remove(&token) {
                        let _ = tx.send(result);
                    }
                }
                Reply::Sync(token, result) => {
                    if let Some(Waiter::Sync(tx)) = self.waiters.remove(&token) {
                        let _ = tx.send(result);
                    }
                }
            }
        }
        // Handlers that gave up dropped their receivers; forget their senders too.
        self.waiters.retain(|_, w| match w {
            Waiter::Join(tx) => !tx.is_closed(),
            Waiter::Sync(tx) => !tx.is_closed(),
        });
    }
}
