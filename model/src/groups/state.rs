//! The group model's state: the real coordinator, the stored group record and the
//! committed offsets (the metadata), the consumers, and ghost variables.

use chronik_core::groups::{Coordinator, GroupRecord};

pub const GROUP: &str = "g";
pub const TOPIC: &str = "t";
pub const PARTITIONS: u8 = 2;
/// One step of time: two steps without a heartbeat lapse a session.
pub const TICK_MS: u64 = 6_000;
pub const SESSION_MS: i32 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Not in a generation: will send JoinGroup.
    Out,
    Joining,
    /// Has its join answer; will send SyncGroup.
    AwaitingSync,
    Syncing,
    /// Has an assignment and consumes.
    Stable,
    /// Left or crashed, for good.
    Gone,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Consumer {
    pub phase: Phase,
    pub member_id: String,
    pub generation: i32,
    /// The members the leader must assign to (empty unless this consumer leads).
    pub to_assign: Vec<String>,
    /// (partition, next offset to consume) of each partition it owns.
    pub owned: Vec<(u8, u8)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    pub ticks: u8,
    pub joins: u8,
    pub crashes: u8,
    pub restarts: u8,
    /// A consumer crashed or a live consumer's session lapsed: records after its last
    /// commit may legitimately be delivered again.
    pub lossy: bool,
    /// Deliveries of each record, indexed `partition * records + offset`.
    pub delivered: Vec<u8>,
    pub committed_backwards: bool,
    /// A reply arrived for a request no consumer was waiting on.
    pub stray_reply: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GState {
    pub coordinator: Coordinator,
    /// The group's record as the metadata holds it.
    pub stored: Option<GroupRecord>,
    /// The committed offset of each partition.
    pub committed: Vec<u8>,
    pub now: u64,
    pub consumers: Vec<Consumer>,
    pub ghost: Ghost,
}

impl GState {
    /// A consumer that is a current member of the coordinator's current generation.
    pub fn is_current(&self, c: &Consumer) -> bool {
        c.phase == Phase::Stable
            && self.coordinator.generation(GROUP) == Some(c.generation)
            && self
                .coordinator
                .describe(GROUP)
                .is_some_and(|g| g.members.iter().any(|m| m.member_id == c.member_id))
    }
}
