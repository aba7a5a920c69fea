//! The metadata driver's decisions between the Raft node and the world, on two real
//! nodes over an in-memory network that can lose messages: when a registration is
//! proposed again (R-START-3), and when a client's write waits for a leader and when
//! it is answered (R-PROPOSE-2).

use std::path::Path;
use std::sync::Arc;

use chronik_core::consensus::{
    Driver, DriverConfig, Effect, ForwardOutcome, Input, MetadataNode, NodeConfig, Pacing,
    PeerMessage, ProposalFailure, Registration,
};
use chronik_core::disk::MemDisk;
use chronik_core::metadata::{ApplyOutcome, MetadataCommand};

const TICK_MS: u64 = 10;
const RETRY_MS: u64 = 200;
const FORWARD_TIMEOUT_MS: u64 = 1_000;

/// Two brokers (ids 1 and 2) and the messages between them.
struct Pair {
    drivers: Vec<Driver>,
    now: u64,
    in_flight: Vec<(u64, u64, PeerMessage)>,
    /// Which messages the network loses.
    lose: fn(from: u64, to: u64, &PeerMessage) -> bool,
    /// Forwards each node sent, in order.
    forwards: Vec<(u64, MetadataCommand)>,
    /// Request ids of the forwards, in the same order.
    forward_ids: Vec<u64>,
    /// (node, token, result) of every answer to a client, in order.
    answers: Vec<(u64, u64, Result<ApplyOutcome, ProposalFailure>)>,
}

type Answer = (u64, u64, Result<ApplyOutcome, ProposalFailure>);

fn driver(id: u64) -> Driver {
    let node = MetadataNode::open(
        Arc::new(MemDisk::new()),
        Path::new("/data/metadata"),
        NodeConfig {
            voters: vec![1, 2],
            election_seed: Some(id),
            ..NodeConfig::single(id)
        },
    )
    .expect("an empty disk opens");
    let config = DriverConfig {
        tick_ms: TICK_MS,
        session_timeout_ms: 60_000,
        forward_timeout_ms: FORWARD_TIMEOUT_MS,
        registration_retry_ms: RETRY_MS,
        id_base: 1 << 32,
        pacing: Pacing::Whole,
        await_leader: true,
    };
    Driver::new(node, config).expect("nothing to replay")
}

fn registration(id: u64) -> Registration {
    Registration {
        broker_id: id as i32,
        host: "127.0.0.1".into(),
        port: 9092,
        rack: None,
        incarnation: 1,
        listeners: Vec::new(),
        acks_before_fsync: false,
        short_copies: Vec::new(),
    }
}

fn create_topic(name: &str) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.into(),
        topic_id: format!("id-{name}"),
        partitions: vec![vec![1]],
        configs: Default::default(),
    }
}

impl Pair {
    fn new(lose: fn(u64, u64, &PeerMessage) -> bool) -> Self {
        Pair {
            drivers: vec![driver(1), driver(2)],
            now: 0,
            in_flight: Vec::new(),
            lose,
            forwards: Vec::new(),
            forward_ids: Vec::new(),
            answers: Vec::new(),
        }
    }

    fn step(&mut self, id: u64, input: Input) {
        let effects = self.drivers[(id - 1) as usize]
            .step(self.now, input)
            .expect("the node keeps running");
        for effect in effects {
            match effect {
                Effect::Send { to, message } => {
                    if let PeerMessage::Forward {
                        command,
                        request_id,
                    } = &message
                    {
                        self.forwards.push((id, command.clone()));
                        self.forward_ids.push(*request_id);
                    }
                    if !(self.lose)(id, to, &message) {
                        self.in_flight.push((id, to, message));
                    }
                }
                Effect::Answer { token, result } => self.answers.push((id, token, result)),
                Effect::PublishView => {}
            }
        }
    }

    /// Delivers what is in flight and ticks both nodes until `until` holds or
    /// `ms` pass.
    fn run_until(&mut self, ms: u64, until: impl Fn(&Pair) -> bool) -> bool {
        let end = self.now + ms;
        while self.now < end {
            for (from, to, message) in std::mem::take(&mut self.in_flight) {
                self.step(to, Input::Peer { from, message });
            }
            for id in [1, 2] {
                self.step(id, Input::Tick);
            }
            if until(self) {
                return true;
            }
            self.now += TICK_MS;
        }
        false
    }

