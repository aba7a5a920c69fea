//! The oracle's network between real nodes: what each node's Readys sent, held
//! until the model delivers the message it stands for.
//!
//! A model message and raft-rs's differ in form (spec/conformance.md, "Scope
//! today"), so a model `Deliver` is mapped onto the real message that carries the
//! same decision: a vote request of the same term and log position, a vote answer
//! of the same term and outcome, an append of the same term, position, entry terms
//! and commit index, an answer of the same term that accepts or refuses alike, and
//! Chronik's own forward of the same command. Where raft-rs sent nothing that
//! matches, the step cannot be replayed; the walk ends there and is counted by the
//! kind of message (never taken for agreement).

use std::collections::BTreeSet;

use chronik::metadata::{CommandEnvelope, MetadataCommand};
use chronik_model::state::{Cmd, Envelope, Msg, NodeId};
use raft::eraftpb::{Message, MessageType};

use crate::ids::real_id;

/// What travels between two nodes.
#[derive(Debug, Clone)]
pub enum Carried {
    Raft(Message),
    /// Chronik's proposal forwarding over the peer transport (R-PROPOSE-2).
    Forward(CommandEnvelope),
}

#[derive(Debug, Clone)]
pub struct InFlight {
    pub src: NodeId,
    pub dst: NodeId,
    pub carried: Carried,
}

/// Messages sent and not yet delivered, in the order they were sent.
#[derive(Debug, Default)]
pub struct Network {
    in_flight: Vec<InFlight>,
}

impl Network {
    pub fn send(&mut self, src: NodeId, dst: NodeId, carried: Carried) {
        self.in_flight.push(InFlight { src, dst, carried });
    }

    /// A crashed process's connections reset: what was sent to it is gone.
    pub fn drop_to(&mut self, dst: NodeId) {
        self.in_flight.retain(|m| m.dst != dst);
    }

