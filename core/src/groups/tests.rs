//! Rules of spec/groups.md, one test (or more) each, driven with logical time.

use super::subscription;
use super::*;
use proptest::prelude::*;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;
const DELAY: u64 = 3_000;
/// When the groups built by the helpers below are Stable.
const STABLE: u64 = 2 * DELAY;

fn coordinator() -> Coordinator {
    Coordinator::new(GroupConfig::default(), 7)
}

fn join_req(member_id: &str, instance: Option<&str>, topics: &[&str]) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: instance.map(String::from),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), subscription::encode(topics))],
        require_known_member_id: false,
        supports_skip_assignment: false,
    }
}

fn sync_req(member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: None,
        generation_id,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a.as_bytes())))
            .collect(),
    }
}

fn join_of(replies: &[Reply], token: Token) -> Option<JoinResult> {
    replies.iter().find_map(|r| match r {
        Reply::Join(t, result) if *t == token => Some(result.clone()),
        _ => None,
    })
}

fn sync_of(replies: &[Reply], token: Token) -> Option<SyncResult> {
    replies.iter().find_map(|r| match r {
        Reply::Sync(t, result) if *t == token => Some(result.clone()),
        _ => None,
    })
}

fn commit(c: &mut Coordinator, member: &str, generation: i32, now: u64) -> Result<(), GroupError> {
    let who = Committer {
        member_id: member,
        group_instance_id: None,
        generation_id: generation,
        api_version: 8,
    };
    c.validate_commit("g", who, now)
}

/// Two members joined at t=0 and synced: (coordinator, leader id, follower id).
fn stable_group_of_two() -> (Coordinator, String, String) {
    let mut c = coordinator();
    let mut replies = c.join(join_req("", None, &["t"]), 0, 1);
    replies.extend(c.join(join_req("", None, &["t"]), 10, 2));
    // The second member arrived during the initial delay, which is extended once.
    assert!(c.tick(DELAY).is_empty());
    replies.extend(c.tick(STABLE));
    let (a, b) = (join_of(&replies, 1).unwrap(), join_of(&replies, 2).unwrap());
    assert_eq!((a.generation_id, b.generation_id), (1, 1));
    let (leader, follower) = if a.leader == a.member_id {
        (a.member_id, b.member_id)
    } else {
        (b.member_id, a.member_id)
    };
    let mut replies = c.sync(sync_req(&follower, 1, &[]), STABLE, 3);
    replies.extend(c.sync(
        sync_req(&leader, 1, &[(&leader, "L"), (&follower, "F")]),
        STABLE,
        4,
    ));
    assert_eq!(
        sync_of(&replies, 3).unwrap().assignment,
        Bytes::from_static(b"F")
    );
    assert_eq!(
        sync_of(&replies, 4).unwrap().assignment,
        Bytes::from_static(b"L")
    );
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
    (c, leader, follower)
}

#[test]
fn r_group_5_first_join_waits_the_initial_delay_so_members_started_together_share_a_generation() {
    let mut c = coordinator();
    assert!(c.join(join_req("", None, &["t"]), 0, 1).is_empty());
    assert!(c.join(join_req("", None, &["t"]), 2_000, 2).is_empty());
    // A member arrived during the delay: it is extended once more (up to the
    // rebalance timeout), so nothing is answered at the first deadline.
    assert!(c.tick(DELAY).is_empty());
    let replies = c.tick(2 * DELAY);
    let (a, b) = (join_of(&replies, 1).unwrap(), join_of(&replies, 2).unwrap());
    assert_eq!((a.error, b.error), (None, None));
    assert_eq!((a.generation_id, b.generation_id), (1, 1));
    assert_eq!(a.leader, b.leader);
    let leader = if a.leader == a.member_id { &a } else { &b };
    assert_eq!(
        leader.members.len(),
        2,
        "the leader gets every subscription"
    );
}

#[test]
fn r_group_5_zero_initial_delay_answers_the_first_join_at_once() {
    let config = GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    };
    let mut c = Coordinator::new(config, 1);
    let replies = c.join(join_req("", None, &["t"]), 0, 1);
    assert_eq!(join_of(&replies, 1).unwrap().generation_id, 1);
}

