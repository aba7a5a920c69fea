//! Who may lead a partition: its ISR and, below `min.insync.replicas`, its eligible
//! leader replicas (ELR, Kafka's KIP-966). The controller's side of R-REPL-6; the
//! leader's side is that its high watermark stands still while the ISR is below the
//! minimum (`LocalView::advance_high_watermark`).
//!
//! Why: every record below the high watermark is on every ISR member (R-REPL-1). A
//! member that leaves the ISR while it is below the minimum still holds all of
//! them, and since the high watermark stands still from then on, it goes on holding
//! everything committed. It stays eligible, so that when the last ISR member cannot
//! be trusted (it restarted after a crash that may have cut records it acknowledged
//! before syncing them, R-REPL-5) an eligible replica leads, not the member that lost
//! them (found by the simulator, `--faults interval` seed 50210).

use super::state::PartitionInfo;
use super::BrokerId;

impl PartitionInfo {
    /// `min.insync.replicas` as the controller applies it to this partition: never
    /// more than its replicas (Kafka's `effectiveMinIsr`).
    pub fn effective_min_isr(&self, min_isr: usize) -> usize {
        min_isr.min(self.replicas.len()).max(1)
    }

    /// Sets the ISR. Members that leave it while it ends below the minimum become
    /// eligible if `eligible` (a follower holds what it reported: it synced it);
    /// a copy about to be cut (R-REPL-4) or a leader whose unsynced tail a crash may
    /// have cut does not. The ELR empties once the ISR is back at the minimum: its
    /// members then lack what is committed from there on.
    pub fn set_isr(&mut self, isr: Vec<BrokerId>, min_isr: usize, eligible: bool) {
        if isr.len() >= self.effective_min_isr(min_isr) {
            self.elr.clear();
        } else if eligible {
            let leaving = self.isr.iter().filter(|r| !isr.contains(r));
            let new: Vec<BrokerId> = leaving.filter(|r| !self.elr.contains(r)).copied().collect();
            self.elr.extend(new);
            // Sorted, so that the first live one is the lowest id, as in the model.
            self.elr.sort_unstable();
        }
        self.elr.retain(|r| !isr.contains(r));
        self.isr = isr;
        self.drop_stale_unverified();
    }

    /// Keeps `unverified` within the eligible set: every change of the ELR ends here.
    pub fn drop_stale_unverified(&mut self) {
        let elr = &self.elr;
        self.unverified.retain(|r| elr.contains(r));
    }

    /// Marks eligible `replica` unverified (see `PartitionInfo::unverified`).
    pub fn mark_unverified(&mut self, replica: BrokerId) {
        if self.elr.contains(&replica) && !self.unverified.contains(&replica) {
            self.unverified.push(replica);
            self.unverified.sort_unstable();
        }
    }

    /// The ISR without `broker`.
    pub fn isr_without(&self, broker: BrokerId) -> Vec<BrokerId> {
        self.isr.iter().copied().filter(|r| *r != broker).collect()
    }

    /// An eligible replica among `live` takes over as leader and sole ISR member
    /// (leader epoch + 1). False if none is live.
    pub fn elect_eligible(&mut self, leaving: BrokerId, live: &[BrokerId]) -> bool {
        let Some(next) = self
            .elr
            .iter()
            .copied()
            .find(|r| *r != leaving && live.contains(r))
        else {
            return false;
        };
        self.leader = Some(next);
        self.leader_epoch += 1;
        self.isr = vec![next];
        self.elr.retain(|r| *r != next);
        self.drop_stale_unverified();
        true
    }

    /// `replica`, out of the ISR now, stays eligible while the ISR is below the
    /// minimum (as `set_isr` keeps those it drops).
    pub fn keep_eligible(&mut self, replica: BrokerId, min_isr: usize) {
        let below = self.isr.len() < self.effective_min_isr(min_isr);
        if below && !self.isr.contains(&replica) && !self.elr.contains(&replica) {
            self.elr.push(replica);
            self.elr.sort_unstable();
        }
    }

