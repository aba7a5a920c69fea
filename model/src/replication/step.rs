//! The transitions of the replication model. Each mirrors one call of the real code:
//! the Produce handler and `wait_acknowledgeable` (impl/src/kafka/handlers.rs), the
//! replica fetcher (impl/src/broker/replica_fetcher.rs), `Partitions` and
//! `FollowerTracker` (high watermark, ISR), and the metadata state machine's
//! `FenceBroker` / `RegisterBroker` / `AlterIsr` (impl/src/metadata/state.rs).

use super::*;

fn at(n: NodeId) -> usize {
    usize::from(n)
}

impl ReplicationModel {
    pub fn enabled(&self, s: &RState, out: &mut Vec<RAction>) {
        for n in Self::ids() {
            let r = &s.replicas[at(n)];
            if !r.up {
                out.push(RAction::Restart(n));
                if self.damage_while_down {
                    self.enabled_damage(s, n, out);
                }
            } else {
                self.enabled_on_live(s, n, out);
            }
            // A request outlives its sender's crash.
            if self.reordered_fetches {
                let asked = s.requests.iter().filter(|q| q.from == n).count();
                let asked = u8::try_from(asked).unwrap_or(u8::MAX);
                out.extend((0..asked).map(|k| RAction::FetchServe(n, k)));
                out.extend((0..asked).map(|k| RAction::FetchLost(n, k)));
            }
            if !has(s.meta.not_live(), n) {
                out.push(RAction::Fence(n));
            }
        }
        let in_flight = u8::try_from(s.in_flight.len()).unwrap_or(u8::MAX);
        out.extend((0..in_flight).map(RAction::ProposalArrives));
        if !s.inbox.is_empty() {
            out.push(RAction::Commit);
            if s.ghost.failovers < self.max_failovers {
                let kept = u8::try_from(s.inbox.len()).unwrap_or(u8::MAX);
                out.extend((0..kept).map(RAction::ControllerFailover));
                if self.lossy_proposals {
                    // Losing the last is `ControllerFailover(last)`.
                    out.extend((0..kept.saturating_sub(1)).map(RAction::ProposalLost));
                }
            }
        }
    }

    fn enabled_on_live(&self, s: &RState, n: NodeId, out: &mut Vec<RAction>) {
        let r = &s.replicas[at(n)];
        if r.full {
            out.push(RAction::DiskFreed(n));
        } else if s.ghost.fulls < self.max_full {
            out.push(RAction::DiskFull(n));
        }
        // A full leader's append fails: the produce is answered KAFKA_STORAGE_ERROR
        // and nothing waits.
        if !r.full && self.admits_produce(s, n) {
            out.push(RAction::Produce(n));
            if s.ghost.retries < self.max_retries {
                // A request for a value the client produced reaches this leader: a
                // retry, also while the original still waits here (the client's
                // request timed out first), or an original that arrives after its
                // retry was acknowledged elsewhere (this leader was paused or cut
                // off meanwhile; C-9, swarm seed 1004).
                out.extend((0..s.ghost.produced).map(|v| RAction::Retry(n, v)));
            }
        }
        if r.offline {
            out.push(RAction::Resync(n));
        } else if usize::from(r.durable) < r.log.len() {
            out.push(RAction::Fsync(n));
            if s.ghost.sync_failures < self.max_sync_failures {
                out.push(RAction::FsyncFail(n));
            }
        }
        if let Some(l) = r.view.leader.filter(|l| *l != n) {
            if self.follows_at_once(r, l) {
                out.push(RAction::Truncate(n));
            } else if self.leader_answers(s, l, r.view.epoch) {
                if r.gate != Some(r.view.epoch) {
                    self.enabled_truncation(s, n, out);
                } else if !self.reordered_fetches
                    && !s.net.iter().any(|m| m.to == n)
                    && r.damaged.is_none()
                    && self.fetch_useful(s, n, l)
                {
                    out.push(RAction::FetchRequest(n));
                }
            }
            // The follower does not know whether its leader still leads: it asks.
            let in_flight = s.net.iter().filter(|m| m.to == n).count()
                + s.requests.iter().filter(|q| q.from == n).count();
            if self.reordered_fetches
                && r.gate == Some(r.view.epoch)
                && r.damaged.is_none()
                && in_flight < usize::from(self.max_fetches_in_flight)
            {
                out.push(RAction::FetchSend(n));
            }
        }
        if self.reordered_fetches {
            let in_flight = s.net.iter().filter(|m| m.to == n).count();
            let later = u8::try_from(in_flight).unwrap_or(u8::MAX);
            out.extend((1..later).map(|k| RAction::FetchResponseNth(n, k)));
            out.extend((0..later).map(|k| RAction::FetchAnswerLost(n, k)));
            let answers = s.epoch_answers.iter().filter(|a| a.to == n).count();
            let answers = u8::try_from(answers).unwrap_or(u8::MAX);
            out.extend((0..answers).map(|k| RAction::EpochAnswered(n, k)));
            out.extend((0..answers).map(|k| RAction::EpochAnswerLost(n, k)));
        }
        if let Some(resp) = s.net.iter().find(|m| m.to == n) {
            let appendable = self.appendable(r, resp);
            if r.full && appendable > 0 {
                out.extend((0..=appendable).map(|k| RAction::FetchResponseCut(n, k)));
            } else {
                out.push(RAction::FetchResponse(n));
            }
        }
        if s.ghost.sync_failures < self.max_sync_failures && !r.full && !r.offline {
            let answers = s.net.iter().filter(|m| m.to == n);
            let answers = answers.take(if self.reordered_fetches {
                usize::MAX
            } else {
                1
            });
            for (k, resp) in answers.enumerate() {
                if self.appendable(r, resp) > 0 {
                    let k = u8::try_from(k).unwrap_or(u8::MAX);
                    out.push(RAction::FetchResponseSyncFails(n, k));
                }
            }
        }
        let behind = if self.stepwise_learning {
            usize::from(r.learned) + 1 < s.history.len()
        } else {
            r.view != s.meta
        };
        if behind {
            out.push(RAction::Learn(n));
        }
        // A broker registers again when it sees itself fenced, and its start's
        // registration is retried until applied (lost in a controller failover).
        let unregistered = has(r.view.fenced, n) || s.meta.incarnation[at(n)] < r.incarnation;
        let registering = |c: &MetaCmd| match c {
            MetaCmd::Register(b, i, _) | MetaCmd::Unfence(b, i, _) => {
                *b == n && *i == r.incarnation
            }
            _ => false,
        };
        if unregistered && !s.in_flight.iter().chain(&s.inbox).any(registering) {
            out.push(RAction::Rejoin(n));
        }
        if self.leading(s, n) {
            for f in members(self.droppable(r, n)) {
                out.push(RAction::ShrinkIsr(n, f));
            }
            let mut addable: Set = 0;
            for f in members(ALL & !r.view.isr) {
                let needed = if self.bug(ReplBug::ExpandBelowEpochStart) {
                    r.hw
                } else {
                    r.hw.max(r.epoch_start(r.view.epoch))
                };
                let stale_ok = self.bug(ReplBug::ExpandOnStaleFetch);
                let caught_up = r.tracker_epoch == r.view.epoch
                    && (has(r.fresh, f) || stale_ok)
                    && r.follower_end[at(f)].is_some_and(|e| e >= needed);
                let proposal = MetaCmd::AlterIsr {
                    epoch: r.view.epoch,
                    version: r.view.version,
                    isr: r.view.isr | bit(f),
                };
                if caught_up && !has(r.view.not_live(), f) {
                    // A follower whose expansion waits may be added again in a combined
                    // change, as the real leader's next upkeep round does.
                    addable |= bit(f);
                    if !proposed(s, proposal) {
                        out.push(RAction::ExpandIsr(n, f));
                    }
                }
            }
            if self.combined_isr_changes {
                self.enabled_combined_isr(s, n, addable, out);
            }
            let readable = r.log_start..r.hw.min(self.served_end(r));
            let unread = readable.clone().any(|o| {
                let v = r.log[usize::from(o)].value;
                !s.ghost.read.contains(&(o, v))
            });
            // A read of records below an acknowledged deletion, though read before.
            let deleted_readable = !readable.is_empty() && r.log_start < s.ghost.deleted;
            if unread || deleted_readable {
                out.push(RAction::Consume(n));
            }
            // DeleteRecords below any offset up to the high watermark, also one its
            // log start has passed (it moves nothing, and its answer waits all the
            // same); a full disk refuses the checkpoint the deletion writes first.
            if s.ghost.deletes < self.max_deletes && !r.full {
                out.extend((1..=r.hw).map(|o| RAction::DeleteRecords(n, o)));
            }
        }
        let mark_behind = self.torn_last_frame && r.durable_mark != r.durable;
        if (r.hw_checkpoint != r.hw || mark_behind) && !r.full {
            out.push(RAction::Checkpoint(n));
        }
        self.enabled_repair(s, n, out);
        out.push(RAction::Crash(n));
        if self.torn_crashes {
            let unsynced = r.len() - r.durable;
            out.extend((0..unsynced).map(|kept| RAction::CrashTorn(n, kept)));
            out.extend((1..=unsynced).map(|kept| RAction::CrashKeeping(n, kept)));
        }
    }

