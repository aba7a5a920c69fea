//! The controller's eligible leader replicas (R-REPL-6, Kafka's KIP-966), as the real
//! `PartitionInfo` keeps them (core/src/metadata/eligible.rs): a member leaving an ISR
//! that ends below `min.insync.replicas` stays eligible to lead, since the high
//! watermark stands still from then on and it holds everything committed.

use super::state::*;
use crate::state::NodeId;

impl Meta {
    /// Sets the ISR; members that leave it below the minimum become eligible if
    /// `eligible` (a follower: it synced what it reported). Back at the minimum, the
    /// ELR empties.
    pub fn set_isr(&mut self, isr: Set, min_isr: u8, eligible: bool) {
        if members(isr).count() >= usize::from(min_isr.max(1)) {
            self.elr = 0;
        } else if eligible {
            self.elr |= self.isr & !isr;
        }
        self.elr &= !isr;
        self.unverified &= self.elr;
        self.isr = isr;
    }

    /// The lowest live eligible replica other than `leaving` leads, alone in the ISR.
    pub fn elect_eligible(&mut self, leaving: NodeId) -> bool {
        let not_live = self.not_live();
        let Some(next) = members(self.elr).find(|r| *r != leaving && !has(not_live, *r)) else {
            return false;
        };
        self.leader = Some(next);
        self.epoch += 1;
        self.isr = bit(next);
        self.elr &= !bit(next);
        self.unverified &= self.elr;
        true
    }

    /// `replica`, out of the ISR now, stays eligible while the ISR is below `min_isr`
    /// (as `set_isr` keeps those it drops).
    pub fn keep_eligible(&mut self, replica: NodeId, min_isr: u8) {
        if members(self.isr).count() < usize::from(min_isr.max(1)) && !has(self.isr, replica) {
            self.elr |= bit(replica);
        }
    }

    /// `back` registered: it leads the offline partition if it is in the ISR, or if
    /// it is eligible and no ISR member is live; those it displaces from the ISR
    /// stay eligible if `displaced_eligible`, unverified if `displaced_unverified`
    /// (under the interval policy they may be leaders whose lapse was a crash).
    pub fn lead_on_return(
        &mut self,
        back: NodeId,
        min_isr: u8,
        (displaced_eligible, displaced_unverified): (bool, bool),
    ) -> bool {
        if self.leader.is_some() {
            return false;
        }
        if has(self.isr, back) {
            self.leader = Some(back);
            self.epoch += 1;
            return true;
        }
        if self.isr & !self.not_live() == 0 && has(self.elr, back) {
            let displaced = self.isr;
            self.leader = Some(back);
            self.epoch += 1;
            self.isr = bit(back);
            self.elr &= !bit(back);
            self.unverified &= self.elr;
            if displaced_eligible {
                for r in members(displaced) {
                    self.keep_eligible(r, min_isr);
                }
                if displaced_unverified {
                    self.unverified |= displaced & self.elr;
                }
            }
            return true;
        }
        false
    }

    /// `back` registered in a new start after a crash that may have cut what it
    /// acknowledged: an unverified eligible replica leaves the eligible set unless
    /// nothing else could lead; it no longer is unverified either way (registered,
    /// it is judged by what its copy holds).
    pub fn forget_unverified(&mut self, back: NodeId) {
        if has(self.unverified, back) && (self.isr | self.elr) & !bit(back) != 0 {
            self.elr &= !bit(back);
        }
        self.unverified &= !bit(back);
    }

    /// A new incarnation of `back`, which may have lost records it acknowledged
    /// before syncing them, led or would lead: another live ISR member leads, else a
    /// live eligible replica; with verified eligible replicas none of which is live,
    /// the partition waits offline (`awaits_unverified`: for unverified ones too).
    /// With neither, `back` leads (R-REPL-5): an unverified replica's copy is no
    /// better than its own.
    pub fn hand_over_after_unclean_restart(
        &mut self,
        back: NodeId,
        min_isr: u8,
        awaits_unverified: bool,
    ) -> bool {
        let leads_or_would =
            self.leader == Some(back) || (self.leader.is_none() && has(self.isr, back));
        if !leads_or_would {
            return false;
        }
        let not_live = self.not_live();
        if let Some(next) = members(self.isr).find(|r| *r != back && !has(not_live, *r)) {
            self.leader = Some(next);
            self.epoch += 1;
            self.set_isr(self.isr & !bit(back), min_isr, false);
            return true;
        }
        let awaited = if awaits_unverified {
            self.elr
        } else {
            self.elr & !self.unverified
        };
        if awaited & !bit(back) == 0 {
            return false;
        }
        if !self.elect_eligible(back) {
            if self.leader.take().is_some() {
                self.epoch += 1;
            }
            self.isr &= !bit(back);
        }
        true
    }
}
