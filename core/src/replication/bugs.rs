//! Test-only faults of the replication steps.

/// Faults re-introduced in the real replication code, test-only (feature
/// `inject-bugs`), so the simulator can show it finds each (issue 10).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicationBugs {
    /// An idempotent retry of a batch already written is acknowledged at once,
    /// before the high watermark covers the original (commit e9b9b57's bug).
    pub retry_acked_at_once: bool,
    /// An acknowledgement ignores that the leader was deposed (and maybe re-elected
    /// in a later epoch) after it appended: its offsets may have been reused.
    pub ack_after_deposed: bool,
    /// A follower appends a fetch answer whatever epoch its log now follows: a late
    /// answer from a deposed leader lands after the truncation for its successor.
    pub append_late_fetch: bool,
    /// A follower truncates on an OffsetForLeaderEpoch answer however stale: after
    /// it became leader itself, or began to follow a later leader.
    pub truncate_on_stale_answer: bool,
    /// A damaged follower cuts its log below the damage at once, still in the ISR,
    /// as recovery did before issue 12, instead of leaving the ISR first (R-REPL-4):
    /// the high watermark still counts on the records it dropped.
    pub cut_damage_in_isr: bool,
    /// Directories of topics the replayed metadata lacks are removed at start-up, as
    /// the broker did before, from metadata that stops at the durable commit index:
    /// topics created after it lose their directories (R-RECOVER-8).
    pub strays_before_registered: bool,
    /// A partition directory stamped with another topic id is adopted as the new
    /// topic's, as before stamps existed (R-RECOVER-8).
    pub adopt_foreign_dirs: bool,
    /// A partition directory stamped with another topic id is replaced whatever view
    /// the broker judges from, as issue 12's fix did: a restarted member catching up
    /// applies an older prefix first and removes the newer topic's records.
    pub claim_from_stale_view: bool,
    /// DeleteRecords is answered once the leader deleted, as before Kafka's wait
    /// for the low watermark was built: a leader lost right after the answer leaves
    /// a successor that still serves the deleted records (R-WIRE-5).
    pub delete_acked_at_once: bool,
    /// The high watermark advances while the ISR is below `min.insync.replicas`,
    /// as before eligible leader replicas: one of them, elected after the last ISR
    /// member restarted uncleanly, lacks records consumers read (R-REPL-6).
    pub hw_below_min_isr: bool,
    /// A restarted broker follows partitions by whatever metadata it has replayed,
    /// before its registration of this start is applied: after its damaged Raft log
    /// was cut, an older view than it had before its crash (R-REPL-3).
    pub follow_before_registered: bool,
    /// A log is opened without its high watermark (seed 002: recovery found the
    /// data but restored no high watermark, so none of it was consumable after a
    /// restart): neither the checkpointed one nor a single replica's durable end.
    pub no_hw_restore: bool,
    /// A tail that recovery cut as torn is forgotten at once, as before the lost-tail
    /// mark: a bad last frame that held an acknowledged record leaves the copy counted
    /// in the ISR, and it may lead again on its shorter log (R-REPL-4).
    pub forget_torn_tail: bool,
    /// A start's registration names no copy as short of records, as before
    /// `RegisterBroker::short_copies`: only the copy's repair proposal, after the
    /// registration, takes it out of the ISR and the eligible set (R-REPL-4).
    pub register_without_short_copies: bool,
}