    /// ISR proposals that drop and add more than one follower at once (what the real
    /// `wanted_isr` proposes when several changes fall in one upkeep round).
    fn enabled_combined_isr(&self, s: &RState, n: NodeId, addable: Set, out: &mut Vec<RAction>) {
        let view = s.replicas[at(n)].view;
        let droppable = self.droppable(&s.replicas[at(n)], n);
        for add in 0..=ALL {
            for drop in 0..=ALL {
                let single = (add | drop).count_ones() < 2;
                if single || add & !addable != 0 || drop & !droppable != 0 {
                    continue;
                }
                let isr = (view.isr & !drop) | add;
                // As for a single expansion: proposing again what waits to be
                // committed changes nothing but the length of the queue, without bound.
                let proposal = MetaCmd::AlterIsr {
                    epoch: view.epoch,
                    version: view.version,
                    isr,
                };
                if !proposed(s, proposal) {
                    out.push(RAction::ProposeIsr(n, isr));
                }
            }
        }
    }

    /// A bad sector in a record that another durable record follows; with
    /// `torn_last_frame` also in the last one, which recovery may take for a torn
    /// write and cut (R-LOG-13). One at a time per copy.
    fn enabled_damage(&self, s: &RState, n: NodeId, out: &mut Vec<RAction>) {
        let r = &s.replicas[at(n)];
        if s.ghost.damages < self.max_damage && r.damaged.is_none() {
            let end = if self.torn_last_frame {
                r.durable
            } else {
                r.durable.saturating_sub(1)
            };
            out.extend((0..end).map(|o| RAction::Damage(n, o)));
        }
    }

    /// Damage to a durable record, and the repair of a damaged copy (R-REPL-4).
    fn enabled_repair(&self, s: &RState, n: NodeId, out: &mut Vec<RAction>) {
        let r = &s.replicas[at(n)];
        let Some(d) = r.damaged else {
            self.enabled_damage(s, n, out);
            return;
        };
        if self.lossy_proposals
            && r.repair == RepairProgress::Applied
            && s.ghost.failovers < self.max_failovers
        {
            out.push(RAction::RepairUnanswered(n));
        }
        if r.repair_answer_late {
            out.push(RAction::RepairAnswered(n));
        }
        let out_of_isr = !r.view.leads(n) && !has(r.view.isr, n);
        // A leader that is the only ISR member, with no eligible replica, has no one
        // to repair from: it serves what is undamaged and proposes nothing (the real
        // `Repairs::next_step`). With an eligible replica it hands over to it.
        let sole_copy = r.view.leads(n) && !Self::others_may_hold(r, n);
        let cut_now = if self.bug(ReplBug::CutDamageInIsr) {
            true
        } else {
            r.repair == RepairProgress::Applied && out_of_isr
        };
        // The replica fetcher takes its repair step between fetch rounds: never with
        // a fetch of its own still unanswered. A cut rewrites the leader epoch and
        // high watermark checkpoints first, which a full disk refuses: it waits for
        // space, as a truncation for a new leader does. A request an earlier start
        // sent is nobody's: its answer has no connection to come back on.
        let fetching = s.net.iter().any(|m| m.to == n)
            || s.requests
                .iter()
                .any(|q| q.from == n && q.incarnation == r.incarnation);
        if cut_now && d <= r.len() {
            if !fetching && !r.full {
                out.push(RAction::CutDamage(n));
            }
        } else if !sole_copy
            && (r.repair == RepairProgress::None
                || (r.repair == RepairProgress::Applied && !out_of_isr)
                || (r.repair == RepairProgress::Proposed && !Self::repair_proposed(s, n)))
        {
            let proposal = MetaCmd::Repair {
                node: n,
                epoch: r.view.epoch,
                version: r.view.version,
                incarnation: r.incarnation,
            };
            if !proposed(s, proposal) {
                out.push(RAction::ProposeRepair(n));
            }
        }
    }

    /// Another replica may hold what `n`'s copy lost: an ISR member, or an eligible
    /// one (the real `others_may_hold`, R-REPL-6).
    fn others_may_hold(r: &Replica, n: NodeId) -> bool {
        (r.view.isr | r.view.elr) & !bit(n) != 0
    }

    /// The ISR members leader `n` may drop: its followers, unless its copy lost
    /// records while another member holds them (the real `holds_isr`, R-REPL-4: they
    /// lag because it cannot serve them, and dropping them would leave it the sole
    /// copy of records it lacks).
    fn droppable(&self, r: &Replica, n: NodeId) -> Set {
        if r.damaged.is_some() {
            0
        } else {
            r.view.isr & !bit(n)
        }
    }

    /// A `Repair` of `n` waits to be committed (else a controller failover lost it).
    fn repair_proposed(s: &RState, n: NodeId) -> bool {
        s.inbox
            .iter()
            .chain(&s.in_flight)
            .any(|c| matches!(c, MetaCmd::Repair { node, .. } if *node == n))
    }

    /// A follower not yet following its leader's epoch: it asks where its last epoch
    /// ends (with reordered fetches the answer is in flight, at most as many as
    /// fetches may be; the real fetcher asks again when an answer is late).
    fn enabled_truncation(&self, s: &RState, n: NodeId, out: &mut Vec<RAction>) {
        let r = &s.replicas[at(n)];
        if r.view
            .leader
            .is_some_and(|l| !self.answers_epoch_query(s, l))
        {
            return;
        }
        if !self.reordered_fetches {
            if !self.truncation_blocked(s, n) {
                out.push(RAction::Truncate(n));
            }
            return;
        }
        if r.is_empty() {
            return; // `follows_at_once`
        }
        let in_flight = s.epoch_answers.iter().filter(|a| a.to == n).count();
        if in_flight < usize::from(self.max_fetches_in_flight) {
            out.push(RAction::EpochAsk(n));
        }
    }

    /// With reordered fetches: a follower with nothing in its log has nothing to
    /// ask, and follows the epoch of a leader it knows unfenced without a word to it
    /// (the real fetcher does, whether or not that leader is up yet).
    fn follows_at_once(&self, r: &Replica, l: NodeId) -> bool {
        self.reordered_fetches
            && r.is_empty()
            && r.gate != Some(r.view.epoch)
            && !has(r.view.not_live(), l)
    }

    /// `l` answers Fetch and OffsetForLeaderEpoch for `epoch`: it is up and leads in
    /// exactly that epoch (otherwise NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH or
    /// UNKNOWN_LEADER_EPOCH, and the follower tries again later).
    fn leader_answers(&self, s: &RState, l: NodeId, epoch: u8) -> bool {
        self.leading(s, l) && s.replicas[at(l)].view.epoch == epoch
    }

    /// `l` answers OffsetForLeaderEpoch at all: not while its recovery cut a tail it
    /// could not tell from a torn write and another ISR member may hold what was
    /// there (R-REPL-4: KAFKA_STORAGE_ERROR; its answer would make that member cut
    /// acknowledged records). Its repair hands leadership over meanwhile.
    fn answers_epoch_query(&self, s: &RState, l: NodeId) -> bool {
        let r = &s.replicas[at(l)];
        !(r.lost_tail() && Self::others_may_hold(r, l))
    }

