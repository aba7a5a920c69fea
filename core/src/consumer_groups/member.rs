//! One member of a KIP-848 consumer group and where it stands in reaching its target.

use super::{Assignment, MemberView};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberState {
    /// Owns exactly its target at the current assignment epoch.
    Stable,
    /// Must give up partitions first; keeps its epoch until it reports them gone.
    UnrevokedPartitions,
    /// At the new epoch, waiting for partitions other members still own.
    UnreleasedPartitions,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Member {
    pub epoch: i32,
    /// The epoch before the last bump: a heartbeat naming it is a late one, accepted
    /// if it owns no more than the member was given (Kafka's rule).
    pub previous_epoch: i32,
    pub state: MemberState,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed: BTreeSet<String>,
    pub server_assignor: Option<String>,
    /// The partitions it has been given and keeps.
    pub assigned: Assignment,
    /// Partitions it was told to give up and has not yet reported gone.
    pub revoking: Assignment,
    pub session_deadline_ms: u64,
    /// While revoking: it is removed if it has not finished by then.
    pub revocation_deadline_ms: Option<u64>,
}

impl Member {
    /// Everything it may still be consuming: the kept partitions and those it is
    /// giving up. No other member is given any of them.
    pub fn held(&self) -> Assignment {
        let mut held = self.assigned.clone();
        for (topic, partitions) in &self.revoking {
            held.entry(*topic).or_default().extend(partitions);
        }
        held
    }

    pub fn view(&self, id: &str, target: Assignment) -> MemberView {
        MemberView {
            member_id: id.to_string(),
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            member_epoch: self.epoch,
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            subscribed_topics: self.subscribed.clone(),
            assigned: self.assigned.clone(),
            target,
        }
    }
}
