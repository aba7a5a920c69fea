//! Messages between the metadata group's nodes and their byte format: Raft messages
//! and forwarded proposals (R-PROPOSE-2). The shell's transport frames and moves
//! them; the simulator passes them through the same encoding.

use protobuf::Message as _;
use raft::eraftpb::Message as RaftMessage;
use serde::{Deserialize, Serialize};

use crate::log::frame;
use crate::metadata::{ApplyOutcome, MetadataCommand};

const KIND_RAFT: u8 = 1;
const KIND_FORWARD: u8 = 2;
const KIND_FORWARD_REPLY: u8 = 3;

/// What a forwarded proposal came to, as the leader reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardOutcome {
    /// Applied at this Raft index with this outcome.
    Applied {
        index: u64,
        outcome: ApplyOutcome,
    },
    /// The receiver did not lead when the forward arrived and appended nothing;
    /// this is who it thinks leads.
    Refused {
        leader: Option<u64>,
    },
    /// The receiver appended it but lost leadership before it applied: it may still
    /// commit under the next leader. This is who the receiver thinks leads.
    NotLeader {
        leader: Option<u64>,
    },
    Dropped(String),
}

#[derive(Debug, Clone)]
pub enum PeerMessage {
    Raft(RaftMessage),
    /// A proposal from a node that is not the leader (R-PROPOSE-2).
    Forward {
        request_id: u64,
        command: MetadataCommand,
    },
    ForwardReply {
        request_id: u64,
        outcome: ForwardOutcome,
    },
}

#[derive(Serialize, Deserialize)]
struct ForwardBody {
    request_id: u64,
    command: MetadataCommand,
}

#[derive(Serialize, Deserialize)]
struct ForwardReplyBody {
    request_id: u64,
    outcome: ForwardOutcome,
}

impl PeerMessage {
    /// The framed bytes (`[u32 length][u32 crc32][payload]`) of this message from `from`.
    pub fn encode(&self, from: u64) -> Result<Vec<u8>, String> {
        let (kind, body) = match self {
            PeerMessage::Raft(m) => (KIND_RAFT, m.write_to_bytes().map_err(|e| e.to_string())?),
            PeerMessage::Forward {
                request_id,
                command,
            } => (
                KIND_FORWARD,
                serde_json::to_vec(&ForwardBody {
                    request_id: *request_id,
                    command: command.clone(),
                })
                .map_err(|e| e.to_string())?,
            ),
            PeerMessage::ForwardReply {
                request_id,
                outcome,
            } => (
                KIND_FORWARD_REPLY,
                serde_json::to_vec(&ForwardReplyBody {
                    request_id: *request_id,
                    outcome: outcome.clone(),
                })
                .map_err(|e| e.to_string())?,
            ),
        };
        let mut payload = Vec::with_capacity(9 + body.len());
        payload.push(kind);
        payload.extend_from_slice(&from.to_be_bytes());
        payload.extend_from_slice(&body);
        let mut framed = vec![0u8; frame::FRAME_HEADER_LEN];
        frame::write_header(&mut framed, &payload);
        framed.extend_from_slice(&payload);
        Ok(framed)
    }

    /// Decodes a checked payload into (sender, message).
    pub fn decode(payload: &[u8]) -> Result<(u64, PeerMessage), String> {
        if payload.len() < 9 {
            return Err(format!(
                "peer frame of {} bytes is too short",
                payload.len()
            ));
        }
        let kind = payload[0];
        let mut from = [0u8; 8];
        from.copy_from_slice(&payload[1..9]);
        let from = u64::from_be_bytes(from);
        let body = &payload[9..];
        let message = match kind {
            KIND_RAFT => PeerMessage::Raft(
                RaftMessage::parse_from_bytes(body).map_err(|e| format!("raft message: {e}"))?,
            ),
            KIND_FORWARD => {
                let b: ForwardBody =
                    serde_json::from_slice(body).map_err(|e| format!("forward: {e}"))?;
                PeerMessage::Forward {
                    request_id: b.request_id,
                    command: b.command,
                }
            }
            KIND_FORWARD_REPLY => {
                let b: ForwardReplyBody =
                    serde_json::from_slice(body).map_err(|e| format!("forward reply: {e}"))?;
                PeerMessage::ForwardReply {
                    request_id: b.request_id,
                    outcome: b.outcome,
                }
            }
            other => return Err(format!("unknown peer frame kind {other}")),
        };
        Ok((from, message))
    }
}