    /// A fetch that changes nothing is not an action: the leader holds it (long poll).
    fn fetch_useful(&self, s: &RState, f: NodeId, l: NodeId) -> bool {
        let fr = &s.replicas[at(f)];
        let lr = &s.replicas[at(l)];
        if fr.offline {
            return true;
        }
        let reported = lr.tracker_epoch == lr.view.epoch
            && (has(lr.view.isr, f) || has(lr.fresh, f))
            && lr.follower_end[at(f)] == Some(fr.len());
        // The follower's log start too: it learns the leader's from an answer and
        // reports its own in the next fetch, which a deletion waits for.
        let start_news = self.max_deletes > 0
            && (lr.follower_start[at(f)] != Some(fr.log_start)
                || fr.log_start < lr.log_start.min(fr.hw));
        !reported || self.served_end(lr) > fr.len() || lr.hw.min(fr.len()) > fr.hw || start_news
    }

    /// Only the variables that differ between states that should differ.
    pub fn is_progress(&self, a: &RAction) -> bool {
        matches!(
            a,
            RAction::Fsync(_)
                | RAction::FetchRequest(_)
                | RAction::FetchSend(_)
                | RAction::FetchServe(..)
                | RAction::FetchLost(..)
                | RAction::FetchAnswerLost(..)
                | RAction::FetchResponse(_)
                | RAction::FetchResponseNth(..)
                | RAction::FetchResponseCut(..)
                | RAction::Resync(_)
                | RAction::DiskFreed(_)
                | RAction::Truncate(_)
                | RAction::EpochAsk(_)
                | RAction::EpochAnswered(..)
                | RAction::EpochAnswerLost(..)
                | RAction::Learn(_)
                | RAction::Commit
                | RAction::Rejoin(_)
                | RAction::ProposalArrives(_)
                | RAction::ExpandIsr(..)
                | RAction::ProposeIsr(..)
                | RAction::ProposeRepair(_)
                | RAction::CutDamage(_)
        )
    }

    /// No progress action changes the state: the partition has settled.
    pub fn quiescent(&self, s: &RState) -> bool {
        let mut acts = Vec::new();
        self.enabled(s, &mut acts);
        acts.into_iter()
            .filter(|a| self.is_progress(a))
            .all(|a| self.step(s, a).is_none_or(|t| t == *s))
    }

    /// Broker `n`'s log is durable up to `end`, which an `Fsync` taken before the
    /// records past `end` were produced would have left: a trace of a real broker,
    /// whose group commit round syncs what was written when it began and learns it
    /// when it ends, shows it after them (`ReplTrace::with_produce_hints`). No state
    /// this reaches is new to the model.
    pub fn sync_prefix(&self, s: &RState, n: NodeId, end: u8) -> RState {
        let mut t = s.clone();
        self.synced_to(&mut t, n, end);
        t
    }

    fn synced_to(&self, t: &mut RState, n: NodeId, end: u8) {
        t.replicas[at(n)].durable = end;
        self.advance_hw(t, n);
        self.resolve(t, n);
    }