    /// The leader both nodes know, once they agree.
    fn leader(&self) -> Option<u64> {
        let leader = self.drivers[0].node().leader_id()?;
        (self.drivers[1].node().leader_id() == Some(leader)).then_some(leader)
    }
}

/// R-START-3: a registration forwarded to a leader that never answers (every forward
/// lost) is proposed again once the forward timed out, not before, and until it is
/// applied once the network heals.
#[test]
fn r_start_3_a_lost_registration_forward_is_proposed_again_once_it_times_out() {
    let mut pair = Pair::new(|_, _, m| matches!(m, PeerMessage::Forward { .. }));
    assert!(
        pair.run_until(10_000, |p| p.leader().is_some()),
        "no leader"
    );
    let follower = 3 - pair.leader().expect("a leader");
    pair.step(follower, Input::Register(registration(follower)));
    let registrations = |p: &Pair| {
        p.forwards
            .iter()
            .filter(|(from, c)| {
                *from == follower && matches!(c, MetadataCommand::RegisterBroker { .. })
            })
            .count()
    };
    assert_eq!(registrations(&pair), 1, "the first attempt is at once");
    let start = pair.now;
    assert!(pair.run_until(2 * FORWARD_TIMEOUT_MS, |p| registrations(p) == 2));
    assert!(
        pair.now - start >= FORWARD_TIMEOUT_MS,
        "proposed again after {} ms",
        pair.now - start
    );
    pair.lose = |_, _, _| false;
    let registered = pair.run_until(10 * RETRY_MS, |p| {
        p.drivers.iter().all(|d| {
            d.node()
                .state()
                .brokers
                .get(&(follower as i32))
                .is_some_and(|b| b.incarnation == 1)
        })
    });
    assert!(registered, "the registration was never applied");
}

/// R-CLUSTER-2: a live broker that sees its start fenced asks to be let back naming
/// that fence (`UnfenceBroker`), not with its registration, which the state machine
/// refuses for a fenced start; and it is live again.
#[test]
fn r_cluster_2_a_fenced_broker_asks_to_be_let_back_naming_its_fence() {
    let mut pair = Pair::new(|_, _, _| false);
    assert!(
        pair.run_until(10_000, |p| p.leader().is_some()),
        "no leader"
    );
    let leader = pair.leader().expect("a leader");
    let follower = 3 - leader;
    let broker = follower as i32;
    pair.step(follower, Input::Register(registration(follower)));
    let live = |p: &Pair| {
        p.drivers.iter().all(|d| {
            let b = d.node().state().brokers.get(&broker);
            b.is_some_and(|b| b.incarnation == 1 && !b.fenced)
        })
    };
    assert!(pair.run_until(10 * RETRY_MS, live), "never registered");
    let fence = MetadataCommand::FenceBroker { broker_id: broker };
    pair.step(
        leader,
        Input::Propose {
            token: 1,
            command: fence,
        },
    );
    let fenced_at = |p: &Pair| {
        let b = p.drivers[(follower - 1) as usize]
            .node()
            .state()
            .brokers
            .get(&broker);
        b.filter(|b| b.fenced).map(|b| b.fenced_at)
    };
    assert!(pair.run_until(10 * RETRY_MS, |p| fenced_at(p).is_some()));
    let fence_index = fenced_at(&pair).expect("fenced");
    assert!(pair.run_until(20 * RETRY_MS, live), "never let back");
    let asked: Vec<&MetadataCommand> = pair
        .forwards
        .iter()
        .filter(|(from, _)| *from == follower)
        .map(|(_, c)| c)
        .collect();
    assert!(
        matches!(
            asked.last(),
            Some(MetadataCommand::UnfenceBroker { broker_id, incarnation: 1, fenced_at })
                if *broker_id == broker && *fenced_at == fence_index
        ),
        "{asked:?}"
    );
}