#[test]
fn r_group_4_a_current_member_commits_while_the_group_prepares_a_rebalance() {
    let (mut c, leader, follower) = stable_group_of_two();
    assert!(c.join(join_req("", None, &["t"]), 10_000, 9).is_empty());
    assert_eq!(
        c.describe("g").unwrap().state,
        GroupState::PreparingRebalance
    );
    assert_eq!(
        commit(&mut c, &follower, 1, 10_001),
        Ok(()),
        "commit on revoke"
    );
    assert_eq!(commit(&mut c, &leader, 1, 10_001), Ok(()));
    assert_eq!(
        c.heartbeat("g", &follower, None, 1, 10_002),
        Err(GroupError::RebalanceInProgress)
    );
}

#[test]
fn r_group_4_commits_refused_in_completing_rebalance_from_stale_generations_and_strangers() {
    let (mut c, leader, follower) = stable_group_of_two();
    let mut replies = c.join(join_req(&leader, None, &["t", "u"]), 10_000, 10);
    replies.extend(c.join(join_req(&follower, None, &["t", "u"]), 10_001, 11));
    assert_eq!(join_of(&replies, 11).unwrap().generation_id, 2);
    assert_eq!(
        c.describe("g").unwrap().state,
        GroupState::CompletingRebalance
    );
    assert_eq!(
        commit(&mut c, &follower, 2, 10_002),
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(
        commit(&mut c, &follower, 1, 10_002),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        commit(&mut c, "stranger", 2, 10_002),
        Err(GroupError::UnknownMemberId)
    );
    // An admin commit (generation -1, no member) on an active group races its members.
    assert_eq!(
        commit(&mut c, "", -1, 10_002),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn r_group_4_admin_commits_go_to_empty_and_unknown_groups_only() {
    let mut c = coordinator();
    assert_eq!(commit(&mut c, "", -1, 0), Ok(()));
    assert_eq!(
        commit(&mut c, "m", 3, 0),
        Err(GroupError::IllegalGeneration)
    );
    let v9 = Committer {
        member_id: "m",
        group_instance_id: None,
        generation_id: 3,
        api_version: 9,
    };
    assert_eq!(
        c.validate_commit("g", v9, 0),
        Err(GroupError::GroupIdNotFound)
    );
}

#[test]
fn r_group_6_first_join_of_v4_is_answered_member_id_required_and_the_id_then_joins() {
    let config = GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    };
    let mut c = Coordinator::new(config, 1);
    let mut first = join_req("", None, &["t"]);
    first.require_known_member_id = true;
    let answer = join_of(&c.join(first.clone(), 0, 1), 1).unwrap();
    assert_eq!(answer.error, Some(GroupError::MemberIdRequired));
    assert!(!answer.member_id.is_empty());
    let mut second = first.clone();
    second.member_id = answer.member_id.clone();
    let joined = join_of(&c.join(second, 5, 2), 2).unwrap();
    assert_eq!((joined.error, joined.member_id), (None, answer.member_id));
    // A pending id that never comes back lapses with its session timeout.
    let pending = join_of(&c.join(first, 10, 3), 3).unwrap();
    c.tick(10 + SESSION as u64);
    let mut late = join_req(&pending.member_id, None, &["t"]);
    late.require_known_member_id = true;
    assert_eq!(
        join_of(&c.join(late, 20_000, 4), 4).unwrap().error,
        Some(GroupError::UnknownMemberId)
    );
}

#[test]
fn r_group_7_a_static_member_restarting_in_a_stable_group_keeps_its_assignment_without_a_rebalance()
{
    let (mut c, leader, other) = stable_static_group();
    let instance = instance_of(&c, &other.member_id);
    let restarted = join_of(
        &c.join(join_req("", instance.as_deref(), &["t"]), 9_000, 5),
        5,
    )
    .unwrap();
    assert_eq!(restarted.error, None);
    assert_eq!(restarted.generation_id, 1, "no new generation");
    assert_ne!(restarted.member_id, other.member_id);
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
    assert_eq!(
        c.heartbeat("g", &leader.member_id, None, 1, 9_001),
        Ok(()),
        "the other member is not disturbed"
    );
    let mut again = sync_req(&restarted.member_id, 1, &[]);
    again.group_instance_id = instance.clone();
    assert_eq!(
        sync_of(&c.sync(again, 9_002, 6), 6).unwrap().assignment,
        Bytes::from_static(b"O")
    );
    // The old incarnation is fenced.
    assert_eq!(
        c.heartbeat("g", &other.member_id, instance.as_deref(), 1, 9_003),
        Err(GroupError::FencedInstanceId)
    );
}

/// A Stable group of static members i-1 and i-2, synced: (coordinator, leader's join
/// answer, the other's).
fn stable_static_group() -> (Coordinator, JoinResult, JoinResult) {
    let mut c = coordinator();
    let mut replies = c.join(join_req("", Some("i-1"), &["t"]), 0, 1);
    replies.extend(c.join(join_req("", Some("i-2"), &["t"]), 0, 2));
    c.tick(DELAY);
    replies.extend(c.tick(STABLE));
    let (a, b) = (join_of(&replies, 1).unwrap(), join_of(&replies, 2).unwrap());
    let (leader, other) = if a.leader == a.member_id {
        (a, b)
    } else {
        (b, a)
    };
    c.sync(sync_req(&other.member_id, 1, &[]), STABLE, 3);
    let assignments = [
        (leader.member_id.as_str(), "L"),
        (other.member_id.as_str(), "O"),
    ];
    c.sync(sync_req(&leader.member_id, 1, &assignments), STABLE, 4);
    (c, leader, other)
}

fn instance_of(c: &Coordinator, member_id: &str) -> Option<String> {
    c.describe("g")
        .unwrap()
        .members
        .iter()
        .find(|m| m.member_id == member_id)
        .and_then(|m| m.group_instance_id.clone())
}

#[test]
fn r_group_7_a_restarted_static_leader_is_told_it_leads_and_to_skip_the_assignment_from_v9() {
    for supports_skip in [false, true] {
        let (mut c, leader, other) = stable_static_group();
        let mut rejoin = join_req("", instance_of(&c, &leader.member_id).as_deref(), &["t"]);
        rejoin.supports_skip_assignment = supports_skip;
        let restarted = join_of(&c.join(rejoin, 9_000, 5), 5).unwrap();
        assert_eq!(restarted.error, None);
        assert_eq!(restarted.generation_id, 1, "no new generation");
        assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
        if supports_skip {
            assert_eq!(
                restarted.leader, restarted.member_id,
                "v9: it learns it leads"
            );
            assert_eq!(restarted.members.len(), 2, "v9: with the members to watch");
            assert!(restarted.skip_assignment, "v9: but must not assign");
        } else {
            assert_eq!(
                restarted.leader, leader.member_id,
                "v8: the old id, not its own"
            );
            assert!(restarted.members.is_empty());
            assert!(!restarted.skip_assignment);
        }
        // A follower rejoining is never told to skip: it does not assign anyway.
        let mut follower = join_req("", instance_of(&c, &other.member_id).as_deref(), &["t"]);
        follower.supports_skip_assignment = supports_skip;
        let rejoined = join_of(&c.join(follower, 9_001, 6), 6).unwrap();
        assert!(!rejoined.skip_assignment && rejoined.members.is_empty());
        assert_ne!(rejoined.leader, rejoined.member_id);
    }
}

#[test]
fn r_group_7_leave_by_instance_id_removes_the_static_member_and_fences_a_wrong_member_id() {
    let (mut c, leader, _) = stable_group_of_two();
    let mut replies = c.join(join_req("", Some("static"), &["t"]), 10_000, 7);
    replies.extend(c.tick(10_000 + REBALANCE as u64));
    let joined = join_of(&replies, 7).unwrap();
    let wrong = LeavingMember {
        member_id: leader.clone(),
        group_instance_id: Some("static".into()),
    };
    let right = LeavingMember {
        member_id: String::new(),
        group_instance_id: Some("static".into()),
    };
    let (results, _) = c.leave("g", &[wrong, right], 40_000);
    assert_eq!(results, vec![Err(GroupError::FencedInstanceId), Ok(())]);
    assert!(c
        .describe("g")
        .unwrap()
        .members
        .iter()
        .all(|m| m.member_id != joined.member_id));
}

#[test]
fn r_group_1_a_lapsed_session_rebalances_the_rest_and_a_rejoin_is_answered_at_once_when_all_are_in()
{
    let (mut c, leader, follower) = stable_group_of_two();
    c.heartbeat("g", &leader, None, 1, 12_000).unwrap();
    let replies = c.tick(STABLE + SESSION as u64 + 1);
    assert!(replies.is_empty());
    assert_eq!(
        c.heartbeat("g", &leader, None, 1, 16_100),
        Err(GroupError::RebalanceInProgress)
    );
    let replies = c.join(join_req(&leader, None, &["t"]), 16_200, 8);
    let rejoined = join_of(&replies, 8).unwrap();
    assert_eq!((rejoined.generation_id, rejoined.members.len()), (2, 1));
    assert_eq!(
        c.heartbeat("g", &follower, None, 1, 16_300),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn r_group_1_a_leader_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let (mut c, leader, follower) = stable_group_of_two();
    let mut replies = c.join(join_req(&leader, None, &["t", "u"]), 10_000, 10);
    replies.extend(c.join(join_req(&follower, None, &["t", "u"]), 10_001, 11));
    assert_eq!(join_of(&replies, 11).unwrap().generation_id, 2);
    assert!(c.sync(sync_req(&follower, 2, &[]), 10_002, 12).is_empty());
    let replies = c.tick(10_001 + REBALANCE as u64);
    assert_eq!(
        sync_of(&replies, 12).unwrap().error,
        Some(GroupError::RebalanceInProgress)
    );
    let summary = c.describe("g").unwrap();
    assert!(summary.members.iter().all(|m| m.member_id != leader));
}

#[test]
fn r_group_1_the_rebalance_timeout_drops_members_that_did_not_rejoin() {
    let (mut c, leader, follower) = stable_group_of_two();
    assert!(c
        .join(join_req(&leader, None, &["t", "u"]), 10_000, 10)
        .is_empty());
    c.heartbeat("g", &follower, None, 1, 11_000).unwrap_err();
    let replies = c.tick(10_000 + REBALANCE as u64);
    let result = join_of(&replies, 10).unwrap();
    assert_eq!((result.generation_id, result.members.len()), (2, 1));
}

#[test]
fn r_group_1_protocols_are_chosen_by_vote_and_a_member_without_a_common_one_is_refused() {
    let mut c = coordinator();
    let mut a = join_req("", None, &["t"]);
    a.protocols = vec![
        ("range".into(), Bytes::new()),
        ("roundrobin".into(), Bytes::new()),
    ];
    let mut b = a.clone();
    b.protocols.reverse();
    let mut d = a.clone();
    d.protocols = vec![("roundrobin".into(), Bytes::new())];
    c.join(a, 0, 1);
    c.join(b, 0, 2);
    let mut replies = c.join(d, 0, 3);
    c.tick(DELAY);
    replies.extend(c.tick(STABLE));
    assert_eq!(
        join_of(&replies, 1).unwrap().protocol_name.as_deref(),
        Some("roundrobin")
    );
    let mut odd = join_req("", None, &["t"]);
    odd.protocols = vec![("sticky".into(), Bytes::new())];
    assert_eq!(
        join_of(&c.join(odd, STABLE, 4), 4).unwrap().error,
        Some(GroupError::InconsistentGroupProtocol)
    );
}

#[test]
fn r_group_4_offset_delete_refuses_topics_the_group_still_consumes() {
    let (mut c, _, _) = stable_group_of_two();
    let in_use = c.topics_in_use("g").unwrap();
    assert_eq!(
        in_use.into_iter().collect::<Vec<_>>(),
        vec!["t".to_string()]
    );
    assert_eq!(c.delete("g"), Err(GroupError::NonEmptyGroup));
    assert_eq!(c.topics_in_use("unknown").unwrap().len(), 0);
}

#[test]
fn r_group_1_describe_shows_instance_ids_and_hides_metadata_outside_stable() {
    let mut c = coordinator();
    c.join(join_req("", Some("inst"), &["t"]), 0, 1);
    let preparing = c.describe("g").unwrap();
    assert_eq!(
        preparing.members[0].group_instance_id.as_deref(),
        Some("inst")
    );
    assert!(preparing.members[0].metadata.is_empty());
    assert_eq!(preparing.protocol_name, "");
}

#[derive(Debug, Clone)]
enum Op {
    Join(usize, bool),
    Sync(usize),
    Heartbeat(usize),
    Commit(usize),
    Leave(usize),
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize, any::<bool>()).prop_map(|(m, v4)| Op::Join(m, v4)),
        (0..4usize).prop_map(Op::Sync),
        (0..4usize).prop_map(Op::Heartbeat),
        (0..4usize).prop_map(Op::Commit),
        (0..4usize).prop_map(Op::Leave),
        (1..20_000u64).prop_map(Op::Tick),
    ]
}

/// Clients that remember their member id and generation the way a consumer does.
#[derive(Default, Clone)]
struct Client {
    member_id: String,
    generation: i32,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// R-GROUP-4 as a property: over any sequence of requests and time, a commit is
    /// accepted only from a member of the group's current generation (or an admin
    /// commit to an empty group), every waiting request is answered at most once,
    /// the generation never goes back, and a Stable or CompletingRebalance group has
    /// a leader among its members.
    #[test]
    fn r_group_4_no_stale_commit_no_double_answer_generation_monotone(ops in proptest::collection::vec(op(), 1..80)) {
        let mut c = coordinator();
        let mut clients = vec![Client::default(); 4];
        let mut now = 0u64;
        let mut next_token: Token = 0;
        let mut answered = std::collections::BTreeSet::new();
        let mut waiting_join: std::collections::BTreeMap<Token, usize> = Default::default();
        let mut last_generation = 0;
        for op in ops {
            let replies = match op {
                Op::Join(i, v4) => {
                    next_token += 1;
                    waiting_join.insert(next_token, i);
                    let mut r = join_req(&clients[i].member_id, None, &["t"]);
                    r.require_known_member_id = v4;
                    c.join(r, now, next_token)
                }
                Op::Sync(i) => {
                    next_token += 1;
                    let me = clients[i].member_id.clone();
                    c.sync(sync_req(&me, clients[i].generation, &[(&me, "a")]), now, next_token)
                }
                Op::Heartbeat(i) => {
                    let _ = c.heartbeat("g", &clients[i].member_id, None, clients[i].generation, now);
                    vec![]
                }
                Op::Commit(i) => {
                    let (id, generation) = (clients[i].member_id.clone(), clients[i].generation);
                    let before = c.describe("g");
                    if commit(&mut c, &id, generation, now).is_ok() {
                        if let Some(g) = before {
                            let member = g.members.iter().any(|m| m.member_id == id);
                            prop_assert!(member || (generation < 0 && g.state == GroupState::Empty) || (id.is_empty() && g.state == GroupState::Empty));
                            prop_assert!(g.state != GroupState::CompletingRebalance);
                        }
                    }
                    vec![]
                }
                Op::Leave(i) => {
                    let leaving = LeavingMember { member_id: clients[i].member_id.clone(), group_instance_id: None };
                    c.leave("g", &[leaving], now).1
                }
                Op::Tick(dt) => { now += dt; c.tick(now) }
            };
            for reply in &replies {
                let token = match reply { Reply::Join(t, _) | Reply::Sync(t, _) => *t };
                prop_assert!(answered.insert(token), "token {} answered twice", token);
                if let Reply::Join(t, result) = reply {
                    if let Some(i) = waiting_join.remove(t) {
                        if result.error.is_none() || result.error == Some(GroupError::MemberIdRequired) {
                            clients[i].member_id = result.member_id.clone();
                        }
                        if result.error.is_none() {
                            clients[i].generation = result.generation_id;
                        }
                    }
                }
            }
            if let Some(g) = c.groups.get("g") {
                prop_assert!(g.generation >= last_generation);
                last_generation = g.generation;
                if matches!(g.state, GroupState::Stable | GroupState::CompletingRebalance) {
                    prop_assert!(g.leader.as_ref().is_some_and(|l| g.members.contains_key(l)));
                }
            }
        }
    }
}

#[test]
fn r_group_8_a_coordinator_that_loads_the_stored_record_resumes_the_generation_without_a_rebalance()
{
    let (mut c, leader, follower) = stable_group_of_two();
    let records = c.take_records();
    assert_eq!(records.len(), 1);
    let (group_id, record) = &records[0];
    assert_eq!((group_id.as_str(), record.generation), ("g", 1));
    assert!(
        c.take_records().is_empty(),
        "each change is handed out once"
    );

    // A restarted coordinator: empty memory, then the record from the metadata.
    let mut resumed = Coordinator::new(GroupConfig::default(), 8);
    resumed.load("g", record, 50_000);
    assert_eq!(resumed.heartbeat("g", &follower, None, 1, 50_001), Ok(()));
    assert_eq!(commit(&mut resumed, &leader, 1, 50_002), Ok(()));
    let replies = resumed.sync(sync_req(&follower, 1, &[]), 50_003, 1);
    assert_eq!(
        sync_of(&replies, 1).unwrap().assignment,
        Bytes::from_static(b"F")
    );
    let described = resumed.describe("g").unwrap();
    assert_eq!(described.state, GroupState::Stable);
    assert_eq!(described.members.len(), 2);
    // Members that never come back lapse as usual and the group rebalances.
    resumed.heartbeat("g", &leader, None, 1, 55_000).unwrap();
    resumed.tick(50_003 + SESSION as u64);
    assert_eq!(
        resumed.heartbeat("g", &leader, None, 1, 60_004),
        Err(GroupError::RebalanceInProgress)
    );
}

#[test]
fn r_group_8_an_older_record_does_not_replace_a_newer_generation_and_emptiness_is_recorded() {
    let (mut c, leader, follower) = stable_group_of_two();
    let (_, gen1) = c.take_records().remove(0);
    let leaving: Vec<LeavingMember> = [&leader, &follower]
        .iter()
        .map(|m| LeavingMember {
            member_id: m.to_string(),
            group_instance_id: None,
        })
        .collect();
    c.leave("g", &leaving, 10_000);
    let (_, empty) = c.take_records().remove(0);
    assert_eq!((empty.generation, empty.members.len()), (2, 0));
    c.load("g", &gen1, 10_001);
    assert_eq!(c.describe("g").unwrap().state, GroupState::Empty);
    let mut fresh = Coordinator::new(GroupConfig::default(), 9);
    fresh.load("g", &empty, 0);
    assert_eq!(fresh.describe("g").unwrap().state, GroupState::Empty);
    assert_eq!(commit(&mut fresh, "", -1, 1), Ok(()));
}

/// Simulator seed 300541 (full-disk storm): generation 18's record failed to store,
/// a member left, and the retry stored generation 18 with the remaining members and
/// no assignments; the restarted coordinator resumed it as Stable and partition 0
/// stayed unowned.
#[test]
fn r_group_8_a_group_mid_rebalance_hands_out_no_record_even_after_a_failed_store() {
    let (mut c, leader, follower) = stable_group_of_two();
    let (_, stable) = c.take_records().remove(0);
    assert_eq!(stable.generation, 1);
    c.record_unstored("g");
    let leaving = LeavingMember {
        member_id: follower.clone(),
        group_instance_id: None,
    };
    c.leave("g", &[leaving], 10_000);
    assert_eq!(
        c.describe("g").unwrap().state,
        GroupState::PreparingRebalance
    );
    assert!(
        c.take_records().is_empty(),
        "a record taken now would name generation 1 with its assignments gone"
    );
    let replies = c.join(join_req(&leader, None, &["t"]), 10_001, 5);
    assert_eq!(join_of(&replies, 5).unwrap().generation_id, 2);
    assert!(
        c.take_records().is_empty(),
        "CompletingRebalance has no record either"
    );
    c.sync(sync_req(&leader, 2, &[(&leader, "LF")]), 10_002, 6);
    let records = c.take_records();
    let record = &records[0].1;
    assert_eq!((record.generation, record.members.len()), (2, 1));
    assert_eq!(record.members[0].assignment, b"LF".to_vec());
}

#[test]
fn r_group_1_the_next_deadline_is_the_earliest_session_and_a_tick_then_expires_it() {
    let (mut c, leader, follower) = stable_group_of_two();
    // Both sessions were last moved on by their SyncGroup at STABLE.
    assert_eq!(c.next_deadline_ms(), Some(STABLE + SESSION as u64));
    c.heartbeat("g", &leader, None, 1, 7_000).unwrap();
    assert_eq!(c.next_deadline_ms(), Some(STABLE + SESSION as u64));
    c.heartbeat("g", &follower, None, 1, 7_500).unwrap();
    assert_eq!(c.next_deadline_ms(), Some(7_000 + SESSION as u64));
    // One millisecond early nothing lapses; at the deadline the leader does.
    c.tick(7_000 + SESSION as u64 - 1);
    assert_eq!(c.describe("g").unwrap().members.len(), 2);
    c.tick(7_000 + SESSION as u64);
    let group = c.describe("g").unwrap();
    assert_eq!(group.members.len(), 1);
    assert_eq!(group.state, GroupState::PreparingRebalance);
    // The rebalance's join deadline now counts too; an empty coordinator has none.
    assert!(c.next_deadline_ms().is_some());
    assert_eq!(coordinator().next_deadline_ms(), None);
}

/// Both protocols' coordinators of one start (`salt`).
fn both(salt: u64) -> GroupCoordinators {
    use crate::consumer_groups::ConsumerGroupConfig;
    GroupCoordinators::new(GroupConfig::default(), ConsumerGroupConfig::default(), salt)
}

/// R-GROUP-3: a broker that no longer coordinates a group forgets it; a JoinGroup
/// waiting in it is told NOT_COORDINATOR and finds the coordinator again.
#[test]
fn r_group_3_a_deposed_coordinator_answers_its_waiting_joins_not_coordinator() {
    let mut groups = both(7);
    let waiting = groups.join(join_req("", None, &["t"]), 0, 1);
    assert!(waiting.is_empty(), "the initial delay holds the join");
    let replies = groups.unload_uncoordinated(|_| false);
    let refused = JoinResult::error(GroupError::NotCoordinator, "");
    assert!(matches!(&replies[..], [Reply::Join(1, r)] if r.error == refused.error));
    assert!(groups.classic.describe("g").is_none());
    assert!(groups.unload_uncoordinated(|_| true).is_empty());
}

/// R-GROUP-3 with KIP-848 groups: a deposed coordinator's timers lapse a member it
/// can no longer store the removal of, so it holds the group at the same epoch as
/// the record its successor wrote with other members. Kept, that fork would win the
/// next load (same epoch) and the successor's members would be unknown; forgotten
/// when deposed, the group resumes from the record.
#[test]
fn r_group_3_a_coordinator_that_returns_resumes_from_the_record_not_its_fork() {
    use crate::consumer_groups::{Heartbeat, TopicsView};
    let topics: TopicsView = [("t".to_string(), ([1u8; 16], 2))].into();
    let join = Heartbeat {
        group_id: "g".into(),
        member_epoch: 0,
        rebalance_timeout_ms: 1_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        ..Heartbeat::default()
    };
    let mut deposed = both(7);
    deposed
        .consumer_heartbeat(join.clone(), &topics, 0)
        .unwrap();
    let first = deposed.take_records().consumer.remove(0).1;
    deposed.tick(1_000_000);
    let refused = deposed.take_records();
    deposed.records_unstored(&refused);
    let mut successor = both(8);
    successor.load("g", None, Some(&first), 0);
    successor.consumer_heartbeat(join, &topics, 10).unwrap();
    let second = successor.take_records().consumer.remove(0).1;
    assert_eq!(second.group_epoch, refused.consumer[0].1.group_epoch);
    assert_eq!(second.members.len(), 2);

    deposed.load("g", None, Some(&second), 1_000_001);
    let fork = deposed.consumer.describe("g").map(|g| g.members.len());
    assert_eq!(fork, Some(0), "kept, the fork wins the load");

    deposed.unload_uncoordinated(|_| false);
    deposed.load("g", None, Some(&second), 1_000_001);
    let resumed = deposed.consumer.describe("g").map(|g| g.members.len());
    assert_eq!(resumed, Some(2));
}