    pub fn step(&self, s: &RState, a: RAction) -> Option<RState> {
        let mut t = s.clone();
        match a {
            RAction::Produce(n) => self.produce(&mut t, n),
            RAction::Retry(n, value) => self.retry(&mut t, n, value),
            RAction::ControllerFailover(kept) => {
                t.ghost.failovers += 1;
                t.inbox.truncate(usize::from(kept));
            }
            RAction::RepairUnanswered(n) => {
                t.ghost.failovers += 1;
                let r = &mut t.replicas[at(n)];
                r.repair = RepairProgress::Proposed;
                r.repair_answer_late = true;
            }
            RAction::RepairAnswered(n) => {
                let r = &mut t.replicas[at(n)];
                r.repair = RepairProgress::Applied;
                r.repair_answer_late = false;
            }
            RAction::ProposalLost(k) => {
                t.ghost.failovers += 1;
                if usize::from(k) < t.inbox.len() {
                    t.inbox.remove(usize::from(k));
                }
            }
            RAction::Fsync(n) => {
                let end = t.replicas[at(n)].len();
                self.synced_to(&mut t, n, end);
            }
            RAction::FsyncFail(n) => self.fsync_failed(&mut t, n),
            RAction::FetchRequest(f) => self.fetch_request(&mut t, f),
            RAction::FetchSend(f) => self.fetch_send(&mut t, f),
            RAction::FetchServe(f, k) => self.fetch_serve(&mut t, f, k),
            RAction::FetchLost(f, k) => {
                take_request(&mut t, f, k);
            }
            RAction::FetchAnswerLost(f, k) => {
                if let Some((position, _)) = t
                    .net
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.to == f)
                    .nth(usize::from(k))
                {
                    t.net.remove(position);
                }
            }
            RAction::FetchResponse(f) => self.fetch_response(&mut t, f, Taken::All, 0),
            RAction::FetchResponseNth(f, k) => self.fetch_response(&mut t, f, Taken::All, k),
            RAction::FetchResponseCut(f, k) => {
                self.fetch_response(&mut t, f, Taken::FullAfter(k), 0)
            }
            RAction::FetchResponseSyncFails(f, k) => {
                self.fetch_response(&mut t, f, Taken::SyncFails, k)
            }
            RAction::Resync(n) => {
                let r = &mut t.replicas[at(n)];
                if !r.offline {
                    return None;
                }
                self.cut_unsynced(r);
            }
            RAction::DiskFull(n) => {
                t.ghost.fulls += 1;
                t.replicas[at(n)].full = true;
            }
            RAction::DiskFreed(n) => t.replicas[at(n)].full = false,
            RAction::Truncate(f) => self.truncate(&mut t, f),
            RAction::EpochAsk(f) => self.epoch_ask(&mut t, f),
            RAction::EpochAnswered(f, k) => {
                if let Some(answer) = take_epoch_answer(&mut t, f, k) {
                    self.epoch_answered(&mut t, answer);
                }
            }
            RAction::EpochAnswerLost(f, k) => {
                take_epoch_answer(&mut t, f, k);
            }
            RAction::Learn(n) => self.learn(&mut t, n),
            RAction::Commit => {
                let cmd = t.inbox.remove(0);
                self.apply(&mut t, cmd);
            }
            RAction::Fence(b) => {
                t.ghost.fences += 1;
                t.meta.fenced |= bit(b);
                t.meta.fences[at(b)] = t.meta.fences[at(b)].saturating_add(1);
                self.move_away_from(&mut t, b);
            }
            RAction::Rejoin(b) => {
                let r = &t.replicas[at(b)];
                let fenced_start =
                    r.view.incarnation[at(b)] == r.incarnation && has(r.view.fenced, b);
                let rejoin = if fenced_start {
                    MetaCmd::Unfence(b, r.incarnation, r.view.fences[at(b)])
                } else {
                    self.registration(&t, b)
                };
                self.propose(&mut t, rejoin);
            }
            RAction::ProposalArrives(k) => {
                if usize::from(k) < t.in_flight.len() {
                    let cmd = t.in_flight.remove(usize::from(k));
                    t.inbox.push(cmd);
                }
            }
            RAction::ShrinkIsr(l, f) => {
                t.ghost.shrinks += 1;
                let isr = t.replicas[at(l)].view.isr & !bit(f);
                self.propose_isr(&mut t, l, isr);
            }
            RAction::ExpandIsr(l, f) => {
                let isr = t.replicas[at(l)].view.isr | bit(f);
                self.propose_isr(&mut t, l, isr);
            }
            RAction::ProposeIsr(l, isr) => {
                if t.replicas[at(l)].view.isr & !isr != 0 {
                    t.ghost.shrinks += 1;
                }
                self.propose_isr(&mut t, l, isr);
            }
            RAction::Checkpoint(n) => self.checkpoint(&mut t.replicas[at(n)]),
            RAction::Consume(n) => {
                let r = &t.replicas[at(n)];
                let read: Vec<(u8, u8)> = (r.log_start..r.hw.min(self.served_end(r)))
                    .map(|o| (o, r.log[usize::from(o)].value))
                    .collect();
                // A consumer that knows the current leader epoch (KIP-320) reads only
                // from the leader the controller made; a deposed leader that has not
                // learnt it serves only those with older metadata.
                let current = t.meta.leader == Some(n) && r.view.epoch == t.meta.epoch;
                if current && read.first().is_some_and(|(o, _)| *o < t.ghost.deleted) {
                    t.ghost.read_deleted = true;
                }
                t.ghost.read.extend(read);
            }
            RAction::DeleteRecords(n, offset) => self.delete_records(&mut t, n, offset),
            RAction::Crash(n) => self.crash(&mut t, n, 0, false),
            RAction::CrashTorn(n, kept) => self.crash(&mut t, n, kept, true),
            RAction::CrashKeeping(n, kept) => self.crash(&mut t, n, kept, false),
            RAction::Restart(n) => self.restart(&mut t, n),
            RAction::Damage(n, offset) => {
                t.ghost.damages += 1;
                t.replicas[at(n)].damaged = Some(offset);
            }
            RAction::ProposeRepair(n) => {
                let r = &mut t.replicas[at(n)];
                r.repair = RepairProgress::Proposed;
                let (epoch, version, incarnation) = (r.view.epoch, r.view.version, r.incarnation);
                self.propose(
                    &mut t,
                    MetaCmd::Repair {
                        node: n,
                        epoch,
                        version,
                        incarnation,
                    },
                );
            }
            RAction::CutDamage(n) => {
                let r = &mut t.replicas[at(n)];
                let d = r.damaged.unwrap_or(r.len());
                r.cut_at(d);
                r.durable = r.durable.min(d);
                r.hw = r.hw.min(d);
                r.damaged = None;
                r.repair = RepairProgress::None;
                r.repair_answer_late = false;
                if self.torn_last_frame {
                    // The cut rewrites the checkpoint with its new durable point.
                    r.durable_mark = d;
                }
                t.ghost.repaired = true;
                // Out of the ISR, the copy gives up what it cannot vouch for.
                t.ghost.hw_mark[at(n)] = None;
            }
        }
        // Freshness matters only for followers outside the ISR (who may be let in);
        // forgetting it for members keeps states that act alike one state.
        for r in &mut t.replicas {
            // Damage below the log start is in records already deleted: the copy
            // lost nothing it serves and needs no repair (the real
            // `first_lost_offset`; C-9, swarm seed 1020).
            let damage_deleted = r.damaged.is_some_and(|d| d < r.log_start);
            // Only a replica this changes is written, so that the others stay
            // shared with the state before the step.
            if r.fresh & r.view.isr == 0 && !damage_deleted {
                continue;
            }
            r.fresh &= !r.view.isr;
            if damage_deleted {
                r.damaged = None;
                r.repair = RepairProgress::None;
                r.repair_answer_late = false;
            }
        }
        self.note_high_watermarks(&mut t);
        if self.stepwise_learning {
            if t.history.last() != Some(&t.meta) {
                t.history.push(t.meta);
            }
            forget_history_learned_by_all(&mut t);
        }
        Some(t)
    }

    /// The committed metadata a broker learns next, and its position: the newest, or
    /// with stepwise learning the one committed after what it knows.
    fn next_learnt(&self, t: &RState, n: NodeId) -> (Meta, u8) {
        if !self.stepwise_learning {
            return (t.meta, 0);
        }
        let next = usize::from(t.replicas[at(n)].learned) + 1;
        match t.history.get(next) {
            Some(meta) => (*meta, u8::try_from(next).unwrap_or(u8::MAX)),
            None => (t.meta, t.replicas[at(n)].learned),
        }
    }

    /// The position of the newest committed metadata in `history` (0 without it).
    fn newest(&self, t: &RState) -> u8 {
        u8::try_from(t.history.len().saturating_sub(1)).unwrap_or(u8::MAX)
    }

    /// Ghost bookkeeping for the properties: the true high watermark's records, and
    /// each running broker's highest high watermark.
    fn note_high_watermarks(&self, t: &mut RState) {
        for n in Self::ids() {
            let r = &t.replicas[at(n)];
            t.ghost.hw_mark[at(n)] = match t.ghost.hw_mark[at(n)] {
                _ if !r.up => None,
                Some((i, hw)) if i == r.incarnation => Some((i, hw.max(r.hw))),
                _ => Some((r.incarnation, r.hw)),
            };
            if !self.leading(t, n) {
                continue;
            }
            let below_hw = &r.log[..usize::from(r.hw).min(r.log.len())];
            let g = &mut t.ghost;
            let common = below_hw.len().min(g.committed.len());
            if below_hw[..common] != g.committed[..common] {
                g.committed_conflict = true;
            } else if below_hw.len() > g.committed.len() {
                g.committed = below_hw.to_vec();
            }
        }
    }

    fn produce(&self, t: &mut RState, n: NodeId) {
        let value = t.ghost.produced;
        t.ghost.produced += 1;
        self.resync_if_offline(t, n);
        let r = &mut t.replicas[at(n)];
        r.write_over_lost_tail();
        let offset = r.len();
        let epoch = r.view.epoch;
        r.push(Rec { epoch, value });
        r.waiting.push(Waiting {
            offset,
            epoch,
            value,
        });
    }

    /// R-LOG-9: the records past the durable point are cut (their offsets will be
    /// reused), and the produces waiting for them fail rather than wait on.
    fn fsync_failed(&self, t: &mut RState, n: NodeId) {
        t.ghost.sync_failures += 1;
        self.cut_unsynced(&mut t.replicas[at(n)]);
    }

    /// R-LOG-9: a log that a failed fsync took offline cuts what it cannot vouch for
    /// before it takes or reports anything, and is back online.
    fn cut_unsynced(&self, r: &mut Replica) {
        r.offline = false;
        let durable = r.durable;
        r.log.truncate(usize::from(durable));
        r.hw = r.hw.min(durable);
        if !self.bug(ReplBug::AckCutAppends) {
            r.waiting.retain(|w| w.offset < durable);
        }
    }

    fn resync_if_offline(&self, t: &mut RState, n: NodeId) {
        let r = &mut t.replicas[at(n)];
        if r.offline {
            self.cut_unsynced(r);
        }
    }

    /// The leader finds the retried batch by its producer's sequence if its log holds
    /// it (the producer state is rebuilt from the log, also on a new leader) and
    /// answers as for the original; otherwise the batch is appended as new.
    fn retry(&self, t: &mut RState, n: NodeId, value: u8) {
        t.ghost.retries += 1;
        self.resync_if_offline(t, n);
        let r = &mut t.replicas[at(n)];
        let epoch = r.view.epoch;
        let offset = match r.holds_value(value) {
            Some(original) if self.bug(ReplBug::RetryAckedAtOnce) => {
                t.ghost.acked.insert((original, value));
                return;
            }
            Some(original) => original,
            None => {
                r.write_over_lost_tail();
                r.push(Rec { epoch, value });
                r.len() - 1
            }
        };
        r.waiting.push(Waiting {
            offset,
            epoch,
            value,
        });
        self.resolve(t, n);
    }

    /// A follower's Fetch, sent and served at once.
    fn fetch_request(&self, t: &mut RState, f: NodeId) {
        if let Some(q) = self.fetch_asked(t, f) {
            self.serve_fetch(t, q);
        }
    }

    /// The follower's side of a Fetch: what it asks for.
    fn fetch_asked(&self, t: &mut RState, f: NodeId) -> Option<FetchReq> {
        let l = t.replicas[at(f)].view.leader?;
        // The leader counts what a fetch offset covers as held durably here, so a
        // tail written but not synced (records this broker appended while it led, or
        // the part of an answer a full disk cut short) is synced first, or cut if a
        // failed fsync took the log offline (`follower_fetch_offset`).
        if !self.bug(ReplBug::FetchFromUnsyncedEnd) {
            self.resync_if_offline(t, f);
        }
        let fr = &mut t.replicas[at(f)];
        let offset = fr.len();
        if !self.bug(ReplBug::FetchFromUnsyncedEnd) {
            fr.durable = offset;
        }
        Some(FetchReq {
            from: f,
            to: l,
            epoch: fr.view.epoch,
            offset,
            incarnation: fr.incarnation,
            log_start: fr.log_start,
        })
    }

    fn fetch_send(&self, t: &mut RState, f: NodeId) {
        if let Some(q) = self.fetch_asked(t, f) {
            let position = t.requests.partition_point(|r| *r <= q);
            t.requests.insert(position, q);
        }
    }

    /// The `k`th request of `f` reaches its leader: served if it still leads in the
    /// request's epoch, refused (NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH) if not.
    fn fetch_serve(&self, t: &mut RState, f: NodeId, k: u8) {
        let Some(q) = take_request(t, f, k) else {
            return;
        };
        if self.leader_answers(t, q.to, q.epoch) {
            self.serve_fetch(t, q);
        }
    }

    /// The leader's side of a Fetch, then the response put in flight.
    fn serve_fetch(&self, t: &mut RState, q: FetchReq) {
        let (f, l, epoch, fetch_offset) = (q.from, q.to, q.epoch, q.offset);
        let lr = &mut t.replicas[at(l)];
        lr.follower_end[at(f)] = Some(fetch_offset);
        if self.max_deletes > 0 {
            lr.follower_start[at(f)] = Some(q.log_start);
        }
        lr.fresh |= bit(f);
        self.advance_hw(t, l);
        self.resolve(t, l);
        let lr = &t.replicas[at(l)];
        // Served up to the leader's durable end; past its log end the fetch is out of
        // range and the follower gets an error, not records.
        if fetch_offset > lr.len() {
            return;
        }
        // The connection the request came on died with its sender.
        let fr = &t.replicas[at(f)];
        if !fr.up || fr.incarnation != q.incarnation {
            return;
        }
        if fetch_offset < lr.log_start {
            let refusal = FetchResp {
                to: f,
                epoch,
                base: 0,
                records: lr.log[..usize::from(lr.log_start)].to_vec(),
                hw: lr.hw,
                log_start: lr.log_start,
            };
            let position = t.net.partition_point(|m| *m <= refusal);
            t.net.insert(position, refusal);
            return;
        }
        // Damaged records are never served: an answer stops before them, and a fetch
        // from a damaged record is answered KAFKA_STORAGE_ERROR, of which the
        // follower takes nothing (not even the high watermark). The read steps over
        // damage below where it starts (R-LOG-13).
        if lr.damaged == Some(fetch_offset) && !lr.lost_tail() {
            return;
        }
        let end = if lr.damaged.is_some_and(|d| d < fetch_offset) {
            self.served_end_above_damage(lr)
        } else {
            self.served_end(lr)
        };
        let records = lr
            .log
            .get(usize::from(fetch_offset)..usize::from(end))
            .unwrap_or(&[])
            .to_vec();
        let resp = FetchResp {
            to: f,
            epoch,
            base: fetch_offset,
            records,
            hw: lr.hw,
            log_start: lr.log_start,
        };
        let position = t.net.partition_point(|m| *m <= resp);
        t.net.insert(position, resp);
    }

    /// How many records of `resp` the follower would append: those from its log end
    /// on, if it takes the answer at all.
    fn appendable(&self, r: &Replica, resp: &FetchResp) -> u8 {
        if resp.refused() {
            return 0;
        }
        let taken = !r.view.leads(resp.to)
            && (r.gate == Some(resp.epoch) && r.view.epoch <= resp.epoch
                || self.bug(ReplBug::NoEpochGate));
        let from = r.len().saturating_sub(resp.base);
        let records = u8::try_from(resp.records.len()).unwrap_or(u8::MAX);
        if taken && r.len() >= resp.base {
            records.saturating_sub(from)
        } else {
            0
        }
    }

    /// Append what starts at the log end (only while the log still follows the epoch
    /// it fetched under), fsync, take the leader's high watermark. A full disk takes
    /// only some records: they are synced (the append error comes after the sync,
    /// R-REPL-1) and the high watermark stays. A failed fsync leaves what was
    /// appended unsynced, the log offline and the high watermark where it was.
    fn fetch_response(&self, t: &mut RState, f: NodeId, taken: Taken, nth: u8) {
        let Some((position, _)) = t
            .net
            .iter()
            .enumerate()
            .filter(|(_, m)| m.to == f)
            .nth(usize::from(nth))
        else {
            return;
        };
        let resp = t.net.remove(position);
        let r = &mut t.replicas[at(f)];
        // A broker its metadata names leader is no follower: the answer is dropped.
        if r.view.leads(f) {
            return;
        }
        if r.gate != Some(resp.epoch) && !self.bug(ReplBug::NoEpochGate) {
            return;
        }
        if resp.refused() {
            self.start_afresh(t, f, &resp);
            return;
        }
        // An answer fetched under an epoch the follower's metadata has moved past is
        // dropped, as Kafka's fetcher drops a partition's answers once it follows a
        // new leader epoch: appended, records could change the log between the
        // follower's OffsetForLeaderEpoch question and its answer.
        if r.view.epoch > resp.epoch && !self.bug(ReplBug::NoEpochGate) {
            return;
        }
        if r.offline {
            // The sync that takes the high watermark fails on an offline log; an
            // append cuts the unsynced records first (R-LOG-9).
            if resp.records.is_empty() {
                return;
            }
            self.cut_unsynced(r);
        }
        let cut = match taken {
            Taken::FullAfter(k) => Some(k),
            Taken::All | Taken::SyncFails => None,
        };
        let mut room = cut.map_or(usize::MAX, usize::from);
        let mut no_room = false;
        for (i, rec) in resp.records.iter().enumerate() {
            let offset = usize::from(resp.base) + i;
            if offset == r.log.len() {
                if room == 0 {
                    no_room = true;
                    break;
                }
                r.push(*rec);
                room -= 1;
            }
        }
        if taken == Taken::SyncFails {
            t.ghost.sync_failures += 1;
            r.offline = true;
            return;
        }
        if no_room {
            t.ghost.cut_short = true;
            if !self.bug(ReplBug::FetchFromUnsyncedEnd) {
                r.durable = r.len();
            }
            return;
        }
        r.durable = r.len();
        r.hw = r.hw.max(resp.hw.min(r.len()));
        // Records the leader deleted go here too, up to this copy's high watermark,
        // or a failover would bring them back (R-WIRE-5); a full disk refuses the
        // checkpoint that moves the start.
        if cut.is_none() {
            r.log_start = r.log_start.max(resp.log_start.min(r.hw));
        }
        self.resolve(t, f);
    }

    /// OFFSET_OUT_OF_RANGE for a fetch from below the leader's log start: a log that
    /// ends below it starts afresh there (the real `fetch_refused`), empty, its
    /// high watermark at its start; any other refusal is retried. A full disk
    /// refuses the checkpoint the new start writes first: the fetcher asks again.
    fn start_afresh(&self, t: &mut RState, f: NodeId, refusal: &FetchResp) {
        let r = &mut t.replicas[at(f)];
        if r.len() >= refusal.log_start || r.view.epoch != refusal.epoch || r.full {
            return;
        }
        r.offline = false;
        r.log = refusal.records.clone();
        r.epochless = true;
        r.durable = r.len();
        r.log_start = r.log_start.max(refusal.log_start);
        r.hw = r.log_start;
        r.damaged = None;
        // The new start's checkpoint, written before the old files go.
        self.checkpoint(r);
        t.ghost.started_afresh = true;
    }

    /// Writes the checkpoint: the high watermark, and with `torn_last_frame` the
    /// durable point it records (the real one records both in every write).
    fn checkpoint(&self, r: &mut Replica) {
        r.hw_checkpoint = r.hw;
        if self.torn_last_frame {
            r.durable_mark = r.durable;
        }
    }

    /// DeleteRecords on the leader: the log start moves to `offset` (at most the
    /// high watermark) and is checkpointed, with the high watermark, before anything
    /// is deleted; the answer waits for the low watermark (R-WIRE-5).
    fn delete_records(&self, t: &mut RState, n: NodeId, offset: u8) {
        t.ghost.deletes += 1;
        let r = &mut t.replicas[at(n)];
        r.log_start = r.log_start.max(offset.min(r.hw));
        self.checkpoint(r);
        let deletion = Deletion {
            epoch: r.view.epoch,
            target: offset,
        };
        r.deletions.push(deletion);
        self.resolve(t, n);
    }

    /// Kafka's low watermark: the least log start over this leader and every other
    /// replica its metadata calls live; one that has not fetched in this leader epoch
    /// counts as starting at 0 (the real `FollowerTracker::low_watermark`).
    fn low_watermark(&self, r: &Replica, n: NodeId) -> u8 {
        let live = ALL & !r.view.not_live() & !bit(n);
        let started = |p: NodeId| {
            if r.tracker_epoch == r.view.epoch {
                r.follower_start[at(p)].unwrap_or(0)
            } else {
                0
            }
        };
        members(live).map(started).fold(r.log_start, u8::min)
    }

    /// Where follower `f` would cut its log for its leader, if its log has records.
    fn truncation_end(&self, s: &RState, f: NodeId) -> Option<u8> {
        let fr = &s.replicas[at(f)];
        let l = fr.view.leader?;
        let last = fr.last_record()?.epoch;
        let answer = s.replicas[at(l)].end_offset_for_epoch(last);
        Some(self.cut_point(fr, answer))
    }

    fn cut_point(&self, follower: &Replica, answer: Option<(u8, u8)>) -> u8 {
        if self.bug(ReplBug::TruncateToLeaderEndOnly) {
            answer.map_or(0, |(_, end)| end)
        } else {
            follower.truncation_point(answer)
        }
    }

    /// A cut rewrites the leader epoch and high watermark checkpoints first, which a
    /// full disk refuses: the fetcher tries again once space returns.
    fn truncation_blocked(&self, s: &RState, f: NodeId) -> bool {
        let fr = &s.replicas[at(f)];
        fr.full && self.truncation_end(s, f).is_some_and(|end| end < fr.len())
    }

    fn truncate(&self, t: &mut RState, f: NodeId) {
        if let Some(l) = t.replicas[at(f)].view.leader.filter(|l| *l != f) {
            // An offline log cuts its unsynced tail before it reports its end.
            if t.replicas[at(f)].last_record().is_some() {
                self.resync_if_offline(t, l);
            }
        }
        let fr = &t.replicas[at(f)];
        let (Some(_), epoch) = (fr.view.leader, fr.view.epoch) else {
            return;
        };
        let end = self.truncation_end(t, f).unwrap_or(fr.len());
        self.cut_and_follow(t, f, end, epoch);
    }

    fn cut_and_follow(&self, t: &mut RState, f: NodeId, end: u8, epoch: u8) {
        // No sync vouches for what a failed fsync covered: a cut above the durable
        // end keeps none of it (R-LOG-9).
        self.resync_if_offline(t, f);
        let fr = &mut t.replicas[at(f)];
        if end < fr.len() && !self.bug(ReplBug::NoTruncation) {
            fr.cut_at(end);
            // The cut syncs what it keeps (the real `truncate_to`; found by the
            // replication oracle under the interval policy) and records that in the
            // checkpoint.
            fr.durable = end;
            if self.torn_last_frame {
                fr.durable_mark = end;
            }
            fr.hw = fr.hw.min(end);
            fr.damaged = fr.damaged.filter(|d| *d < end);
            t.ghost.truncated = true;
        }
        t.replicas[at(f)].gate = Some(epoch);
    }

    /// The leader's side of OffsetForLeaderEpoch: its answer, put in flight.
    fn epoch_ask(&self, t: &mut RState, f: NodeId) {
        let fr = &t.replicas[at(f)];
        let (Some(l), Some(last)) = (fr.view.leader, fr.last_record()) else {
            return;
        };
        // An offline log cuts its unsynced tail before it reports its end.
        self.resync_if_offline(t, l);
        let fr = &t.replicas[at(f)];
        let answer = EpochAnswer {
            to: f,
            epoch: fr.view.epoch,
            answer: t.replicas[at(l)].end_offset_for_epoch(last.epoch),
        };
        let position = t.epoch_answers.partition_point(|a| *a <= answer);
        t.epoch_answers.insert(position, answer);
    }

    /// The follower's side: it cuts where the answer says and follows its epoch, if
    /// it still follows that epoch's leader and has not already cut for it (a late
    /// copy of an answer acted on, R-REPL-3). A full disk refuses a cut: the answer
    /// is spent and the follower asks again.
    fn epoch_answered(&self, t: &mut RState, a: EpochAnswer) {
        let fr = &t.replicas[at(a.to)];
        let current = fr.view.epoch == a.epoch && fr.view.leader.is_some_and(|l| l != a.to);
        let stale = fr.gate.is_some_and(|g| g >= a.epoch);
        if (!current || stale) && !self.bug(ReplBug::TruncateOnStaleAnswer) {
            return;
        }
        let end = self.cut_point(fr, a.answer);
        if fr.full && end < fr.len() {
            return;
        }
        self.cut_and_follow(t, a.to, end, a.epoch);
    }

    fn learn(&self, t: &mut RState, n: NodeId) {
        let (meta, learned) = self.next_learnt(t, n);
        let r = &mut t.replicas[at(n)];
        r.learned = learned;
        if r.view.version != meta.version {
            r.fresh = 0;
        }
        r.view = meta;
        if r.tracker_epoch != meta.epoch {
            r.tracker_epoch = meta.epoch;
            r.follower_end = [None; REPLICAS];
            r.follower_start = [None; REPLICAS];
        }
        // Proposals computed from an older version can never be applied.
        if r.pending_isr
            .is_some_and(|(version, _)| version != meta.version)
        {
            r.pending_isr = None;
        }
        self.advance_hw(t, n);
        self.resolve(t, n);
    }

    /// Sends `cmd` to the controller: with lossy proposals it is in flight until it
    /// arrives (a copy already in flight is the same request sent again).
    fn propose(&self, t: &mut RState, cmd: MetaCmd) {
        if !self.lossy_proposals {
            t.inbox.push(cmd);
        } else if let Err(at) = t.in_flight.binary_search(&cmd) {
            t.in_flight.insert(at, cmd);
        }
    }

    fn propose_isr(&self, t: &mut RState, l: NodeId, isr: Set) {
        let r = &mut t.replicas[at(l)];
        let (epoch, version) = (r.view.epoch, r.view.version);
        r.pending_isr = match r.pending_isr {
            Some((v, earlier)) if v == version && !self.bug(ReplBug::IsrLastProposalOnly) => {
                Some((v, earlier | isr))
            }
            _ => Some((version, isr)),
        };
        self.propose(
            t,
            MetaCmd::AlterIsr {
                epoch,
                version,
                isr,
            },
        );
    }

    /// High watermark = the least log end over the maximal ISR (applied plus proposed),
    /// the leader's own counted durable; it never moves back.
    fn advance_hw(&self, t: &mut RState, l: NodeId) {
        if !self.leading(t, l) {
            return;
        }
        let isr = self.maximal_isr(&t.replicas[at(l)]);
        // R-REPL-6: the eligible replicas hold everything committed. The applied ISR
        // decides, as Kafka's `isUnderMinIsr`: an expansion still pending may be
        // refused, and the eligible replicas stay.
        let applied = members(t.replicas[at(l)].view.isr).count();
        if applied < usize::from(self.min_isr) && !self.bug(ReplBug::HwBelowMinIsr) {
            return;
        }
        let r = &mut t.replicas[at(l)];
        let own = if self.acks_before_fsync {
            r.len()
        } else {
            r.durable
        };
        let candidate = if self.bug(ReplBug::HwLeaderOnly) {
            own
        } else {
            members(isr)
                .filter(|m| *m != l)
                .map(|m| r.follower_end[at(m)].unwrap_or(0))
                .fold(own, u8::min)
        };
        r.hw = if self.bug(ReplBug::HwMayRegress) {
            candidate
        } else {
            r.hw.max(candidate)
        };
    }

    /// The members a leader's high watermark waits for: the ISR it has applied and
    /// every member its proposals at that partition version name (Kafka's maximal ISR).
    pub fn maximal_isr(&self, r: &Replica) -> Set {
        match r.pending_isr {
            Some((version, proposed))
                if version == r.view.version && !self.bug(ReplBug::HwOverAppliedIsr) =>
            {
                r.view.isr | proposed
            }
            _ => r.view.isr,
        }
    }

    /// Answers the produces whose fate is known: acknowledged once the high watermark
    /// passes them while this broker still leads in their epoch; failed once it does
    /// not, or once it passes them with the maximal ISR below `min.insync.replicas`
    /// (NOT_ENOUGH_REPLICAS_AFTER_APPEND: the ISR shrank after admission).
    fn resolve(&self, t: &mut RState, n: NodeId) {
        let leading = self.leading(t, n);
        let enough =
            members(self.maximal_isr(&t.replicas[at(n)])).count() >= usize::from(self.min_isr);
        let r = &mut t.replicas[at(n)];
        let leads_in = |epoch: u8| leading && r.view.epoch == epoch;
        let mut acked = Vec::new();
        let mut keep = Vec::new();
        for w in &r.waiting {
            if !leads_in(w.epoch) && !self.bug(ReplBug::AckWhenDeposed) {
                continue;
            }
            if r.hw > w.offset {
                if enough {
                    acked.push((w.offset, w.value));
                }
            } else {
                keep.push(*w);
            }
        }
        r.waiting = keep;
        t.ghost.acked.extend(acked);
        self.resolve_deletions(t, n, leading);
    }

    /// Answers the DeleteRecords whose fate is known: acknowledged once the low
    /// watermark reaches their offset while this broker still leads in their epoch,
    /// NOT_LEADER_OR_FOLLOWER once it does not (the real `deletion_outcome`).
    fn resolve_deletions(&self, t: &mut RState, n: NodeId, leading: bool) {
        let low = self.low_watermark(&t.replicas[at(n)], n);
        let r = &mut t.replicas[at(n)];
        let epoch = r.view.epoch;
        let at_once = self.bug(ReplBug::DeleteAckedAtOnce);
        let mut deleted = t.ghost.deleted;
        r.deletions.retain(|d| {
            if !leading || d.epoch != epoch {
                return false;
            }
            let done = at_once || low >= d.target;
            if done {
                deleted = deleted.max(d.target);
            }
            !done
        });
        t.ghost.deleted = deleted;
    }

    fn apply(&self, t: &mut RState, cmd: MetaCmd) {
        if let MetaCmd::Repair {
            node,
            epoch,
            version,
            incarnation,
        } = cmd
        {
            return self.apply_repair(t, node, (epoch, version), incarnation);
        }
        if let MetaCmd::Register(b, incarnation, true) = cmd {
            let previous = t.meta.incarnation[at(b)];
            if previous != 0 && previous < incarnation {
                // A new start names its short copy: it steps aside as its `Repair`
                // would, before anything can count on what it lost (R-REPL-4).
                self.step_aside_for_repair(t, b);
            }
        }
        let before = t.meta.partition();
        let m = &mut t.meta;
        match cmd {
            MetaCmd::Register(b, incarnation, _) => {
                let previous = m.incarnation[at(b)];
                // STALE_BROKER_EPOCH: an earlier start's, or a retry of this start's
                // from before its fence (only `Unfence` lifts that).
                if previous > incarnation || (previous == incarnation && has(m.fenced, b)) {
                    return;
                }
                m.incarnation[at(b)] = incarnation;
                m.fenced &= !bit(b);
                // Older registrations still in flight would be refused as stale.
                t.in_flight.retain(
                    |c| !matches!(c, MetaCmd::Register(n, earlier, _) if *n == b && *earlier < incarnation),
                );
                let restarted = previous != 0 && previous != incarnation;
                let unclean = restarted
                    && self.acks_before_fsync
                    && !self.bug(ReplBug::UncleanRestartKeepsLeading);
                // Back in the same start it lost nothing yet, but what it acknowledged
                // before syncing stays unsynced: it stays unverified.
                if unclean {
                    m.forget_unverified(b);
                }
                // Handed over, it is out of the ISR until it has caught up again.
                let awaits_unverified = self.bug(ReplBug::UncleanRestartAwaitsUnverified);
                let handed_over = unclean
                    && m.hand_over_after_unclean_restart(
                        b,
                        self.eligible_min_isr(),
                        awaits_unverified,
                    );
                let displaced = (self.fenced_leader_stays_eligible(), self.acks_before_fsync);
                let leads = m.lead_on_return(b, self.eligible_min_isr(), displaced);
                if !handed_over && !leads && m.leader == Some(b) && restarted {
                    m.epoch += 1;
                }
            }
            MetaCmd::Unfence(b, incarnation, fence) => {
                // Refused for another start or fence; nothing to do for one not fenced.
                let named = m.incarnation[at(b)] == incarnation && m.fences[at(b)] == fence;
                if named && has(m.fenced, b) {
                    m.fenced &= !bit(b);
                    let displaced = (self.fenced_leader_stays_eligible(), self.acks_before_fsync);
                    m.lead_on_return(b, self.eligible_min_isr(), displaced);
                }
            }
            MetaCmd::AlterIsr {
                epoch,
                version,
                isr,
            } => {
                let valid = epoch == m.epoch
                    && (version == m.version || self.bug(ReplBug::IsrLastProposalOnly))
                    && m.leader.is_some_and(|l| has(isr, l))
                    && isr & m.not_live() == 0;
                if valid {
                    if isr & !m.isr != 0 {
                        t.ghost.expanded = true;
                    }
                    m.set_isr(isr, self.eligible_min_isr(), true);
                }
            }
            MetaCmd::Repair { .. } => {}
        }
        if t.meta.partition() != before {
            t.meta.version += 1;
        }
        // A change computed from an older version would be refused.
        if self.lossy_proposals && !self.bug(ReplBug::IsrLastProposalOnly) {
            let current = t.meta.version;
            t.in_flight.retain(|c| match c {
                MetaCmd::AlterIsr { version, .. } | MetaCmd::Repair { version, .. } => {
                    *version >= current
                }
                MetaCmd::Register(..) | MetaCmd::Unfence(..) => true,
            });
        }
        if let Some(l) = t.meta.leader {
            t.ghost.leaders.insert((t.meta.epoch, l));
        }
    }

    /// `Repair` (the metadata's `RepairReplica`): the copy leaves the ISR, a leader
    /// hands over to the first other live ISR member, else to a live eligible
    /// replica (refused if there is neither), an offline partition's last replica
    /// it could be led from is refused, and the partition version always moves on.
    /// The start of the broker that proposed it hears the outcome (the task that
    /// waits for it dies with the process), and the last outcome heard decides, as
    /// `Repairs::outcome` does.
    fn apply_repair(
        &self,
        t: &mut RState,
        node: NodeId,
        (epoch, version): (u8, u8),
        incarnation: u8,
    ) {
        let current = epoch == t.meta.epoch && version == t.meta.version;
        let applied = current && self.step_aside_for_repair(t, node);
        let r = &mut t.replicas[at(node)];
        if r.up && r.incarnation == incarnation && r.damaged.is_some() {
            r.repair = if applied {
                RepairProgress::Applied
            } else {
                RepairProgress::None
            };
        }
    }

    /// What `Repair` and a registration naming a short copy do once their own
    /// checks passed: the copy leaves the ISR and the eligible set, a leader hands
    /// over to the first other live ISR member, else to a live eligible replica
    /// (refused if there is neither), an offline partition's last replica it could
    /// be led from is refused, and the partition version moves on. True if applied.
    fn step_aside_for_repair(&self, t: &mut RState, node: NodeId) -> bool {
        let m = &mut t.meta;
        if m.leader == Some(node) {
            match members(m.isr).find(|r| *r != node && !has(m.not_live(), *r)) {
                Some(next) => {
                    m.leader = Some(next);
                    m.epoch += 1;
                    t.ghost.leaders.insert((m.epoch, next));
                }
                // R-REPL-6: a live eligible replica holds everything committed.
                None if m.elect_eligible(node) => {
                    if let Some(next) = m.leader {
                        t.ghost.leaders.insert((m.epoch, next));
                    }
                }
                // Eligible replicas hold what this copy lost, none of them live: the
                // partition waits offline for one.
                None if m.elr & !bit(node) != 0
                    && !self.bug(ReplBug::FencedLeaderNeverEligible) =>
                {
                    m.leader = None;
                    m.epoch += 1;
                }
                None => return false,
            }
        } else if m.isr & !bit(node) == 0 && m.elr & !bit(node) == 0 {
            // An offline partition's last replica it could be led from stays.
            return false;
        }
        m.set_isr(m.isr & !bit(node), self.eligible_min_isr(), false);
        m.elr &= !bit(node);
        m.unverified &= m.elr;
        m.version += 1;
        true
    }

    /// A leader out of the ISR (fenced, or displaced while it was down) holds every
    /// committed record: a fence cuts nothing. Under the interval policy its lapse
    /// may have been a crash that cut what it acknowledged: it is eligible but
    /// unverified until it registers (`Meta::unverified`, R-REPL-6).
    fn fenced_leader_stays_eligible(&self) -> bool {
        !self.bug(ReplBug::FencedLeaderNeverEligible)
    }

    /// A fenced broker leads nothing and is in no ISR; with no live ISR member to take
    /// over, the partition is offline and keeps its ISR.
    fn move_away_from(&self, t: &mut RState, gone: NodeId) {
        let before = t.meta.partition();
        let stays_eligible = self.fenced_leader_stays_eligible();
        let unverified = self.acks_before_fsync;
        let m = &mut t.meta;
        if m.leader == Some(gone) {
            m.epoch += 1;
            let candidates = if self.bug(ReplBug::UncleanElection) {
                ALL
            } else {
                m.isr
            };
            match members(candidates).find(|r| *r != gone && !has(m.not_live(), *r)) {
                Some(next) => {
                    m.leader = Some(next);
                    let isr = (m.isr & !bit(gone)) | bit(next);
                    m.set_isr(isr, self.eligible_min_isr(), stays_eligible);
                    t.ghost.leaders.insert((m.epoch, next));
                }
                None => {
                    m.leader = None;
                    if m.elect_eligible(gone) {
                        m.epoch -= 1; // one move, one epoch
                        if stays_eligible {
                            m.keep_eligible(gone, self.eligible_min_isr());
                        }
                    }
                }
            }
            if unverified && has(m.elr, gone) {
                m.unverified |= bit(gone);
            }
        } else if has(m.isr, gone) && m.leader.is_some() {
            m.set_isr(m.isr & !bit(gone), self.eligible_min_isr(), true);
        }
        if t.meta.partition() != before {
            t.meta.version += 1;
        }
    }

    /// What a leader serves, to followers and consumers: its durable records, or
    /// under the interval policy everything written (the real `committable_end`);
    /// never a damaged record.
    pub fn served_end(&self, r: &Replica) -> u8 {
        let end = self.served_end_above_damage(r);
        r.damaged.map_or(end, |d| d.min(end))
    }

    /// What a leader serves to a read that starts past its damaged record.
    fn served_end_above_damage(&self, r: &Replica) -> u8 {
        if self.acks_before_fsync {
            r.len()
        } else {
            r.durable
        }
    }

    /// `n` takes an acks=all produce (the real `admit_produce`): it leads, the ISR it
    /// knows has `min.insync.replicas` members, and its copy lost no record to damage
    /// while another ISR member holds them (R-REPL-4: it hands over instead; a retry
    /// of a damaged batch would be appended again beside the original the others
    /// hold). A sole copy goes on taking writes.
    pub fn admits_produce(&self, s: &RState, n: NodeId) -> bool {
        let r = &s.replicas[at(n)];
        let others_hold_it = Self::others_may_hold(r, n);
        self.leading(s, n)
            && members(r.view.isr).count() >= usize::from(self.min_isr)
            && !(others_hold_it && r.damaged.is_some())
    }

    /// `n` acts as the partition's leader (see `Replica::leading`).
    pub fn leading(&self, s: &RState, n: NodeId) -> bool {
        let r = &s.replicas[at(n)];
        if self.bug(ReplBug::LeadBeforeRegistered) {
            r.up && r.view.leads(n)
        } else {
            r.leading(n)
        }
    }

    /// `kept`: this many unsynced records survive whole (`RAction::CrashKeeping`);
    /// `torn`: and part of the next one, torn (`RAction::CrashTorn`).
    fn crash(&self, t: &mut RState, n: NodeId, kept: u8, torn: bool) {
        t.ghost.crashes += 1;
        let meta = t.meta;
        let r = &mut t.replicas[at(n)];
        let on_disk = r.durable + kept;
        let durable = usize::from(on_disk);
        let disk = (
            r.log[..durable].to_vec(),
            on_disk,
            r.hw_checkpoint,
            r.incarnation,
            // Damage lies in durable records; a tail mark at the durable end is in
            // the checkpoint file.
            r.damaged.filter(|d| usize::from(*d) <= durable),
            r.durable_mark,
            (r.log_start, r.epochless),
        );
        let full = r.full;
        // Learning stepwise, the broker replays its own metadata log at its restart:
        // what it had applied was committed and its commit index durable first
        // (R-PERSIST), so it comes back at least that far, and no farther until it
        // learns more.
        let learned = if self.stepwise_learning {
            r.learned
        } else {
            self.newest(t)
        };
        let r = &mut t.replicas[at(n)];
        // Everything in memory is gone; only the disk (and the start count) remains.
        *r = Replica::new(meta).into();
        r.learned = learned;
        r.up = false;
        r.full = full;
        (
            r.log,
            r.durable,
            r.hw_checkpoint,
            r.incarnation,
            r.damaged,
            r.durable_mark,
            (r.log_start, r.epochless),
        ) = disk;
        if torn && !self.bug(ReplBug::ForgetTornTail) {
            // What the restart's recovery will do is fixed by what the crash left:
            // cut the torn frame at the durable end and mark the cut first
            // (`Replica::lost_tail`), so the mark is taken here. Damage further down
            // already makes the copy short, and its repair's cut takes the tail too
            // (the disk kept only damage at or below the durable end).
            let r = &mut t.replicas[at(n)];
            r.damaged = r.damaged.or(Some(r.durable));
        }
        t.net.retain(|m| m.to != n);
        t.epoch_answers.retain(|a| a.to != n);
        t.requests.retain(|q| q.to != n);
    }

    fn restart(&self, t: &mut RState, n: NodeId) {
        let (meta, learned) = if self.stepwise_learning {
            let learned = t.replicas[at(n)].learned;
            (t.history[usize::from(learned)], learned)
        } else {
            (t.meta, self.newest(t))
        };
        let r = &mut t.replicas[at(n)];
        r.learned = learned;
        r.up = true;
        r.incarnation += 1;
        r.view = meta;
        r.tracker_epoch = meta.epoch;
        // A bad last frame past the recorded durable point is, to recovery, a torn
        // write: it is cut (R-LOG-13).
        let torn = r
            .damaged
            .filter(|d| self.torn_last_frame && d + 1 == r.durable && *d >= r.durable_mark);
        if let Some(d) = torn {
            r.log.truncate(usize::from(d));
            r.durable = d;
            // The cut is marked first, durably: from here on records may be lost
            // (`Replica::lost_tail`), until the repair's cut or a sole leader's write.
            if self.bug(ReplBug::ForgetTornTail) {
                r.damaged = None;
            }
        }
        // Recovery clamps the checkpoint's log start and high watermark to the log.
        r.log_start = r.log_start.min(r.len());
        r.hw = r.hw_checkpoint.clamp(r.log_start, r.len().max(r.log_start));
        let register = self.registration(t, n);
        self.propose(t, register);
    }

    /// Broker `n`'s registration by its current start, naming its copy if that is
    /// short of records (damaged, or a tail cut and marked): R-REPL-4.
    fn registration(&self, t: &RState, n: NodeId) -> MetaCmd {
        let r = &t.replicas[at(n)];
        let short = r.damaged.is_some() && !self.bug(ReplBug::RegisterWithoutShortCopies);
        MetaCmd::Register(n, r.incarnation, short)
    }
}

