//! `peer_message` and `metadata`: what one node takes from another (peer frames,
//! after their CRC) and from its Raft log and snapshots (metadata commands).

use crate::alloc::{self, assert_within};
use chronik_core::consensus::PeerMessage;
use chronik_core::log::frame::{self, Decoded, FRAME_HEADER_LEN};
use chronik_core::metadata::{CommandEnvelope, MetadataCommand, MetadataState, Snapshot};
use std::collections::BTreeMap;

/// JSON and protobuf decoders may build a few structures per input byte.
const PER_BYTE: usize = 64;
const SLACK: usize = 1 << 20;
/// rust-protobuf 2 reserves a length-delimited field's stated length up front, up
/// to its READ_RAW_BYTES_MAX_ALLOC of 10 MB: a bound of the crate, not of the input.
const PROTOBUF_SLACK: usize = 10_000_000;

/// `data` is a peer frame's payload (kind, sender, body). Checks: no panic;
/// reservations bounded by the input and protobuf's own cap; a message that decodes encodes to a frame
/// whose header vouches for it and that decodes to the same sender and message.
pub fn peer_message(data: &[u8]) {
    let (decoded, usage) = alloc::measure(|| PeerMessage::decode(data));
    let cap = SLACK + PROTOBUF_SLACK + PER_BYTE * data.len();
    assert_within("peer decode reserved", usage.reserved_peak, cap, data.len());
    let Ok((from, message)) = decoded else {
        return;
    };
    let framed = message
        .encode(from)
        .expect("a decoded peer message encodes");
    let payload = checked_payload(&framed);
    let (again_from, again) = PeerMessage::decode(payload).expect("re-encoded message decodes");
    assert_eq!(again_from, from, "sender changed in a round trip");
    assert!(same(&message, &again), "{message:?} came back as {again:?}");
}

/// Equal messages. A Raft message is compared by its known fields (its text form):
/// rust-protobuf 2 keeps unknown fields in a hash map, so their order in a
/// re-encoding varies from run to run, and they and the presence of empty
/// sub-messages do not always survive one; raft-rs reads neither.
fn same(a: &PeerMessage, b: &PeerMessage) -> bool {
    match (a, b) {
        (PeerMessage::Raft(a), PeerMessage::Raft(b)) => format!("{a:?}") == format!("{b:?}"),
        (
            PeerMessage::Forward {
                request_id,
                command,
            },
            PeerMessage::Forward {
                request_id: id,
                command: c,
            },
        ) => request_id == id && command == c,
        (
            PeerMessage::ForwardReply {
                request_id,
                outcome,
            },
            PeerMessage::ForwardReply {
                request_id: id,
                outcome: o,
            },
        ) => request_id == id && outcome == o,
        _ => false,
    }
}

fn checked_payload(framed: &[u8]) -> &[u8] {
    match frame::decode(framed, 0) {
        Decoded::Frame { start, end } if start == FRAME_HEADER_LEN && end == framed.len() => {
            &framed[start..end]
        }
        other => panic!("an encoded peer message is not one valid frame: {other:?}"),
    }
}

/// `data` is a snapshot on its first line and Raft entries on the lines after
/// (a line that does not decode is skipped here; the node stops on one). Checks:
/// no panic, reservations bounded; a decoded envelope or snapshot encodes and
/// decodes to itself; applying every entry to the snapshot's state (or a small
/// cluster's, when the first line is not a snapshot) never panics, applies each
/// index once (a replayed index changes nothing), and leaves a state that
/// round-trips through a snapshot.
pub fn metadata(data: &[u8]) {
    let (_, usage) = alloc::measure(|| replay(data));
    let cap = SLACK + PER_BYTE * data.len();
    assert_within(
        "metadata replay reserved",
        usage.reserved_peak,
        cap,
        data.len(),
    );
}

fn replay(data: &[u8]) {
    let mut lines = data.split(|b| *b == b'\n');
    let first = lines.next().unwrap_or_default();
    let mut state = match Snapshot::decode(first) {
        Ok(state) => {
            round_trip_snapshot(&state);
            state
        }
        Err(_) => small_cluster(),
    };
    for (index, line) in (state.applied_index + 1..).zip(std::iter::once(first).chain(lines)) {
        let Ok(envelope) = CommandEnvelope::decode(line) else {
            continue;
        };
        let bytes = envelope.encode().expect("a decoded envelope encodes");
        assert_eq!(CommandEnvelope::decode(&bytes).as_ref(), Ok(&envelope));
        state.apply(index, &envelope);
        let after = state.clone();
        state.apply(index, &envelope);
        assert_eq!(state, after, "index {index} applied twice");
        round_trip_snapshot(&state);
    }
}

fn round_trip_snapshot(state: &MetadataState) {
    let bytes = Snapshot::encode(state).expect("a state encodes");
    let again = Snapshot::decode(&bytes).expect("an encoded snapshot decodes");
    assert_eq!(&again, state, "snapshot round trip changed the state");
}

/// Three brokers and a topic of two partitions, so commands have something to act on.
fn small_cluster() -> MetadataState {
    let mut state = MetadataState::default();
    let mut commands: Vec<MetadataCommand> = (1..=3)
        .map(|id| MetadataCommand::RegisterBroker {
            broker_id: id,
            host: "127.0.0.1".into(),
            port: 9090 + id,
            rack: None,
            incarnation: 1,
            listeners: Vec::new(),
            acks_before_fsync: false,
            short_copies: Vec::new(),
        })
        .collect();
    commands.push(MetadataCommand::CreateTopic {
        name: "t".into(),
        topic_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        partitions: vec![vec![1, 2, 3], vec![2, 3, 1]],
        configs: BTreeMap::new(),
    });
    for (index, command) in (1..).zip(commands) {
        state.apply(index, &CommandEnvelope::new(index, command));
    }
    state
}
