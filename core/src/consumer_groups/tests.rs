//! R-GROUP-9 (KIP-848), with logical time and clients that act on each answer the way
//! KIP-848 consumers do: they own exactly the last assignment they were given and
//! report it.

use super::*;
use proptest::prelude::*;

const T: TopicId = [7; 16];

fn topics(partitions: u32) -> TopicsView {
    [("t".to_string(), (T, partitions))].into()
}

fn groups() -> ConsumerGroups {
    ConsumerGroups::new(ConsumerGroupConfig::default(), 3)
}

/// A client: its member id and epoch, and what it owns.
#[derive(Clone, Debug, Default)]
struct Client {
    id: String,
    epoch: i32,
    owned: Assignment,
}

fn join(g: &mut ConsumerGroups, view: &TopicsView, now: u64) -> Client {
    let request = Heartbeat {
        group_id: "g".into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        owned: Some(Assignment::new()),
        ..Heartbeat::default()
    };
    let answer = g.heartbeat(request, view, now, false).unwrap();
    Client {
        id: answer.member_id,
        epoch: answer.member_epoch,
        owned: answer.assignment.unwrap_or_default(),
    }
}

fn beat(
    g: &mut ConsumerGroups,
    c: &mut Client,
    view: &TopicsView,
    now: u64,
) -> Result<(), HeartbeatError> {
    let request = Heartbeat {
        group_id: "g".into(),
        member_id: c.id.clone(),
        member_epoch: c.epoch,
        rebalance_timeout_ms: -1,
        owned: Some(c.owned.clone()),
        ..Heartbeat::default()
    };
    let answer = g.heartbeat(request, view, now, false).map_err(|(e, _)| e)?;
    c.epoch = answer.member_epoch;
    if let Some(assignment) = answer.assignment {
        c.owned = assignment;
    }
    Ok(())
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

fn disjoint(clients: &[&Client]) -> bool {
    let mut seen = BTreeSet::new();
    clients
        .iter()
        .flat_map(|c| {
            c.owned
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
        })
        .all(|tp| seen.insert(tp))
}

#[test]
fn r_group_9_a_second_member_gets_half_only_after_the_first_gave_it_up() {
    let (mut g, view) = (groups(), topics(4));
    let mut a = join(&mut g, &view, 0);
    assert_eq!((count(&a.owned), a.epoch), (4, 1));
    let mut b = join(&mut g, &view, 10);
    assert_eq!(count(&b.owned), 0, "nothing is free yet");
    beat(&mut g, &mut b, &view, 20).unwrap();
    assert_eq!(count(&b.owned), 0, "a has not revoked");
    beat(&mut g, &mut a, &view, 30).unwrap();
    assert_eq!(count(&a.owned), 2, "a is told to keep two");
    assert_eq!(a.epoch, 1, "a keeps its epoch while revoking");
    beat(&mut g, &mut a, &view, 40).unwrap();
    assert_eq!(a.epoch, 2, "revoked: a moves to the new epoch");
    beat(&mut g, &mut b, &view, 50).unwrap();
    assert_eq!((count(&b.owned), b.epoch), (2, 2));
    assert!(disjoint(&[&a, &b]));
    assert_eq!(g.state("g"), Some("Stable"));
}

#[test]
fn r_group_9_a_member_that_leaves_or_lapses_has_its_partitions_reassigned() {
    let (mut g, view) = (groups(), topics(2));
    let mut a = join(&mut g, &view, 0);
    let mut b = join(&mut g, &view, 0);
    for t in 1..4 {
        beat(&mut g, &mut a, &view, t).unwrap();
        beat(&mut g, &mut b, &view, t).unwrap();
    }
    assert_eq!((count(&a.owned), count(&b.owned)), (1, 1));
    let leave = Heartbeat {
        group_id: "g".into(),
        member_id: b.id.clone(),
        member_epoch: -1,
        ..Heartbeat::default()
    };
    assert_eq!(
        g.heartbeat(leave, &view, 5, false).unwrap().member_epoch,
        -1
    );
    beat(&mut g, &mut a, &view, 6).unwrap();
    assert_eq!(count(&a.owned), 2);
    // a's session lapses without heartbeats; a newcomer gets everything.
    assert_eq!(g.tick(6 + 45_000), vec![("g".to_string(), a.id.clone())]);
    let c = join(&mut g, &view, 50_000);
    assert_eq!(count(&c.owned), 2);
    assert_eq!(
        beat(&mut g, &mut a, &view, 50_001),
        Err(HeartbeatError::UnknownMemberId)
    );
}

#[test]
fn r_group_9_epochs_fence_zombies_and_commits_need_the_current_epoch() {
    let (mut g, view) = (groups(), topics(2));
    let mut a = join(&mut g, &view, 0);
    let mut zombie = a.clone();
    zombie.epoch = 7;
    assert_eq!(
        beat(&mut g, &mut zombie, &view, 1),
        Err(HeartbeatError::FencedMemberEpoch)
    );
    assert_eq!(g.validate_commit("g", &a.id, 1), Ok(()));
    assert_eq!(
        g.validate_commit("g", &a.id, 0),
        Err(CommitRefusal::StaleMemberEpoch)
    );
    assert_eq!(
        g.validate_commit("g", "nobody", 1),
        Err(CommitRefusal::UnknownMemberId)
    );
    assert_eq!(
        g.validate_commit("g", "", -1),
        Err(CommitRefusal::UnknownMemberId)
    );
    // OffsetFetch v9: the same checks, but no member and no epoch may always read.
    assert_eq!(g.validate_offset_fetch("g", Some(&a.id), 1), Ok(()));
    assert_eq!(g.validate_offset_fetch("g", None, -1), Ok(()));
    assert_eq!(
        g.validate_offset_fetch("g", Some(&a.id), 0),
        Err(CommitRefusal::StaleMemberEpoch)
    );
    assert_eq!(
        g.validate_offset_fetch("g", Some("nobody"), 1),
        Err(CommitRefusal::UnknownMemberId)
    );
    assert_eq!(
        g.validate_offset_fetch("g", None, 1),
        Err(CommitRefusal::UnknownMemberId)
    );
    // A late heartbeat at the previous epoch is accepted when it owns no more.
    let mut b = join(&mut g, &view, 2);
    beat(&mut g, &mut a, &view, 3).unwrap(); // a revokes one
    beat(&mut g, &mut a, &view, 4).unwrap(); // a at epoch 3
    let mut late = a.clone();
    late.epoch = 1;
    assert_eq!(beat(&mut g, &mut late, &view, 5), Ok(()));
    beat(&mut g, &mut b, &view, 6).unwrap();
    assert!(disjoint(&[&a, &b]));
}

#[test]
fn r_group_9_new_partitions_are_assigned_and_requests_are_checked() {
    let (mut g, view) = (groups(), topics(1));
    let mut a = join(&mut g, &view, 0);
    assert_eq!(count(&a.owned), 1);
    beat(&mut g, &mut a, &topics(3), 1).unwrap();
    assert_eq!(count(&a.owned), 3, "CreatePartitions reaches the members");
    let bad = Heartbeat {
        group_id: "g".into(),
        member_epoch: 0,
        rebalance_timeout_ms: 1,
        ..Heartbeat::default()
    };
    assert_eq!(
        g.heartbeat(bad, &view, 2, false).unwrap_err().0,
        HeartbeatError::InvalidRequest
    );
    let mut odd = Heartbeat {
        group_id: "g".into(),
        member_epoch: 0,
        rebalance_timeout_ms: 1,
        subscribed_topic_names: Some(vec!["t".into()]),
        ..Heartbeat::default()
    };
    odd.server_assignor = Some("sticky-ish".into());
    assert_eq!(
        g.heartbeat(odd.clone(), &view, 2, false).unwrap_err().0,
        HeartbeatError::UnsupportedAssignor
    );
    odd.server_assignor = None;
    assert_eq!(
        g.heartbeat(odd, &view, 2, true).unwrap_err().0,
        HeartbeatError::GroupIdNotFound
    );
}

#[test]
fn r_group_9_range_and_uniform_assign_every_partition_once() {
    for assignor in ASSIGNORS {
        let (mut g, view) = (groups(), topics(5));
        let mut clients: Vec<Client> = (0..3)
            .map(|i| {
                let request = Heartbeat {
                    group_id: "g".into(),
                    member_epoch: 0,
                    rebalance_timeout_ms: 30_000,
                    subscribed_topic_names: Some(vec!["t".into()]),
                    server_assignor: Some(assignor.into()),
                    ..Heartbeat::default()
                };
                let answer = g.heartbeat(request, &view, i, false).unwrap();
                Client {
                    id: answer.member_id,
                    epoch: answer.member_epoch,
                    owned: answer.assignment.unwrap_or_default(),
                }
            })
            .collect();
        for round in 0..4 {
            for c in &mut clients {
                beat(&mut g, c, &view, 10 + round).unwrap();
            }
        }
        let counts: Vec<usize> = clients.iter().map(|c| count(&c.owned)).collect();
        assert_eq!(counts.iter().sum::<usize>(), 5, "{assignor}: {counts:?}");
        assert!(
            counts.iter().all(|n| (1..=2).contains(n)),
            "{assignor}: {counts:?}"
        );
        assert!(disjoint(&clients.iter().collect::<Vec<_>>()));
        assert_eq!(g.state("g"), Some("Stable"), "{assignor}");
    }
}

#[derive(Debug, Clone)]
enum Op {
    Join(usize),
    Beat(usize),
    Leave(usize),
    Tick(u64),
    Grow,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..3usize).prop_map(Op::Join),
        4 => (0..3usize).prop_map(Op::Beat),
        1 => (0..3usize).prop_map(Op::Leave),
        1 => (1..30_000u64).prop_map(Op::Tick),
        1 => Just(Op::Grow),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    /// R-GROUP-9 as a property: whatever members do and whenever, no partition is
    /// owned by two members, and once every live member has heartbeated enough times
    /// with nothing else happening, every partition is owned and the group is Stable.
    #[test]
    fn r_group_9_no_partition_owned_twice_and_the_group_converges(ops in proptest::collection::vec(op(), 1..60)) {
        let mut g = groups();
        let mut partitions = 2;
        let mut clients: Vec<Option<Client>> = vec![None, None, None];
        let mut now = 0;
        for op in ops {
            let view = topics(partitions);
            match op {
                Op::Join(i) if clients[i].is_none() => clients[i] = Some(join(&mut g, &view, now)),
                Op::Beat(i) => {
                    if let Some(c) = clients[i].as_mut() {
                        if beat(&mut g, c, &view, now).is_err() {
                            clients[i] = None; // fenced or unknown: the client drops all
                        }
                    }
                }
                Op::Leave(i) => {
                    if let Some(c) = clients[i].take() {
                        let leave = Heartbeat { group_id: "g".into(), member_id: c.id, member_epoch: -1, ..Heartbeat::default() };
                        let _ = g.heartbeat(leave, &view, now, false);
                    }
                }
                Op::Tick(dt) => {
                    now += dt;
                    for (_, id) in g.tick(now) {
                        // The lapsed client finds out at its next heartbeat; until then
                        // it still consumes what it owned, which nobody else holds yet.
                        if let Some(c) = clients.iter_mut().flatten().find(|c| c.id == id) {
                            c.epoch = -100;
                        }
                    }
                }
                Op::Grow => partitions = (partitions + 1).min(6),
                Op::Join(_) => {}
            }
            let live: Vec<&Client> = clients.iter().flatten().filter(|c| c.epoch != -100).collect();
            prop_assert!(disjoint(&live), "{:?}", live);
        }
        // Quiet rounds: everyone alive heartbeats; the group settles.
        let view = topics(partitions);
        clients.iter_mut().for_each(|c| if c.as_ref().is_some_and(|c| c.epoch == -100) { *c = None });
        for _ in 0..4 {
            for c in clients.iter_mut().flatten() {
                now += 1;
                prop_assert!(beat(&mut g, c, &view, now).is_ok());
            }
        }
        let live: Vec<&Client> = clients.iter().flatten().collect();
        prop_assert!(disjoint(&live));
        if !live.is_empty() {
            prop_assert_eq!(live.iter().map(|c| count(&c.owned)).sum::<usize>(), partitions as usize);
            prop_assert_eq!(g.state("g"), Some("Stable"));
        }
    }
}