/// R-PROPOSE-2: a write made before any leader exists (a broker just started, or an
/// election under way) waits for one and is applied, as Kafka's forwarding to its
/// controller waits, rather than failing at once (a CI run's CreateTopics got
/// NOT_CONTROLLER from a node whose pre-vote had cleared its leader).
#[test]
fn r_propose_2_a_write_made_before_any_leader_waits_for_one_and_is_applied() {
    let mut pair = Pair::new(|_, _, _| false);
    assert_eq!(pair.leader(), None);
    pair.step(
        2,
        Input::Propose {
            token: 7,
            command: create_topic("early"),
        },
    );
    assert!(
        pair.answers.is_empty(),
        "answered before a leader: {:?}",
        pair.answers
    );
    assert!(pair.run_until(FORWARD_TIMEOUT_MS, |p| !p.answers.is_empty()));
    assert!(
        matches!(pair.answers.as_slice(), [(2, 7, Ok(ApplyOutcome::Done))]),
        "{:?}",
        pair.answers
    );
    assert!(pair.drivers[1].node().state().topics.contains_key("early"));
}

/// R-PROPOSE-2: with nobody to lead (the peer unreachable), the wait is bounded: the
/// client is told NOT_CONTROLLER at the forward timeout, not left waiting.
#[test]
fn r_propose_2_a_write_waiting_for_a_leader_is_answered_at_its_deadline() {
    let mut pair = Pair::new(|_, _, _| true);
    pair.step(
        1,
        Input::Propose {
            token: 3,
            command: create_topic("alone"),
        },
    );
    let start = pair.now;
    assert!(pair.run_until(2 * FORWARD_TIMEOUT_MS, |p| !p.answers.is_empty()));
    assert!(pair.now - start >= FORWARD_TIMEOUT_MS);
    assert!(
        matches!(
            pair.answers.as_slice(),
            [(1, 3, Err(ProposalFailure::NotLeader { .. }))]
        ),
        "{:?}",
        pair.answers
    );
}

/// R-PROPOSE-2: a forward the leader refused (it appended nothing) is not sent back
/// to it in the same term, but waits for another leader or term; one the leader
/// appended and then lost (it may still commit) is answered at once, never placed
/// again (it could apply twice).
#[test]
fn r_propose_2_refused_and_deposed_forwards_are_told_apart() {
    let mut pair = Pair::new(|_, _, m| matches!(m, PeerMessage::Forward { .. }));
    assert!(
        pair.run_until(10_000, |p| p.leader().is_some()),
        "no leader"
    );
    let leader = pair.leader().expect("a leader");
    let follower = 3 - leader;
    let reply = |request_id, outcome| Input::Peer {
        from: leader,
        message: PeerMessage::ForwardReply {
            request_id,
            outcome,
        },
    };
    let answers = |p: &Pair| -> Vec<Answer> { p.answers.clone() };

    pair.step(
        follower,
        Input::Propose {
            token: 1,
            command: create_topic("refused"),
        },
    );
    let refused = *pair.forward_ids.last().expect("forwarded");
    pair.step(
        follower,
        reply(refused, ForwardOutcome::Refused { leader: None }),
    );
    assert!(
        answers(&pair).is_empty(),
        "a refused forward waits for a leader"
    );
    pair.run_until(FORWARD_TIMEOUT_MS / 2, |_| false);
    assert_eq!(
        pair.forwards.len(),
        1,
        "sent again to the node that refused it"
    );

    pair.step(
        follower,
        Input::Propose {
            token: 2,
            command: create_topic("deposed"),
        },
    );
    let deposed = *pair.forward_ids.last().expect("forwarded");
    pair.step(
        follower,
        reply(deposed, ForwardOutcome::NotLeader { leader: None }),
    );
    assert!(
        matches!(
            answers(&pair).as_slice(),
            [(_, 2, Err(ProposalFailure::NotLeader { .. }))]
        ),
        "{:?}",
        pair.answers
    );
    assert!(pair.run_until(FORWARD_TIMEOUT_MS, |p| p.answers.len() == 2));
    assert!(matches!(
        pair.answers[1],
        (_, 1, Err(ProposalFailure::NotLeader { .. }))
    ));
    assert_eq!(pair.forwards.len(), 2, "neither was placed again");
}
