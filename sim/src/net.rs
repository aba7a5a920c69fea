//! The simulated network: packets in flight ordered by delivery time, with loss,
//! duplication, latency and partitions drawn by the run's random source. Packets
//! carry the real peer-message bytes (`PeerMessage::encode`), so the codec is on the
//! simulated path too.

use crate::options::Faults;
use chronik_core::consensus::PeerMessage;
use chronik_core::log::frame;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
pub struct Packet {
    pub from: u64,
    pub to: u64,
    pub payload: Payload,
}

/// What a packet carries: a metadata peer message as the transport frames it, or a
/// partition request or answer (replica fetches and client produces), or a group
/// request or answer between a group member and a coordinator.
#[derive(Debug, Clone)]
pub enum Payload {
    Raft(Vec<u8>),
    Partition(crate::host::Message),
    Group(crate::group_host::GroupMessage),
}

/// The address of the simulated clients: never cut off by a partition, which
/// separates brokers from each other.
pub const CLIENTS: u64 = 0;

#[derive(Debug, Default)]
pub struct Network {
    /// (delivery time, sequence) -> packet; the sequence keeps ties deterministic.
    in_flight: BTreeMap<(u64, u64), Packet>,
    seq: u64,
    /// (from, to) pairs that lose everything.
    blocked: BTreeSet<(u64, u64)>,
}

/// What happened to a sent packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Queued,
    Duplicated,
    Dropped,
    Blocked,
}

impl Network {
    pub fn send(&mut self, rng: &mut impl Rng, faults: &Faults, now: u64, packet: Packet) -> Fate {
        if self.blocked.contains(&(packet.from, packet.to)) {
            return Fate::Blocked;
        }
        if rng.gen_range(0..1000) < faults.drop_per_mille {
            return Fate::Dropped;
        }
        // A group request travels on a client's TCP connection, which never delivers
        // it twice; Kafka's commits carry nothing to tell a copy processed late from
        // a new commit, so a copy would be a fault no broker survives. (Produce
        // requests keep their copies: idempotent producers must survive them.)
        let duplicated = rng.gen_range(0..1000) < faults.duplicate_per_mille;
        let copies = if duplicated && !matches!(packet.payload, Payload::Group(_)) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let latency = rng.gen_range(faults.min_latency_ms..=faults.max_latency_ms);
            self.seq += 1;
            self.in_flight
                .insert((now + latency, self.seq), packet.clone());
        }
        if copies == 2 {
            Fate::Duplicated
        } else {
            Fate::Queued
        }
    }

    /// Delivers `packet` at `at` instead (its receiver is paused).
    pub fn requeue(&mut self, at: u64, packet: Packet) {
        self.seq += 1;
        self.in_flight.insert((at, self.seq), packet);
    }

    pub fn next_delivery(&self) -> Option<u64> {
        self.in_flight.keys().next().map(|(at, _)| *at)
    }

    pub fn pop_due(&mut self, now: u64) -> Option<Packet> {
        let (&key, _) = self.in_flight.iter().next()?;
        if key.0 > now {
            return None;
        }
        self.in_flight.remove(&key)
    }

    /// Cuts `node` off from every other node, both ways.
    pub fn isolate(&mut self, node: u64, all: &[u64]) {
        for &other in all.iter().filter(|&&o| o != node) {
            self.blocked.insert((node, other));
            self.blocked.insert((other, node));
        }
    }

    /// Loses everything from `from` to `to`, but not the other way.
    pub fn block_one_way(&mut self, from: u64, to: u64) {
        self.blocked.insert((from, to));
    }

    /// Node `to`'s process died: what was on its way to it is lost with its
    /// connections (a packet held for a paused process must not reach the next one).
    pub fn lose_to(&mut self, to: u64) {
        self.in_flight.retain(|_, packet| packet.to != to);
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    pub fn is_partitioned(&self) -> bool {
        !self.blocked.is_empty()
    }
}

/// Checks a packet's frame and decodes it as the transport does.
pub fn decode(bytes: &[u8]) -> Result<(u64, PeerMessage), String> {
    let header: &[u8; frame::FRAME_HEADER_LEN] = bytes
        .get(..frame::FRAME_HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or("packet shorter than a frame header")?;
    let (len, crc) = frame::parse_header(header);
    let payload = &bytes[frame::FRAME_HEADER_LEN..];
    if payload.len() != len as usize || frame::checksum(payload) != crc {
        return Err("packet frame does not match its header".into());
    }
    PeerMessage::decode(payload)
}
