//! The directories model's state: the committed metadata log, the broker's durable
//! Raft log and commit index, its process, its partition directory, and ghost
//! variables only properties read.

/// Topic ids are never reused; 0 is none.
pub type TopicId = u8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DCmd {
    Create(TopicId),
    Delete(TopicId),
    /// The broker's registration of its start number `n`.
    Register(u8),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DPhase {
    #[default]
    Down,
    Running,
    /// Refused to start (R-RECOVER-7), until the operator acts.
    Refused,
}

/// The partition directory of `t`-0.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dir {
    /// The topic id in its `topic_id` file.
    pub stamp: TopicId,
    /// Each record is the id of the topic it was produced to.
    pub records: Vec<TopicId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DGhost {
    pub writes: u8,
    pub crashes: u8,
    pub losses: u8,
    pub next_id: TopicId,
    /// Every metadata command acknowledged, in commit order, lost or not.
    pub history: Vec<DCmd>,
    /// The topic id of every acknowledged record.
    pub acked: Vec<TopicId>,
    pub metadata_lost: bool,
    pub logs_set_aside: bool,
    /// A read of `t` returned a record produced to another topic id.
    pub foreign_read: bool,
    pub refused: bool,
    /// `claim_dir` replaced a directory stamped with another topic id.
    pub replaced: bool,
    /// `claim_dir` left a directory stamped with a topic id the metadata does not
    /// hold yet for a later view.
    pub deferred: bool,
    /// A start removed the directory of a deleted topic.
    pub stray_removed: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DState {
    /// The committed metadata log (a sole voter's is its own Raft log).
    pub cluster: Vec<DCmd>,
    /// How many entries of `cluster` the broker's Raft log holds durably.
    pub wal: u8,
    /// The broker's durable commit index: what a restart replays.
    pub commit: u8,
    pub phase: DPhase,
    /// Entries applied (in memory).
    pub applied: u8,
    /// The topic id whose partition log is open (in memory).
    pub open: Option<TopicId>,
    /// Starts so far; the current start's number.
    pub starts: u8,
    /// This start removed the directories of deleted topics (in memory).
    pub strays_removed: bool,
    pub dir: Option<Dir>,
    pub ghost: DGhost,
}

pub fn len8<T>(v: &[T]) -> u8 {
    u8::try_from(v.len()).unwrap_or(u8::MAX)
}

/// The live topic id of `t` after `log`.
pub fn live_topic(log: &[DCmd]) -> Option<TopicId> {
    log.iter().fold(None, |live, c| match c {
        DCmd::Create(id) => Some(*id),
        DCmd::Delete(id) if live == Some(*id) => None,
        _ => live,
    })
}

impl DState {
    pub fn applied_log(&self) -> &[DCmd] {
        &self.cluster[..usize::from(self.applied).min(self.cluster.len())]
    }

    /// The topic id the broker's applied metadata names for `t`.
    pub fn image_topic(&self) -> Option<TopicId> {
        live_topic(self.applied_log())
    }

    /// The applied metadata holds this start's registration.
    pub fn registered(&self) -> bool {
        self.applied_log().contains(&DCmd::Register(self.starts))
    }

    /// A client may use `t` here: its log is open for the topic the metadata names.
    pub fn serving(&self) -> Option<TopicId> {
        (self.phase == DPhase::Running && self.open.is_some() && self.open == self.image_topic())
            .then_some(self.open)
            .flatten()
    }

    pub fn acked_of(&self, id: TopicId) -> usize {
        self.ghost.acked.iter().filter(|t| **t == id).count()
    }
}
