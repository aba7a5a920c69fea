//! What each action does, as `RunningBroker::start`, the consensus loop and
//! `Partitions::reconcile_in_start` do it.

use super::*;

impl DirModel {
    pub fn enabled(&self, s: &DState, out: &mut Vec<DirAction>) {
        match s.phase {
            DPhase::Down => {
                out.push(DirAction::Restart);
                if s.wal > 0 {
                    out.push(DirAction::LoseMetadata);
                }
            }
            DPhase::Refused => out.push(DirAction::MoveLogsAside),
            DPhase::Running => {
                out.push(DirAction::Reconcile);
                if s.serving().is_some() {
                    out.push(DirAction::Produce);
                    out.push(DirAction::Fetch);
                }
                if !self.sole_voter {
                    if !s.cluster.contains(&DCmd::Register(s.starts)) {
                        out.push(DirAction::Register);
                    }
                    if usize::from(s.applied) < s.cluster.len() {
                        out.push(DirAction::Learn);
                    }
                    if s.commit < s.applied {
                        out.push(DirAction::PersistCommit);
                    }
                }
                out.push(DirAction::Crash);
            }
        }
        // A cluster's controller takes writes whatever this broker does; a sole voter
        // is the controller.
        if !self.sole_voter || s.phase == DPhase::Running {
            if live_topic(&s.cluster).is_some() {
                out.push(DirAction::DeleteTopic);
            } else {
                out.push(DirAction::CreateTopic);
            }
        }
    }

    /// `None` when the action changes nothing.
    pub fn step(&self, s: &DState, a: DirAction) -> Option<DState> {
        let mut t = s.clone();
        match a {
            DirAction::Restart => self.restart(&mut t),
            DirAction::CreateTopic => {
                t.ghost.next_id += 1;
                let id = t.ghost.next_id;
                self.write(&mut t, DCmd::Create(id));
            }
            DirAction::DeleteTopic => {
                let id = live_topic(&t.cluster)?;
                self.write(&mut t, DCmd::Delete(id));
            }
            DirAction::Register => {
                t.cluster.push(DCmd::Register(t.starts));
                t.ghost.history.push(DCmd::Register(t.starts));
            }
            DirAction::Learn => {
                t.applied += 1;
                t.wal = t.wal.max(t.applied);
            }
            DirAction::PersistCommit => t.commit = t.applied,
            DirAction::Reconcile => self.reconcile(&mut t),
            DirAction::Produce => {
                let id = t.serving()?;
                t.dir.as_mut()?.records.push(id);
                t.ghost.acked.push(id);
            }
            DirAction::Fetch => {
                let id = t.serving()?;
                let foreign = t.dir.as_ref()?.records.iter().any(|r| *r != id);
                t.ghost.foreign_read |= foreign;
            }
            DirAction::Crash => {
                t.phase = DPhase::Down;
                t.applied = 0;
                t.open = None;
                t.strays_removed = false;
                t.ghost.crashes += 1;
            }
            DirAction::LoseMetadata => {
                t.wal = 0;
                t.commit = 0;
                if self.sole_voter {
                    t.cluster.clear();
                }
                t.ghost.losses += 1;
                t.ghost.metadata_lost = true;
            }
            DirAction::MoveLogsAside => {
                t.dir = None;
                t.phase = DPhase::Down;
                t.ghost.logs_set_aside = true;
            }
        }
        (t != *s).then_some(t)
    }

    fn write(&self, t: &mut DState, cmd: DCmd) {
        t.cluster.push(cmd);
        t.ghost.history.push(cmd);
        t.ghost.writes += 1;
        if self.sole_voter {
            // Durable, committed (the commit index synced) and applied in one Ready.
            t.wal = len8(&t.cluster);
            t.commit = t.wal;
            t.applied = t.wal;
        }
    }

    fn restart(&self, t: &mut DState) {
        // R-RECOVER-7: partition data without metadata.
        if t.wal == 0 && t.dir.is_some() && !self.bug(DirBug::StartWithoutMetadata) {
            t.phase = DPhase::Refused;
            t.ghost.refused = true;
            return;
        }
        t.phase = DPhase::Running;
        t.starts += 1;
        t.applied = t.commit;
        t.open = None;
        t.strays_removed = false;
        if self.sole_voter {
            // Elected at once, it commits everything its log holds, and registers in
            // the driver's first step (R-START-4).
            let me = DCmd::Register(t.starts);
            t.cluster.push(me);
            t.ghost.history.push(me);
            t.wal = len8(&t.cluster);
            t.commit = t.wal;
            t.applied = t.wal;
        }
        self.reconcile(t);
    }

    /// `Partitions::reconcile_in_start`: once per start and only from metadata that
    /// holds this start's registration, the directories of deleted topics go; then the
    /// logs of topics the metadata no longer names go, and the wanted one is opened
    /// through `claim_dir`, which replaces a directory stamped with another topic id
    /// only from such metadata too, and otherwise leaves it for a later view.
    fn reconcile(&self, t: &mut DState) {
        let live = t.image_topic();
        let strays_due = t.registered() || self.bug(DirBug::StraysBeforeRegistered);
        if strays_due && !t.strays_removed {
            t.strays_removed = true;
            let stray = t.open.is_none() && t.dir.as_ref().is_some_and(|d| Some(d.stamp) != live);
            if stray {
                t.dir = None;
                t.ghost.stray_removed = true;
            }
        }
        if let Some(open) = t.open {
            if live != Some(open) {
                t.dir = None;
                t.open = None;
            }
        }
        if let (Some(id), None) = (live, t.open) {
            let complete = t.registered() || self.bug(DirBug::ClaimFromStaleView);
            match &t.dir {
                Some(d) if d.stamp == id => {}
                Some(_) if self.bug(DirBug::AdoptForeignDir) => {}
                // The stamp may name a topic this metadata does not hold yet: a
                // restarted member catching up applies an older prefix first.
                Some(_) if !complete => {
                    t.ghost.deferred = true;
                    return;
                }
                Some(_) => {
                    t.dir = Some(Dir {
                        stamp: id,
                        records: Vec::new(),
                    });
                    t.ghost.replaced = true;
                }
                None => {
                    t.dir = Some(Dir {
                        stamp: id,
                        records: Vec::new(),
                    })
                }
            }
            t.open = Some(id);
        }
    }
}