    /// A registration of `back` (live among `live` now): leads the offline
    /// partition if it is in its ISR, or if it is eligible and no ISR member is live
    /// (those who stayed in the ISR are then not waited for: the eligible replica
    /// holds everything committed, and the high watermark stood still since it
    /// left). Those it displaces from the ISR stay eligible: they hold everything
    /// committed too, and the new leader may yet find its own copy short (R-REPL-4).
    /// Those among `interval` (acknowledging before fsync) are unverified: a leader
    /// among them may be down after a crash. True if it now leads.
    pub fn lead_on_return(
        &mut self,
        back: BrokerId,
        live: &[BrokerId],
        min_isr: usize,
        interval: &[BrokerId],
    ) -> bool {
        if self.leader.is_some() {
            return false;
        }
        if self.isr.contains(&back) {
            self.leader = Some(back);
            self.leader_epoch += 1;
            return true;
        }
        let displaced = self.isr.clone();
        let isr_live = displaced.iter().any(|r| live.contains(r));
        if isr_live || !self.elect_eligible(-1, &[back]) {
            return false;
        }
        for r in displaced {
            self.keep_eligible(r, min_isr);
            if interval.contains(&r) {
                self.mark_unverified(r);
            }
        }
        true
    }

    /// `back` registered in a new start after a crash that may have cut what it
    /// acknowledged: as an unverified eligible replica it leaves the eligible set,
    /// unless nothing else could lead (KIP-966 takes a broker out at its
    /// registration after an unclean shutdown; Chronik keeps the last copy, as
    /// `hand_over_after_unclean_restart` keeps a lone leader). Registered, it is no
    /// longer unverified either way. True if the partition changed.
    pub fn forget_unverified(&mut self, back: BrokerId) -> bool {
        if !self.unverified.contains(&back) {
            return false;
        }
        let others = self.isr.iter().chain(&self.elr).any(|r| *r != back);
        if others {
            self.elr.retain(|r| *r != back);
        }
        self.unverified.retain(|r| *r != back);
        true
    }

