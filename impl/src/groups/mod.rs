//! The shell around the group coordinator core (`chronik_core::groups`): it owns the
//! lock, the clock and the oneshot channels of requests waiting in JoinGroup and
//! SyncGroup, and delivers the core's replies to them. Every decision is the core's.

pub use chronik_core::groups::{
    code_of, Committer, GroupConfig, GroupError, GroupState, GroupSummary, JoinRequest, JoinResult,
    LeavingMember, SyncRequest, SyncResult,
};

use chronik_core::groups::{Coordinator, Reply, Token};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::oneshot;

enum Waiter {
    Join(oneshot::Sender<JoinResult>),
    Sync(oneshot::Sender<SyncResult>),
}

struct Inner {
    core: Coordinator,
    waiters: HashMap<Token, Waiter>,
    next_token: Token,
}

pub struct GroupService {
    inner: Mutex<Inner>,
}

impl GroupService {
    pub fn new(config: GroupConfig) -> Self {
        // Member ids of this start must not collide with those of an earlier one.
        let salt = uuid::Uuid::new_v4().as_u64_pair().0;
        GroupService {
            inner: Mutex::new(Inner {
                core: Coordinator::new(config, salt),
                waiters: HashMap::new(),
                next_token: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn join(&self, request: JoinRequest, now_ms: u64) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        let token = inner.register(Waiter::Join(tx));
        let replies = inner.core.join(request, now_ms, token);
        inner.deliver(replies);
        rx
    }

    pub fn sync(&self, request: SyncRequest, now_ms: u64) -> oneshot::Receiver<SyncResult> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        let token = inner.register(Waiter::Sync(tx));
        let replies = inner.core.sync(request, now_ms, token);
        inner.deliver(replies);
        rx
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        self.lock()
            .core
            .heartbeat(group_id, member_id, instance_id, generation_id, now_ms)
    }

    pub fn leave(
        &self,
        group_id: &str,
        leaving: &[LeavingMember],
        now_ms: u64,
    ) -> Vec<Result<(), GroupError>> {
        let mut inner = self.lock();
        let (results, replies) = inner.core.leave(group_id, leaving, now_ms);
        inner.deliver(replies);
        results
    }

    pub fn tick(&self, now_ms: u64) {
        let mut inner = self.lock();
        let replies = inner.core.tick(now_ms);
        inner.deliver(replies);
    }

    pub fn validate_commit(
        &self,
        group_id: &str,
        who: Committer<'_>,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        self.lock().core.validate_commit(group_id, who, now_ms)
    }

    pub fn topics_in_use(
        &self,
        group_id: &str,
    ) -> Result<std::collections::BTreeSet<String>, GroupError> {
        self.lock().core.topics_in_use(group_id)
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        self.lock().core.describe(group_id)
    }

    pub fn list(&self) -> Vec<GroupSummary> {
        self.lock().core.list()
    }

    pub fn delete(&self, group_id: &str) -> Result<(), GroupError> {
        self.lock().core.delete(group_id)
    }
}

impl Inner {
    fn register(&mut self, waiter: Waiter) -> Token {
        self.next_token += 1;
        self.waiters.insert(self.next_token, waiter);
        self.next_token
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