    /// Takes the real message standing for the model's, or says which kind had none.
    pub fn take(&mut self, e: &Envelope) -> Result<Carried, String> {
        let candidates = |m: &&InFlight| m.src == e.src && m.dst == e.dst;
        let found = self
            .in_flight
            .iter()
            .position(|m| candidates(&m) && stands_for(&e.msg, &m.carried));
        match found {
            Some(at) => {
                let carried = self.in_flight.remove(at).carried;
                if matches!(e.msg, Msg::VoteResp { granted: true, .. }) {
                    // The model's network is a set: its one grant stands for every
                    // alike grant raft-rs sent on the link, which a voter's second
                    // copy would only count again (raft-rs keeps one vote per voter).
                    self.in_flight
                        .retain(|m| !(candidates(&m) && stands_for(&e.msg, &m.carried)));
                }
                Ok(carried)
            }
            None => {
                if std::env::var_os("CHRONIK_ORACLE_DEBUG").is_some() {
                    let link: Vec<String> = self
                        .in_flight
                        .iter()
                        .filter(|m| m.src == e.src && m.dst == e.dst)
                        .map(|m| describe(&m.carried))
                        .collect();
                    eprintln!("unmapped {:?}; raft-rs sent on that link: {link:?}", e.msg);
                }
                Err(kind(&e.msg).to_string())
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// What the real nodes sent that no model message in flight on the same link
    /// stands for, among the kinds whose every copy the model sends too: votes and
    /// pre-votes granted (a repairing node grants none, R-RECOVER-9), Chronik's
    /// forwards (R-PROPOSE-2) and raft-rs's own proposal forwarding, which the model
    /// never sends (a follower proposes through the broker's forward, R-PROPOSE-1).
    /// The model's network is a set, so alike messages stand for one model message
    /// (a pre-vote request delivered twice is granted twice). Vote refusals are left
    /// out: raft-rs answers some requests the model's node ignores (a pre-vote asked
    /// of a pre-candidate or a leader), and a refusal elects nobody.
    pub fn unmatched_sends(&self, model: &BTreeSet<Envelope>) -> Vec<String> {
        let mut unmatched = Vec::new();
        for m in &self.in_flight {
            let checked = match &m.carried {
                Carried::Raft(real) => match real.get_msg_type() {
                    MessageType::MsgRequestVoteResponse
                    | MessageType::MsgRequestPreVoteResponse => !real.reject,
                    MessageType::MsgPropose => true,
                    _ => false,
                },
                Carried::Forward(_) => true,
            };
            if !checked {
                continue;
            }
            let given = model
                .iter()
                .any(|e| e.src == m.src && e.dst == m.dst && stands_for(&e.msg, &m.carried));
            if !given {
                unmatched.push(format!(
                    "node {} sent node {} {} that the model's node did not",
                    m.src,
                    m.dst,
                    describe(&m.carried)
                ));
            }
        }
        unmatched
    }
}

pub fn kind(m: &Msg) -> &'static str {
    match m {
        Msg::Vote { pre: false, .. } => "vote request",
        Msg::Vote { pre: true, .. } => "pre-vote request",
        Msg::VoteResp { pre: false, .. } => "vote answer",
        Msg::VoteResp { pre: true, .. } => "pre-vote answer",
        Msg::Append { .. } => "append",
        Msg::AppendResp { ok: true, .. } => "append accepted",
        Msg::AppendResp { ok: false, .. } => "append refused",
        Msg::Forward { .. } => "forward",
        Msg::Snapshot { .. } => "snapshot",
    }
}

/// Whether `real` carries the decision the model's `msg` does.
fn stands_for(msg: &Msg, real: &Carried) -> bool {
    let m = match real {
        Carried::Raft(m) => m,
        Carried::Forward(envelope) => {
            return matches!(msg, Msg::Forward { cmd, req } if same_command(*cmd, *req, envelope))
        }
    };
    let term = |t: u8| m.term == u64::from(t);
    match msg {
        Msg::Vote {
            pre,
            term: t,
            last_idx,
            last_term,
            commit,
            commit_term,
        } => {
            let kind = if *pre {
                MessageType::MsgRequestPreVote
            } else {
                MessageType::MsgRequestVote
            };
            m.get_msg_type() == kind
                && term(*t)
                && m.index == u64::from(*last_idx)
                && m.log_term == u64::from(*last_term)
                && m.commit == u64::from(*commit)
                && m.commit_term == u64::from(*commit_term)
        }
        Msg::VoteResp {
            pre,
            term: t,
            granted,
        } => {
            let kind = if *pre {
                MessageType::MsgRequestPreVoteResponse
            } else {
                MessageType::MsgRequestVoteResponse
            };
            m.get_msg_type() == kind && term(*t) && m.reject != *granted
        }
        Msg::Append {
            term: t,
            prev_idx,
            prev_term,
            entries,
            commit,
        } => {
            m.get_msg_type() == MessageType::MsgAppend
                && term(*t)
                && m.index == u64::from(*prev_idx)
                && m.log_term == u64::from(*prev_term)
                && m.commit == u64::from(*commit)
                && m.entries.len() == entries.len()
                && m.entries
                    .iter()
                    .zip(entries)
                    .all(|(r, e)| r.term == u64::from(e.term))
        }
        Msg::AppendResp {
            term: t,
            ok,
            idx,
            refused_at,
        } => {
            // A refusal of a stale term's append (the model's carries no refused
            // index: an append after index 0 always matches) is raft-rs's bare
            // answer in its own term (check-quorum).
            let same = if *ok {
                !m.reject && m.index == u64::from(*idx)
            } else if *refused_at == 0 {
                !m.reject && m.index == 0
            } else {
                m.reject && m.index == u64::from(*refused_at)
            };
            m.get_msg_type() == MessageType::MsgAppendResponse && term(*t) && same
        }
        // raft-rs installs a snapshot in its unstable log until the next Ready, a
        // state the model's view does not show the same way (it keeps compacted
        // entries): a snapshot to a follower ends the walk (spec/conformance.md).
        Msg::Forward { .. } | Msg::Snapshot { .. } => false,
    }
}

fn same_command(cmd: Cmd, req: u8, envelope: &CommandEnvelope) -> bool {
    match (&envelope.command, cmd) {
        (
            MetadataCommand::RegisterBroker {
                broker_id,
                incarnation,
                ..
            },
            Cmd::Register(b, inc),
        ) => *broker_id as u64 == real_id(b) && *incarnation == u64::from(inc),
        (MetadataCommand::CreateTopic { name, .. }, Cmd::CreateTopic) => *name == format!("t{req}"),
        _ => false,
    }
}

fn describe(c: &Carried) -> String {
    match c {
        Carried::Raft(m) => format!(
            "{:?} term {} index {} log_term {} commit {} entries {:?} reject {} hint {}",
            m.get_msg_type(),
            m.term,
            m.index,
            m.log_term,
            m.commit,
            m.entries.iter().map(|e| e.term).collect::<Vec<_>>(),
            m.reject,
            m.reject_hint
        ),
        Carried::Forward(envelope) => format!("forward {:?}", envelope.command),
    }
}