#[test]
fn r_group_9_a_coordinator_that_loads_the_record_resumes_members_at_their_epochs() {
    let (mut g, view) = (groups(), topics(4));
    let mut a = join(&mut g, &view, 0);
    let mut b = join(&mut g, &view, 1);
    for t in 2..6 {
        beat(&mut g, &mut a, &view, t).unwrap();
        beat(&mut g, &mut b, &view, t).unwrap();
    }
    let records = g.take_records();
    let (_, record) = records.last().unwrap().clone();
    assert!(
        g.take_records().is_empty(),
        "each change is handed out once"
    );
    beat(&mut g, &mut a, &view, 7).unwrap();
    assert!(
        g.take_records().is_empty(),
        "a plain heartbeat changes nothing durable"
    );

    let mut resumed = ConsumerGroups::new(ConsumerGroupConfig::default(), 4);
    assert!(resumed.load("g", &record, 100_000));
    let (epoch_a, owned_a) = (a.epoch, a.owned.clone());
    beat(&mut resumed, &mut a, &view, 100_001).unwrap();
    beat(&mut resumed, &mut b, &view, 100_002).unwrap();
    assert_eq!(
        (a.epoch, a.owned.clone()),
        (epoch_a, owned_a),
        "nothing moved"
    );
    assert_eq!(count(&a.owned) + count(&b.owned), 4);
    assert_eq!(resumed.state("g"), Some("Stable"));
    assert_eq!(resumed.validate_commit("g", &b.id, b.epoch), Ok(()));
    // Lapsed members are removed and that is recorded too.
    resumed.tick(100_000 + 45_001 + 10);
    assert_eq!(
        resumed.take_records().pop().map(|(_, r)| r.members.len()),
        Some(0)
    );
}