/// No broker goes back behind what it learned (a restart replays its own log up to
/// there), so the metadata every broker has learned past is never seen again: states
/// that differ only in that history act alike and are one state.
fn forget_history_learned_by_all(t: &mut RState) {
    let Some(oldest) = t.replicas.iter().map(|r| r.learned).min() else {
        return;
    };
    if oldest == 0 {
        return;
    }
    t.history.drain(..usize::from(oldest));
    for r in &mut t.replicas {
        r.learned -= oldest;
    }
}

/// Takes the `k`th (from 0) of follower `f`'s requests in flight.
fn take_epoch_answer(t: &mut RState, f: NodeId, k: u8) -> Option<EpochAnswer> {
    let position = t
        .epoch_answers
        .iter()
        .enumerate()
        .filter(|(_, a)| a.to == f)
        .nth(usize::from(k))?
        .0;
    Some(t.epoch_answers.remove(position))
}

fn take_request(t: &mut RState, f: NodeId, k: u8) -> Option<FetchReq> {
    let (position, _) = t
        .requests
        .iter()
        .enumerate()
        .filter(|(_, q)| q.from == f)
        .nth(usize::from(k))?;
    Some(t.requests.remove(position))
}

/// `cmd` waits to be committed or is on its way to the controller.
pub(super) fn proposed(s: &RState, cmd: MetaCmd) -> bool {
    s.inbox.contains(&cmd) || s.in_flight.contains(&cmd)
}

/// How much of a fetch answer the follower keeps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Taken {
    All,
    /// A full disk takes this many records.
    FullAfter(u8),
    /// The fsync after the append fails.
    SyncFails,
}