    /// A new incarnation of `back`, whose crash may have cut records it acknowledged
    /// before syncing them, was this partition's leader or would become it: another
    /// live ISR member leads, else a live eligible replica; with verified eligible
    /// replicas none of which is live the partition waits, offline, for one of them.
    /// With neither, `back` keeps or takes the lead: its copy is the best there is,
    /// an unverified replica's no better (R-REPL-5, R-REPL-6; waiting for one lost
    /// acknowledged records in the simulator's `--faults interval` seed 54). False
    /// if nothing changed.
    pub fn hand_over_after_unclean_restart(
        &mut self,
        back: BrokerId,
        live: &[BrokerId],
        min_isr: usize,
    ) -> bool {
        let leads_or_would =
            self.leader == Some(back) || (self.leader.is_none() && self.isr.contains(&back));
        if !leads_or_would {
            return false;
        }
        if let Some(next) = self.successor_of(back, live) {
            self.leader = Some(next);
            self.leader_epoch += 1;
            self.set_isr(self.isr_without(back), min_isr, false);
            return true;
        }
        let mut verified = self.elr.iter().filter(|r| !self.unverified.contains(r));
        if verified.all(|r| *r == back) {
            return false;
        }
        if !self.elect_eligible(back, live) {
            if self.leader.take().is_some() {
                self.leader_epoch += 1;
            }
            self.isr.retain(|r| *r != back);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(isr: &[BrokerId], elr: &[BrokerId]) -> PartitionInfo {
        PartitionInfo {
            replicas: vec![0, 1, 2],
            leader: isr.first().copied(),
            leader_epoch: 0,
            isr: isr.to_vec(),
            elr: elr.to_vec(),
            unverified: Vec::new(),
            partition_epoch: 0,
        }
    }

    #[test]
    fn r_repl_6_members_leaving_below_the_minimum_stay_eligible() {
        let mut p = partition(&[0, 1, 2], &[]);
        p.set_isr(vec![0, 1], 2, true);
        assert_eq!(
            p.elr,
            Vec::<BrokerId>::new(),
            "at the minimum nobody is eligible"
        );
        p.set_isr(vec![0], 2, true);
        assert_eq!(p.elr, vec![1]);
        p.set_isr(vec![0, 2], 2, true);
        assert!(p.elr.is_empty(), "back at the minimum the ELR empties");
    }

    #[test]
    fn r_repl_6_a_copy_that_cannot_be_trusted_is_never_eligible() {
        let mut p = partition(&[0, 1], &[]);
        p.set_isr(vec![0], 2, false);
        assert!(p.elr.is_empty());
    }

    #[test]
    fn r_repl_6_an_unclean_sole_leader_hands_over_to_a_live_eligible_replica() {
        let mut p = partition(&[0], &[2]);
        assert!(p.hand_over_after_unclean_restart(0, &[0, 1, 2], 2));
        assert_eq!(
            (p.leader, p.leader_epoch, p.isr.clone()),
            (Some(2), 1, vec![2])
        );
        assert!(p.elr.is_empty());
    }

    #[test]
    fn r_repl_6_with_no_live_eligible_replica_the_partition_waits_for_one() {
        let mut p = partition(&[0], &[2]);
        assert!(p.hand_over_after_unclean_restart(0, &[0, 1], 2));
        assert_eq!((p.leader, p.isr.clone()), (None, vec![]));
        assert!(
            !p.lead_on_return(1, &[0, 1], 2, &[]),
            "1 was never eligible"
        );
        assert!(p.lead_on_return(2, &[0, 1, 2], 2, &[]));
        assert_eq!((p.leader, p.isr.clone()), (Some(2), vec![2]));
    }

    #[test]
    fn r_repl_6_an_eligible_replica_leads_while_the_offline_isr_is_down() {
        // ISR {0}, ELR {2}; 0 was fenced with 2 down: offline, ISR kept. 0 holds
        // what was committed too, and stays eligible in case 2's copy turns out
        // short; unverified if it acknowledges before fsync (it may be down after a
        // crash).
        for (interval, unverified) in [(vec![], vec![]), (vec![0, 1, 2], vec![0])] {
            let mut p = partition(&[0], &[2]);
            p.leader = None;
            assert!(
                p.lead_on_return(2, &[1, 2], 2, &interval),
                "0 is down: 2 holds what was committed"
            );
            assert_eq!(
                (p.leader, p.isr.clone(), p.elr.clone(), p.unverified.clone()),
                (Some(2), vec![2], vec![0], unverified)
            );
        }
        let mut waiting = partition(&[0], &[2]);
        waiting.leader = None;
        assert!(
            !waiting.lead_on_return(2, &[0, 2], 2, &[]),
            "0 is live: it leads on its return"
        );
    }

    #[test]
    fn r_repl_6_an_unclean_restart_does_not_wait_for_an_unverified_replica() {
        // ISR {0}, ELR {2}, 2 a fenced interval leader: 0's unclean restart keeps
        // the lead, 2's copy is no better than its own. Verified, 2 is waited for.
        let mut p = partition(&[0], &[2]);
        p.unverified = vec![2];
        assert!(!p.hand_over_after_unclean_restart(0, &[0, 1], 2));
        assert_eq!(p.leader, Some(0));
        p.unverified.clear();
        assert!(p.hand_over_after_unclean_restart(0, &[0, 1], 2));
        assert_eq!((p.leader, p.isr.clone()), (None, vec![]));
    }

    #[test]
    fn r_repl_6_an_unverified_replica_leaves_at_its_next_start_unless_it_is_the_last_copy() {
        let mut p = partition(&[0], &[2]);
        p.unverified = vec![2];
        assert!(p.forget_unverified(2));
        assert_eq!((p.elr.clone(), p.unverified.clone()), (vec![], vec![]));
        let mut last = partition(&[], &[2]);
        last.leader = None;
        last.unverified = vec![2];
        assert!(last.forget_unverified(2));
        assert_eq!(
            (last.elr.clone(), last.unverified.clone()),
            (vec![2], vec![])
        );
        assert!(
            !last.forget_unverified(2),
            "verified now: nothing to forget"
        );
    }

    #[test]
    fn r_repl_5_without_eligible_replicas_the_sole_leader_keeps_leading() {
        let mut p = partition(&[0], &[]);
        assert!(!p.hand_over_after_unclean_restart(0, &[0, 1, 2], 2));
        assert_eq!(p.leader, Some(0));
    }

    #[test]
    fn r_repl_5_another_live_isr_member_takes_over_and_the_restarted_leader_is_not_eligible() {
        let mut p = partition(&[0, 1], &[]);
        assert!(p.hand_over_after_unclean_restart(0, &[0, 1, 2], 2));
        assert_eq!((p.leader, p.isr.clone()), (Some(1), vec![1]));
        assert!(p.elr.is_empty());
    }

    #[test]
    fn r_repl_6_the_minimum_never_exceeds_the_replicas() {
        let p = PartitionInfo {
            replicas: vec![0],
            ..partition(&[0], &[])
        };
        assert_eq!(p.effective_min_isr(2), 1);
    }
}