/// A static member's heartbeat: `epoch` 0 joins, -2 leaves its place, else beats.
fn static_beat(
    g: &mut ConsumerGroups,
    view: &TopicsView,
    member_id: &str,
    epoch: i32,
    now: u64,
) -> Result<HeartbeatAnswer, HeartbeatError> {
    let request = Heartbeat {
        group_id: "g".into(),
        member_id: member_id.into(),
        member_epoch: epoch,
        instance_id: Some("instance-1".into()),
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: (epoch == 0).then(|| vec!["t".into()]),
        owned: Some(Assignment::new()),
        ..Heartbeat::default()
    };
    g.heartbeat(request, view, now, false).map_err(|(e, _)| e)
}

/// R-GROUP-9 with static membership (KIP-345 under KIP-848, as Kafka's coordinator):
/// a second process naming an instance id an active member holds is refused with
/// UNRELEASED_INSTANCE_ID; once the holder leaves with epoch -2 it keeps its
/// partitions until the new process takes the instance over, and the old process is
/// then fenced with FENCED_INSTANCE_ID. (librdkafka's 0102 under the consumer
/// protocol: the second consumer got no error and waited.)
#[test]
fn r_group_9_a_static_instance_is_taken_over_only_once_released() {
    let (mut g, view) = (groups(), topics(4));
    let first = static_beat(&mut g, &view, "", 0, 0).unwrap();
    assert_eq!(
        static_beat(&mut g, &view, "", 0, 10).map(|a| a.member_id),
        Err(HeartbeatError::UnreleasedInstanceId)
    );
    let left = static_beat(&mut g, &view, &first.member_id, -2, 20).unwrap();
    assert_eq!(left.member_epoch, -2);
    let second = static_beat(&mut g, &view, "", 0, 30).unwrap();
    assert_ne!(second.member_id, first.member_id);
    assert_eq!(second.assignment.map(|a| count(&a)), Some(4));
    assert_eq!(
        static_beat(&mut g, &view, &first.member_id, first.member_epoch, 40).map(|_| ()),
        Err(HeartbeatError::FencedInstanceId)
    );
}
