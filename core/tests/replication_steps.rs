//! R-REPL-2: the two ISR rules the replication model found missing, pinned on the real
//! code (the conformance replay, C-5, drives them along model paths too).

use std::path::PathBuf;
use std::sync::Arc;

use chronik_core::disk::{Disk, MemDisk};
use chronik_core::log::batch::{build_batch, Record};
use chronik_core::log::{LogConfig, ManualCommitter, PartitionLog};
use chronik_core::metadata::{
    ApplyOutcome, CommandEnvelope, CopyRef, MetadataCommand, MetadataState,
};
use chronik_core::replication::{
    truncate_for_leader, Fetched, FollowerFetch, LocalView, NoEvents, Partitions, ReplicationError,
};

use chronik_core::errors::{
    FENCED_LEADER_EPOCH, INVALID_REPLICA_ASSIGNMENT, INVALID_UPDATE_VERSION, KAFKA_STORAGE_ERROR,
    NOT_ENOUGH_REPLICAS, OFFSET_OUT_OF_RANGE, POLICY_VIOLATION,
};

/// Three registered brokers and topic "t" with replicas [1, 2, 3] (broker 1 leads).
fn three_brokers_one_topic() -> (MetadataState, u64) {
    three_brokers_one_topic_with(&[])
}

/// Broker `broker_id`'s registration by start `incarnation`.
fn register_broker(broker_id: i32, incarnation: u64, acks_before_fsync: bool) -> MetadataCommand {
    MetadataCommand::RegisterBroker {
        broker_id,
        host: "127.0.0.1".into(),
        port: 9091 + broker_id,
        rack: None,
        incarnation,
        listeners: Vec::new(),
        acks_before_fsync,
        short_copies: Vec::new(),
    }
}

/// Topic `name` created with these replicas, no configs of its own.
fn create(name: &str, partitions: Vec<Vec<i32>>) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.into(),
        topic_id: format!("{name}-id"),
        partitions,
        configs: Default::default(),
    }
}

fn three_brokers_one_topic_with(configs: &[(&str, &str)]) -> (MetadataState, u64) {
    let mut state = MetadataState::default();
    let mut index = 0;
    let mut commands: Vec<MetadataCommand> =
        (1..=3).map(|id| register_broker(id, 1, false)).collect();
    commands.push(MetadataCommand::CreateTopic {
        name: "t".into(),
        topic_id: "t-id".into(),
        partitions: vec![vec![1, 2, 3]],
        configs: configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    });
    for command in commands {
        index += 1;
        assert_eq!(
            state.apply(index, &CommandEnvelope::new(index, command)),
            ApplyOutcome::Done
        );
    }
    (state, index)
}

/// Applies `command` at the next Raft index.
fn apply_next(
    state: &mut MetadataState,
    index: &mut u64,
    command: MetadataCommand,
) -> ApplyOutcome {
    *index += 1;
    state.apply(*index, &CommandEnvelope::new(*index, command))
}

/// The partitions broker `me` hosts for `state` on a fresh simulated disk, and its
/// log of t-0.
fn hosted(state: &MetadataState, me: i32) -> (Partitions, Arc<PartitionLog>) {
    let disk: Arc<dyn Disk> = Arc::new(MemDisk::new());
    let partitions = Partitions::new(
        disk,
        PathBuf::from("/data"),
        LogConfig::default(),
        Arc::new(NoEvents),
        ManualCommitter::new().queue(),
    );
    partitions.reconcile(state, me).expect("the log opens");
    let log = partitions.get("t", 0).expect("the broker hosts t-0");
    (partitions, log)
}

/// Broker 1's view (its first start) of `partitions` under `state`.
/// Broker 1's partitions, opened (and recovered) from `disk` as `state` assigns them.
fn broker_one_on(disk: &MemDisk, state: &MetadataState) -> Partitions {
    let partitions = Partitions::new(
        Arc::new(disk.clone()),
        PathBuf::from("/data"),
        LogConfig::default(),
        Arc::new(NoEvents),
        ManualCommitter::new().queue(),
    );
    partitions.reconcile(state, 1).expect("the log opens");
    partitions
}

fn broker_one<'a>(state: &'a MetadataState, partitions: &'a Partitions) -> LocalView<'a> {
    LocalView {
        state,
        partitions,
        me: 1,
        incarnation: 1,
    }
}

/// A one-record batch holding `value`.
fn record(value: u8) -> Vec<u8> {
    build_batch(
        &[Record {
            key: None,
            value: Some(vec![value]),
            timestamp_delta: 0,
        }],
        0,
    )
}

fn alter_isr(leader_epoch: i32, isr: Vec<i32>, partition_epoch: u64) -> MetadataCommand {
    MetadataCommand::AlterIsr {
        topic: "t".into(),
        partition: 0,
        leader_epoch,
        isr,
        partition_epoch: Some(partition_epoch),
    }
}

/// Two ISR changes computed from the same partition epoch: only the first applies, so
/// the leader knows which of its proposals can still be applied (the replication
/// model's `isr-last-proposal-only` lost acknowledged writes without this).
#[test]
fn r_repl_2_alter_isr_is_compare_and_set_on_the_partition_epoch() {
    let (mut state, mut index) = three_brokers_one_topic();
    let p = |s: &MetadataState| {
        let p = s.partition("t", 0).cloned().expect("topic t exists");
        (p.isr, p.partition_epoch)
    };
    assert_eq!(p(&state), (vec![1, 2, 3], 0));

    assert_eq!(
        apply_next(&mut state, &mut index, alter_isr(0, vec![1, 2], 0)),
        ApplyOutcome::Done
    );
    assert_eq!(p(&state), (vec![1, 2], 1));
    let stale = apply_next(&mut state, &mut index, alter_isr(0, vec![1, 3], 0));
    assert!(
        matches!(
            stale,
            ApplyOutcome::Rejected {
                code: INVALID_UPDATE_VERSION,
                ..
            }
        ),
        "{stale:?}"
    );
    assert_eq!(p(&state), (vec![1, 2], 1), "the stale change left no trace");

    let old_leader = apply_next(&mut state, &mut index, alter_isr(-1, vec![1, 2, 3], 1));
    assert!(
        matches!(
            old_leader,
            ApplyOutcome::Rejected {
                code: FENCED_LEADER_EPOCH,
                ..
            }
        ),
        "{old_leader:?}"
    );

    // Recomputed from the current partition epoch, it applies.
    assert_eq!(
        apply_next(&mut state, &mut index, alter_isr(0, vec![1, 2, 3], 1)),
        ApplyOutcome::Done
    );
    assert_eq!(p(&state), (vec![1, 2, 3], 2));
    // A leader change moves the partition epoch on too.
    assert_eq!(
        apply_next(
            &mut state,
            &mut index,
            MetadataCommand::FenceBroker { broker_id: 1 }
        ),
        ApplyOutcome::Done
    );
    assert_eq!(p(&state), (vec![2, 3], 3));
}

/// A follower joins the ISR only once it holds everything its leader had when the
/// leader's epoch began, even when the leader's high watermark lags that (restored
/// from a stale checkpoint): otherwise it could become leader without acknowledged
/// records (the replication model's `expand-below-epoch-start`).
#[test]
fn r_repl_2_a_follower_joins_the_isr_only_with_what_its_leader_had_at_its_epoch_start() {
    let (mut state, _) = three_brokers_one_topic();
    let (partitions, log) = hosted(&state, 1);
    // Two records from epoch 0; then this broker leads epoch 1 with ISR [1, 2] and
    // appends one more. Its high watermark is still 0.
    log.append(&record(0), 0, 0).expect("append");
    log.append(&record(1), 0, 0).expect("append");
    {
        let p = &mut state.topics.get_mut("t").expect("topic t").partitions[0];
        p.leader_epoch = 1;
        p.isr = vec![1, 2];
    }
    log.append(&record(2), 0, 1).expect("append");
    assert_eq!(log.epoch_start_offset(1), 2);
    assert_eq!(log.high_watermark(), 0);
    let info = state.partition("t", 0).cloned().expect("topic t");
    let key = ("t".to_string(), 0);
    let wanted = |follower_end: u64| {
        let fetch = FollowerFetch {
            follower: 3,
            fetch_offset: follower_end,
            log_start: 0,
        };
        partitions.on_follower_fetch(&key, &info, fetch, 3, 100);
        partitions.wanted_isr(&key, &log, &info, &[1, 2, 3], 1, 100, 10_000)
    };
    assert_eq!(
        wanted(1),
        None,
        "past the high watermark, short of the epoch start"
    );
    assert_eq!(wanted(2), Some(vec![1, 2, 3]), "at the epoch start");
}

/// A late OffsetForLeaderEpoch answer cuts nothing once it is stale (R-REPL-3): here
/// broker 2 followed broker 1 in epoch 0, then led epoch 1 itself and appended (and
/// could have acknowledged) records of its own when the answer about epoch 0
/// arrives. Found by the simulator (pause storm, seed 185): the cut took away
/// acknowledged records. Refused three times over: the metadata no longer names
/// another leader in that epoch, the log holds a batch of a later epoch, and the log
/// already follows a later epoch.
#[test]
fn r_repl_3_a_stale_offset_for_leader_epoch_answer_cuts_nothing() {
    let (mut state, _) = three_brokers_one_topic();
    let (partitions, log) = hosted(&state, 2);
    let key = ("t".to_string(), 0);
    log.append(&record(0), 0, 0).expect("append");
    // Broker 2 leads epoch 1 and appends two records in it.
    {
        let p = &mut state.topics.get_mut("t").expect("topic t").partitions[0];
        p.leader = Some(2);
        p.leader_epoch = 1;
    }
    log.append(&record(1), 0, 1).expect("append");
    log.append(&record(2), 0, 1).expect("append");
    let local = LocalView {
        state: &state,
        partitions: &partitions,
        me: 2,
        incarnation: 1,
    };
    let stale = local.truncate_for_leader(&key, 0, &log, Some(1));
    assert_eq!(ok(stale), Ok(None), "it leads the partition now");
    assert_eq!(log.log_end_offset(), 3);
    let below_the_view = truncate_for_leader(&partitions, &key, 0, &log, Some(1));
    assert_eq!(ok(below_the_view), Ok(None), "the log holds epoch 1");
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.truncate_for_epoch(1, 0).ok(), Some(None));
    // Following epoch 2 now: an answer about epoch 1 is stale as well.
    assert_eq!(
        ok(truncate_for_leader(&partitions, &key, 2, &log, None)),
        Ok(None)
    );
    assert_eq!(
        ok(truncate_for_leader(&partitions, &key, 1, &log, Some(1))),
        Ok(None)
    );
    assert_eq!(partitions.follower_epoch(&key), Some(2));
    assert_eq!(log.log_end_offset(), 3);
}

/// A request handled under a view taken before the broker learnt that it was
/// deposed, and truncated its log for its successor's epoch, neither serves nor
/// appends as leader (R-REPL-3): the log now follows the successor. Found by trace
/// validation of real brokers (C-9): a deposed leader's Fetch handler served as
/// leader after the truncation.
#[test]
fn r_repl_3_a_view_older_than_the_truncation_leads_nothing() {
    let (state, _) = three_brokers_one_topic();
    let (partitions, log) = hosted(&state, 1);
    let key = ("t".to_string(), 0);
    log.append(&record(0), 0, 0).expect("append");
    let stale = broker_one(&state, &partitions);
    assert!(
        stale.led_log("t", 0).is_ok(),
        "the view names broker 1 leader of epoch 0"
    );
    // Broker 1 learnt of epoch 1 (broker 2 leading) and truncated for it.
    let cut = partitions.truncate_for_epoch(&key, 1, || ());
    assert_eq!(cut, Some(()));
    assert_eq!(
        stale.led_log("t", 0).err(),
        Some(chronik_core::errors::NOT_LEADER_OR_FOLLOWER),
        "a view from before the truncation leads nothing"
    );
    // A produce admitted under that view before the truncation appends nothing
    // after it; a later epoch's leader appends.
    assert_eq!(partitions.append_as_leader(&key, 0, || ()), None);
    assert_eq!(partitions.append_as_leader(&key, 1, || ()), None);
    assert_eq!(partitions.append_as_leader(&key, 2, || ()), Some(()));
}

/// A second OffsetForLeaderEpoch answer for the epoch a follower already truncated
/// for cuts nothing (R-REPL-3): the follower asked twice (its first question timed
/// out), acted on one answer, fetched its leader's records of that epoch, and then
/// the other answer came, naming where the follower's previous epoch ends. Cutting
/// there took the leader's records away from an ISR member, below the high
/// watermark: acknowledged records one election from loss. Found by trace
/// validation (C-9, `chronik-sim --faults starved --seed 15 --validate-replication`),
/// which the end-of-run checks missed because the follower fetched them again.
#[test]
fn r_repl_3_a_second_answer_for_the_followed_epoch_cuts_nothing() {
    let (mut state, _) = three_brokers_one_topic();
    let (partitions, log) = hosted(&state, 3);
    let key = ("t".to_string(), 0);
    for value in 0..4 {
        log.append(&record(value), 0, 0).expect("append");
    }
    {
        let p = &mut state.topics.get_mut("t").expect("topic t").partitions[0];
        p.leader = Some(2);
        p.leader_epoch = 1;
    }
    // Epoch 0 ends at 4 on the new leader: nothing to cut, and the log follows 1.
    assert_eq!(
        ok(truncate_for_leader(&partitions, &key, 1, &log, Some(4))),
        Ok(None)
    );
    assert_eq!(partitions.follower_epoch(&key), Some(1));
    // Records 4 and 5 of epoch 1, fetched from the leader.
    log.append(&record(4), 0, 1).expect("append");
    log.append(&record(5), 0, 1).expect("append");
    let local = LocalView {
        state: &state,
        partitions: &partitions,
        me: 3,
        incarnation: 1,
    };
    let late_copy = local.truncate_for_leader(&key, 1, &log, Some(4));
    assert_eq!(ok(late_copy), Ok(None));
    assert_eq!(
        log.log_end_offset(),
        6,
        "the leader's records of epoch 1 stay"
    );
}

/// A topic deleted and created again under the same name starts its leader epochs
/// at 0 again: the follower must not carry the old partition's followed epoch over,
/// or every truncation for the new one would look stale and it would never append
/// (found by review of the stale-answer guard).
#[test]
fn r_repl_3_a_recreated_partition_is_followed_afresh() {
    let (mut state, _) = three_brokers_one_topic();
    let (partitions, log) = hosted(&state, 2);
    let key = ("t".to_string(), 0);
    assert_eq!(
        ok(truncate_for_leader(&partitions, &key, 3, &log, None)),
        Ok(None)
    );
    assert_eq!(partitions.follower_epoch(&key), Some(3));
    let topic = state.topics.remove("t").expect("topic t");
    partitions.reconcile(&state, 2).expect("the log is removed");
    state.topics.insert("t".into(), topic);
    partitions
        .reconcile(&state, 2)
        .expect("the log opens again");
    assert_eq!(partitions.follower_epoch(&key), None);
    let log = partitions.get("t", 0).expect("broker 2 hosts t-0 again");
    assert_eq!(
        ok(truncate_for_leader(&partitions, &key, 0, &log, None)),
        Ok(None)
    );
    assert_eq!(partitions.follower_epoch(&key), Some(0));
}

/// R-REPL-4: a leader whose copy lost records to damage takes no produce while other
/// ISR members hold them (it hands leadership to one): its idempotent producer state
/// lacks the damaged batches, so a retry of one would be appended again beside the
/// original (the simulator's damaged-copies storm, seed 323: a duplicate at offsets
/// 29 and 31). A sole copy goes on taking writes: nobody else holds those batches.
#[test]
fn r_repl_4_a_damaged_leader_takes_no_writes_while_others_hold_its_records() {
    let (mut state, index) = three_brokers_one_topic();
    let disk = MemDisk::new();
    let open = |state: &MetadataState| broker_one_on(&disk, state);
    let partitions = open(&state);
    let local = broker_one(&state, &partitions);
    assert!(
        local.admit_produce("t", 0, -1).is_ok(),
        "a healthy leader takes writes"
    );
    drop(partitions);
    three_records_then_a_bad_byte(&disk, &state, |_| 30);
    let partitions = open(&state);
    let local = broker_one(&state, &partitions);
    let log = partitions.get("t", 0).expect("t-0");
    assert_eq!(
        log.first_lost_offset(),
        Some(0),
        "the first batch is damaged"
    );
    for acks in [-1, 0, 1] {
        assert_eq!(
            local.admit_produce("t", 0, acks).map(|_| ()),
            Err(KAFKA_STORAGE_ERROR)
        );
    }
    drop((log, partitions));
    leave_broker_one_alone_in_the_isr(&mut state, index);
    let partitions = open(&state);
    let local = broker_one(&state, &partitions);
    assert!(
        local.admit_produce("t", 0, 1).is_ok(),
        "the sole copy takes writes"
    );
}

/// R-REPL-4's gap, closed: a leader whose recovery cut a bad last frame (it cannot
/// tell one from a torn write) may have lost an acknowledged record that its
/// followers hold. While another ISR member does, it takes no write and answers
/// OffsetForLeaderEpoch KAFKA_STORAGE_ERROR (its answer would make them cut the
/// record), and asks for its repair. Alone in the ISR it answers and takes writes,
/// and its first write drops the mark.
#[test]
fn r_repl_4_a_leader_whose_recovery_cut_its_tail_answers_no_epoch_query_while_others_hold_it() {
    let (mut state, index) = three_brokers_one_topic();
    let disk = MemDisk::new();
    let open = |state: &MetadataState| broker_one_on(&disk, state);
    three_records_then_a_bad_byte(&disk, &state, |len| len - 1);
    let partitions = open(&state);
    let local = broker_one(&state, &partitions);
    let log = partitions.get("t", 0).expect("t-0");
    assert_eq!((log.log_end_offset(), log.lost_tail()), (2, Some(2)));
    assert_eq!(log.first_lost_offset(), Some(2));
    assert_eq!(local.epoch_end("t", 0, 0, 0), Err(KAFKA_STORAGE_ERROR));
    assert_eq!(
        local.admit_produce("t", 0, 1).map(|_| ()),
        Err(KAFKA_STORAGE_ERROR)
    );
    drop((log, partitions));
    leave_broker_one_alone_in_the_isr(&mut state, index);
    let partitions = open(&state);
    let local = broker_one(&state, &partitions);
    assert_eq!(local.epoch_end("t", 0, 0, 0), Ok((0, 2)));
    let (log, _) = local
        .admit_produce("t", 0, 1)
        .expect("the sole copy takes writes");
    log.append(&record(9), 0, 0).expect("appended");
    assert_eq!(log.lost_tail(), None);
}

/// R-REPL-4: a leader whose copy lost records (here a tail its recovery cut) drops
/// no follower from the ISR while another member holds them, however long they lag:
/// they lag because it refuses them, and dropping them would leave it the sole copy,
/// free to write over the records it lacks. A healthy leader drops them.
#[test]
fn r_repl_4_a_leader_short_of_records_drops_no_lagging_follower() {
    let (state, _) = three_brokers_one_topic();
    let key = ("t".to_string(), 0);
    let info = state.partition("t", 0).expect("t-0");
    let live = state.live_brokers();
    let lagging_for_a_minute = |partitions: &Partitions| {
        let log = partitions.get("t", 0).expect("t-0");
        assert_eq!(
            partitions.wanted_isr(&key, &log, info, &live, 1, 0, 30_000),
            None
        );
        partitions.wanted_isr(&key, &log, info, &live, 1, 60_000, 30_000)
    };
    let healthy = MemDisk::new();
    assert_eq!(
        lagging_for_a_minute(&broker_one_on(&healthy, &state)),
        Some(vec![1])
    );
    let short = MemDisk::new();
    three_records_then_a_bad_byte(&short, &state, |len| len - 1);
    let partitions = broker_one_on(&short, &state);
    assert_eq!(partitions.get("t", 0).and_then(|l| l.lost_tail()), Some(2));
    assert_eq!(lagging_for_a_minute(&partitions), None);
}

/// Broker one, leading t-0 on `disk`, writes three records and stops; while it is
/// down, byte `at(length)` of the segment goes bad.
fn three_records_then_a_bad_byte(disk: &MemDisk, state: &MetadataState, at: fn(usize) -> usize) {
    let partitions = broker_one_on(disk, state);
    let log = partitions.get("t", 0).expect("t-0");
    for value in 0..3 {
        log.append(&record(value), 0, 0).expect("appended");
    }
    drop((log, partitions));
    let segment = PathBuf::from("/data/t-0/00000000000000000000.log");
    let file = disk
        .open_file(&segment, chronik_core::disk::OpenMode::Existing)
        .expect("segment");
    let byte = at(file.len().expect("length") as usize);
    disk.corrupt(&segment, byte, &[0xff]).expect("damaged");
}

/// The controller shrinks t-0's ISR to its leader, broker one.
fn leave_broker_one_alone_in_the_isr(state: &mut MetadataState, index: u64) {
    let sole = CommandEnvelope::new(index + 1, alter_isr(0, vec![1], 0));
    assert_eq!(state.apply(index + 1, &sole), ApplyOutcome::Done);
}

/// R-REPL-4 with R-LOG-8: damage in records below the log start lies in records a
/// DeleteRecords already removed, so nothing the copy should hold is lost: it needs no
/// repair, keeps leading and takes writes.
#[test]
fn r_repl_4_damage_below_the_log_start_needs_no_repair() {
    let (state, _) = three_brokers_one_topic();
    let disk = MemDisk::new();
    let open = |state: &MetadataState| broker_one_on(&disk, state);
    let partitions = open(&state);
    let log = partitions.get("t", 0).expect("t-0");
    for value in 0..3 {
        log.append(&record(value), 0, 0).expect("appended");
    }
    log.set_high_watermark(3);
    assert_eq!(log.delete_records_before(1).expect("deleted"), 1);
    drop((log, partitions));
    let segment = PathBuf::from("/data/t-0/00000000000000000000.log");
    disk.corrupt(&segment, 30, &[0xff]).expect("damaged");
    let partitions = open(&state);
    let log = partitions.get("t", 0).expect("t-0");
    assert_eq!(
        log.log_start_offset(),
        1,
        "the deletion survives the restart"
    );
    assert!(
        !log.damaged_ranges().is_empty(),
        "recovery found the damage in the deleted batch"
    );
    assert_eq!(log.first_lost_offset(), None, "nothing kept was lost");
    let local = broker_one(&state, &partitions);
    assert!(
        local.admit_produce("t", 0, -1).is_ok(),
        "an undamaged leader takes writes"
    );
}

/// A follower whose log ends below its leader's log start (the leader deleted the
/// records in between while it was away) starts afresh there, as Kafka's follower
/// does; before, every fetch was refused OFFSET_OUT_OF_RANGE and it never caught up.
/// Then the leader's answer from a DeleteRecords offset inside a batch: the empty log
/// starts again at that batch's base, appends it, and takes the leader's log start.
#[test]
fn r_wire_5_a_follower_behind_its_leaders_log_start_starts_afresh_there() {
    let (state, _) = three_brokers_one_topic();
    let (partitions, log) = hosted(&state, 2);
    let key = ("t".to_string(), 0);
    log.append(&record(0), 0, 0).expect("append");
    assert_eq!(
        ok(truncate_for_leader(&partitions, &key, 0, &log, None)),
        Ok(None)
    );
    let local = LocalView {
        state: &state,
        partitions: &partitions,
        me: 2,
        incarnation: 1,
    };
    let other = local.fetch_refused(&key, 0, &log, (FENCED_LEADER_EPOCH, 10));
    assert_eq!(ok(other), Ok(false), "only OFFSET_OUT_OF_RANGE");
    assert_eq!(
        ok(local.fetch_refused(&key, 0, &log, (OFFSET_OUT_OF_RANGE, 10))),
        Ok(true)
    );
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    assert_eq!(
        ok(local.fetch_refused(&key, 0, &log, (OFFSET_OUT_OF_RANGE, 10))),
        Ok(false),
        "not behind any more"
    );

    // The leader deleted below 11, inside its batch 9..=11.
    let mut batch = chronik_core::log::batch::build_batch(
        &[0u8, 1, 2].map(|v| Record {
            key: None,
            value: Some(vec![v]),
            timestamp_delta: 0,
        }),
        0,
    );
    chronik_core::log::batch::set_base_offset(&mut batch, 9);
    chronik_core::log::batch::set_partition_leader_epoch(&mut batch, 0);
    log.truncate_to(9).expect("cut below the start");
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (10, 9),
        "a log start never moves back"
    );
    log.start_afresh_at(10)
        .expect("an empty log starts anywhere");
    let fetched = Fetched {
        records: Some(batch.into()),
        high_watermark: 12,
        log_start_offset: 11,
    };
    assert_eq!(
        ok(local.apply_fetched(&key, 0, &log, &fetched, 0)),
        Ok(true)
    );
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (11, 12),
        "the batch appended whole, the leader's start taken"
    );
    let below_start = log.read(10, 1 << 20, 12);
    assert!(below_start.is_err(), "offset 10 stays deleted");
}

/// DeleteRecords on a compacted topic whose policy lacks `delete` is refused with
/// POLICY_VIOLATION and moves nothing, as Kafka's `Partition.deleteRecordsOnLeader`.
#[test]
fn r_wire_10_delete_records_on_a_compact_only_topic_is_a_policy_violation() {
    let (mut state, _) = three_brokers_one_topic();
    let (partitions, log) = hosted(&state, 1);
    for value in 0..3 {
        log.append(&record(value), 0, 0).expect("append");
    }
    log.set_high_watermark(3);
    let set_policy = |state: &mut MetadataState, policy: &str| {
        let topic = state.topics.get_mut("t").expect("topic t");
        topic.configs.insert("cleanup.policy".into(), policy.into());
    };
    set_policy(&mut state, "compact");
    let refused = broker_one(&state, &partitions).delete_records("t", 0, 2);
    assert_eq!(refused.err(), Some(POLICY_VIOLATION));
    assert_eq!(log.log_start_offset(), 0);
    set_policy(&mut state, "compact, delete");
    let started = broker_one(&state, &partitions).delete_records("t", 0, 2);
    assert_eq!(started.map(|d| d.target).ok(), Some(2));
    assert_eq!(log.log_start_offset(), 2);
}

/// A replication step's result with its error as text, to compare in assertions.
fn ok<T>(result: Result<T, ReplicationError>) -> Result<T, String> {
    result.map_err(|e| e.to_string())
}

/// R-REPL-5: a leader that acknowledges before fsync (the interval policy) and
/// restarts may have lost records it acknowledged, so its new incarnation hands its
/// leadership to another live ISR member and leaves the ISR; a follower synced what
/// it reported and keeps its place; a leader that syncs every acknowledged batch
/// keeps leading in a new epoch; a sole ISR member stays.
#[test]
fn r_repl_5_an_unclean_restart_hands_over_what_it_led_and_leaves_the_isr() {
    let register = |incarnation: u64, acks_before_fsync: bool| {
        register_broker(1, incarnation, acks_before_fsync)
    };
    let partition = |state: &MetadataState| {
        let p = state.partition("t", 0).cloned();
        p.map(|p| (p.leader, p.leader_epoch, p.isr))
    };

    let (mut syncing, mut index) = three_brokers_one_topic();
    apply_next(&mut syncing, &mut index, register(2, false));
    assert_eq!(partition(&syncing), Some((Some(1), 1, vec![1, 2, 3])));

    let (mut interval, mut index) = three_brokers_one_topic();
    assert_eq!(
        apply_next(&mut interval, &mut index, register(2, true)),
        ApplyOutcome::Done
    );
    assert_eq!(partition(&interval), Some((Some(2), 1, vec![2, 3])));
    // The same incarnation again (a retried registration) changes nothing more.
    apply_next(&mut interval, &mut index, register(2, true));
    assert_eq!(partition(&interval), Some((Some(2), 1, vec![2, 3])));
    // A restarted follower keeps its place.
    apply_next(&mut interval, &mut index, register_broker(3, 2, true));
    assert_eq!(partition(&interval), Some((Some(2), 1, vec![2, 3])));

    // Alone in the ISR (the others fenced), its copy is the best there is: it stays.
    let (mut alone, mut index) = three_brokers_one_topic();
    for broker_id in [2, 3] {
        apply_next(
            &mut alone,
            &mut index,
            MetadataCommand::FenceBroker { broker_id },
        );
    }
    assert_eq!(partition(&alone), Some((Some(1), 0, vec![1])));
    apply_next(&mut alone, &mut index, register(2, true));
    assert_eq!(partition(&alone), Some((Some(1), 1, vec![1])));
}

/// R-REPL-6 through the state machine: with min.insync.replicas 2, the follower fenced
/// at the minimum is not eligible, the one fenced below it is; the lone leader's
/// unclean restart leaves the partition offline for it, and its return makes it lead.
#[test]
fn r_repl_6_an_eligible_follower_leads_after_the_lone_leader_restarts_uncleanly() {
    let (mut state, mut index) = three_brokers_one_topic_with(&[("min.insync.replicas", "2")]);
    let register = |broker_id: i32, incarnation: u64| register_broker(broker_id, incarnation, true);
    let partition = |state: &MetadataState| {
        let p = state.partition("t", 0).cloned().expect("t-0");
        (p.leader, p.isr, p.elr)
    };
    apply_next(
        &mut state,
        &mut index,
        MetadataCommand::FenceBroker { broker_id: 2 },
    );
    assert_eq!(partition(&state), (Some(1), vec![1, 3], vec![]));
    apply_next(
        &mut state,
        &mut index,
        MetadataCommand::FenceBroker { broker_id: 3 },
    );
    assert_eq!(partition(&state), (Some(1), vec![1], vec![3]));

    apply_next(&mut state, &mut index, register(1, 2));
    assert_eq!(
        partition(&state),
        (None, vec![], vec![3]),
        "offline: the restarted leader may have lost what 3 holds"
    );
    apply_next(&mut state, &mut index, register(2, 2));
    assert_eq!(
        partition(&state),
        (None, vec![], vec![3]),
        "2 is not eligible"
    );
    apply_next(&mut state, &mut index, register(3, 2));
    assert_eq!(partition(&state), (Some(3), vec![3], vec![]));
}

/// R-REPL-6: a fenced leader with no live ISR member hands over to a live eligible
/// replica and stays eligible itself, under either fsync policy: a fence cuts
/// nothing. Under the interval policy (its registration says it acknowledges before
/// fsync) it is unverified, since the lapse may have been a crash, and its next start
/// takes it out of the eligible set; one that syncs first keeps its place. Without
/// the minimum configured (1) nobody is ever eligible.
#[test]
fn r_repl_6_a_fenced_leader_hands_over_to_a_live_eligible_replica() {
    let cases = [
        (
            "2",
            false,
            (Some(2), vec![2], vec![1, 3], vec![]),
            vec![1, 3],
        ),
        ("2", true, (Some(2), vec![2], vec![1, 3], vec![1]), vec![3]),
        ("1", false, (None, vec![1], vec![], vec![]), vec![]),
    ];
    for (min_isr, interval_policy, fenced, restarted) in cases {
        let (mut state, mut index) =
            three_brokers_one_topic_with(&[("min.insync.replicas", min_isr)]);
        let policy = register_broker(1, 1, interval_policy);
        assert_eq!(
            apply_next(&mut state, &mut index, policy),
            ApplyOutcome::Done
        );
        assert_eq!(
            apply_next(&mut state, &mut index, alter_isr(0, vec![1], 0)),
            ApplyOutcome::Done
        );
        apply_next(
            &mut state,
            &mut index,
            MetadataCommand::FenceBroker { broker_id: 1 },
        );
        let p = state.partition("t", 0).cloned().expect("t-0");
        let case = format!("min.insync.replicas {min_isr}, interval policy {interval_policy}");
        assert_eq!(
            (p.leader, p.isr, p.elr, p.unverified),
            fenced,
            "fenced: {case}"
        );
        let next_start = register_broker(1, 2, interval_policy);
        assert_eq!(
            apply_next(&mut state, &mut index, next_start),
            ApplyOutcome::Done
        );
        let p = state.partition("t", 0).cloned().expect("t-0");
        assert_eq!(
            (p.elr, p.unverified),
            (restarted, vec![]),
            "restarted: {case}"
        );
    }
}

/// R-REPL-6 under the interval policy, the simulator's `--faults interval` seed 54: a
/// leader that acknowledged before syncing crashes and is fenced (eligible,
/// unverified); its successor, alone in the ISR, restarts after a crash too. That
/// restart keeps the lead: the fenced leader's copy is no better than its own, and
/// waiting for it elected it without what its crash cut.
#[test]
fn r_repl_6_an_unclean_restart_keeps_the_lead_over_an_unverified_replica() {
    let (mut state, mut index) = three_brokers_one_topic_with(&[("min.insync.replicas", "2")]);
    for broker_id in [1, 2] {
        apply_next(&mut state, &mut index, register_broker(broker_id, 1, true));
    }
    apply_next(&mut state, &mut index, alter_isr(0, vec![1, 2], 0));
    for broker_id in [3, 1] {
        apply_next(
            &mut state,
            &mut index,
            MetadataCommand::FenceBroker { broker_id },
        );
    }
    let partition = |state: &MetadataState| {
        let p = state.partition("t", 0).cloned().expect("t-0");
        (p.leader, p.isr, p.elr, p.unverified)
    };
    assert_eq!(partition(&state), (Some(2), vec![2], vec![1], vec![1]));
    apply_next(&mut state, &mut index, register_broker(2, 2, true));
    assert_eq!(partition(&state).0, Some(2), "2 keeps the lead");
    apply_next(&mut state, &mut index, register_broker(1, 2, true));
    assert_eq!(
        partition(&state),
        (Some(2), vec![2], vec![], vec![]),
        "1's new start leaves the eligible set"
    );
}

/// R-REPL-6: below the minimum the leader's high watermark stands still, so the
/// eligible replicas hold everything below it; an acks=1 record is durable but unseen.
/// With a minimum of 1 the same ISR is at the minimum, and the record is committed.
#[test]
fn r_repl_6_the_high_watermark_stands_still_below_the_minimum() {
    for (min_isr, committed) in [("2", 0), ("1", 1)] {
        let (mut state, index) = three_brokers_one_topic_with(&[("min.insync.replicas", min_isr)]);
        let shrink = CommandEnvelope::new(index + 1, alter_isr(0, vec![1], 0));
        assert_eq!(state.apply(index + 1, &shrink), ApplyOutcome::Done);
        let (partitions, _) = hosted(&state, 1);
        let local = broker_one(&state, &partitions);
        let refused = local.admit_produce("t", 0, -1).err();
        assert_eq!(refused, (committed == 0).then_some(NOT_ENOUGH_REPLICAS));
        let (log, _) = local.admit_produce("t", 0, 1).expect("acks=1 is taken");
        log.append(&record(7), 0, 0).expect("appended");
        log.sync().expect("synced");
        let key = ("t".to_string(), 0);
        assert_eq!(local.advance_high_watermark(&key, &log, 0), committed == 1);
        assert_eq!(
            log.high_watermark(),
            committed,
            "min.insync.replicas {min_isr}"
        );
    }
}

/// R-REPL-3: a restarted broker follows only once the metadata it judges from holds
/// its registration of this start; until then it may be an older view than the one
/// it had before its crash (swarm seed 109739).
#[test]
fn r_repl_3_a_restarted_broker_follows_once_its_registration_is_applied() {
    let (mut state, index) = three_brokers_one_topic();
    let (partitions, _) = hosted(&state, 2);
    let restarted = |state: &MetadataState| {
        let p = state.partition("t", 0).cloned().expect("t-0");
        let local = LocalView {
            state,
            partitions: &partitions,
            me: 2,
            incarnation: 2,
        };
        local.followed_leader(&p)
    };
    assert_eq!(restarted(&state), None, "start 2 is not registered yet");
    let registered = CommandEnvelope::new(index + 1, register_broker(2, 2, false));
    assert_eq!(state.apply(index + 1, &registered), ApplyOutcome::Done);
    assert_eq!(restarted(&state), Some(1));
}

/// R-REPL-6: lowering min.insync.replicas puts the ISR back at the minimum, where the
/// high watermark moves again: the eligible replicas no longer hold everything
/// committed, so they stop being eligible (found by review: a stale ELR member could
/// have been elected without records acknowledged at the lower minimum).
#[test]
fn r_repl_6_a_lowered_minimum_forgets_the_eligible_replicas() {
    let (mut state, mut index) = three_brokers_one_topic_with(&[("min.insync.replicas", "2")]);
    for broker_id in [2, 3] {
        apply_next(
            &mut state,
            &mut index,
            MetadataCommand::FenceBroker { broker_id },
        );
    }
    let elr = |state: &MetadataState| state.partition("t", 0).map(|p| p.elr.clone());
    assert_eq!(elr(&state), Some(vec![3]));
    let lowered = MetadataCommand::AlterTopicConfigs {
        topic: "t".into(),
        set: [("min.insync.replicas".to_string(), "1".to_string())].into(),
        remove: Vec::new(),
        replace: false,
    };
    assert_eq!(
        apply_next(&mut state, &mut index, lowered),
        ApplyOutcome::Done
    );
    assert_eq!(elr(&state), Some(vec![]));
}

fn repair(state: &MetadataState, broker_id: i32) -> MetadataCommand {
    let p = state.partition("t", 0).cloned().expect("t-0");
    MetadataCommand::RepairReplica {
        topic: "t".into(),
        partition: 0,
        broker_id,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
    }
}

/// R-REPL-4 with R-REPL-6: a damaged leader alone in the ISR hands over to a live
/// eligible replica, which holds everything committed, instead of keeping a copy it
/// must serve around the damage.
#[test]
fn r_repl_4_a_damaged_sole_leader_hands_over_to_a_live_eligible_replica() {
    let (mut state, mut index) = three_brokers_one_topic_with(&[("min.insync.replicas", "2")]);
    let partition = |state: &MetadataState| {
        let p = state.partition("t", 0).cloned().expect("t-0");
        (p.leader, p.isr, p.elr)
    };
    apply_next(
        &mut state,
        &mut index,
        MetadataCommand::FenceBroker { broker_id: 2 },
    );
    apply_next(
        &mut state,
        &mut index,
        MetadataCommand::FenceBroker { broker_id: 3 },
    );
    apply_next(&mut state, &mut index, register_broker(3, 2, false));
    assert_eq!(partition(&state), (Some(1), vec![1], vec![3]));
    let damaged = repair(&state, 1);
    assert_eq!(
        apply_next(&mut state, &mut index, damaged),
        ApplyOutcome::Done
    );
    assert_eq!(partition(&state), (Some(3), vec![3], vec![]));
}

/// R-REPL-4: the last replica an offline partition could be led from keeps its ISR
/// place when it finds damage: cut, nothing but an unclean election could lead the
/// partition again. It leads on its return and serves around the damage.
#[test]
fn r_repl_4_an_offline_partitions_last_copy_is_not_cut_out_of_its_isr() {
    let (mut state, mut index) = three_brokers_one_topic();
    let partition = |state: &MetadataState| {
        let p = state.partition("t", 0).cloned().expect("t-0");
        (p.leader, p.isr, p.elr)
    };
    for broker_id in [2, 3, 1] {
        apply_next(
            &mut state,
            &mut index,
            MetadataCommand::FenceBroker { broker_id },
        );
    }
    assert_eq!(partition(&state), (None, vec![1], vec![]));
    let damaged = repair(&state, 1);
    assert!(matches!(
        apply_next(&mut state, &mut index, damaged),
        ApplyOutcome::Rejected { code, .. } if code == NOT_ENOUGH_REPLICAS
    ));
    assert_eq!(partition(&state), (None, vec![1], vec![]));
    apply_next(&mut state, &mut index, register_broker(1, 2, false));
    assert_eq!(partition(&state).0, Some(1));
}

/// Broker `broker_id`'s registration by start `incarnation`, naming its copy of t-0
/// as short of records.
fn register_short(broker_id: i32, incarnation: u64) -> MetadataCommand {
    let mut command = register_broker(broker_id, incarnation, false);
    if let MetadataCommand::RegisterBroker { short_copies, .. } = &mut command {
        short_copies.push(CopyRef {
            topic: "t".into(),
            partition: 0,
        });
    }
    command
}

/// R-REPL-4: a start that replays its metadata only to a durable commit index
/// before the partition's creation opens no log for it, yet its registration still
/// names the copy short: the copy opens only once the metadata is learnt again,
/// after the registration, which would otherwise have kept it leading or in the ISR
/// (C-9, swarm seed 1921). The copy's directory is left for the metadata to claim.
#[test]
fn r_repl_4_a_registration_names_a_short_copy_its_replayed_metadata_does_not_assign_yet() {
    let (state, _) = three_brokers_one_topic_with(&[("min.insync.replicas", "2")]);
    let disk = MemDisk::new();
    three_records_then_a_bad_byte(&disk, &state, |len| len / 2);
    let before_creation = MetadataState::default();
    let partitions = broker_one_on(&disk, &before_creation);
    assert!(partitions.get("t", 0).is_none(), "no log opened");
    let short = partitions.short_copies().expect("the data directory lists");
    let t0 = CopyRef {
        topic: "t".into(),
        partition: 0,
    };
    assert_eq!(short, vec![t0.clone()]);
    assert!(
        partitions.get("t", 0).is_none(),
        "the check opened nothing for good"
    );
    // Once the metadata assigns it, the copy opens as before, short of the same.
    let reopened = broker_one_on(&disk, &state);
    assert_eq!(reopened.short_copies().expect("lists"), vec![t0]);
    // A whole copy the replayed metadata does not assign is not named.
    let whole = MemDisk::new();
    let log = broker_one_on(&whole, &state).get("t", 0).expect("t-0");
    for value in 0..3 {
        log.append(&record(value), 0, 0).expect("appended");
    }
    drop(log);
    let short = broker_one_on(&whole, &before_creation).short_copies();
    assert_eq!(short.expect("lists"), Vec::<CopyRef>::new());
}

/// R-REPL-4: a start whose recovery found a copy short of records names it in its
/// registration (the logs are opened first), and the registration takes the copy
/// out of the ISR and the eligible set, and hands its leadership over, before
/// anything can count on what it lost. Before, only the copy's `RepairReplica` did,
/// after the registration: the replication model's walks shrank a marked follower
/// into the eligible set in between (R-REPL-6, 30 steps), and a leader fenced in
/// between left the marked copy the sole ISR member.
#[test]
fn r_repl_4_a_registration_naming_a_short_copy_takes_it_out_before_anything_counts_on_it() {
    let (mut state, mut index) = three_brokers_one_topic_with(&[("min.insync.replicas", "2")]);
    let disk = MemDisk::new();
    three_records_then_a_bad_byte(&disk, &state, |len| len / 2);
    let short = broker_one_on(&disk, &state)
        .short_copies()
        .expect("the data directory lists");
    assert_eq!(
        short,
        vec![CopyRef {
            topic: "t".into(),
            partition: 0
        }],
        "the damaged copy is named"
    );
    // A follower's new start: out of the ISR, and not eligible either.
    assert_eq!(
        apply_next(&mut state, &mut index, register_short(2, 2)),
        ApplyOutcome::Done
    );
    let p = state.partition("t", 0).expect("t-0").clone();
    assert_eq!((p.leader, p.isr.clone()), (Some(1), vec![1, 3]));
    assert!(!p.elr.contains(&2), "eligible without the records: {p:?}");
    // Caught up and back in the ISR, a retry of that registration applied late
    // changes nothing.
    let back = alter_isr(p.leader_epoch, vec![1, 2, 3], p.partition_epoch);
    assert_eq!(apply_next(&mut state, &mut index, back), ApplyOutcome::Done);
    assert_eq!(
        apply_next(&mut state, &mut index, register_short(2, 2)),
        ApplyOutcome::Done
    );
    assert_eq!(state.partition("t", 0).expect("t-0").isr, vec![1, 2, 3]);
    // The leader's new start hands over to the next live ISR member.
    assert_eq!(
        apply_next(&mut state, &mut index, register_short(1, 2)),
        ApplyOutcome::Done
    );
    let p = state.partition("t", 0).expect("t-0").clone();
    assert_eq!((p.leader, p.isr.clone()), (Some(2), vec![2, 3]));
    assert!(p.leader_epoch > 0, "a new leader, a new epoch");
    // Fenced all but broker 3, whose new start is short too: broker 2, fenced as
    // leader, syncs what it acknowledges and stays eligible, so the partition waits
    // offline for it rather than lead on less (R-REPL-6). The last replica an
    // offline partition could be led from keeps its place (the test above).
    for gone in [1, 2] {
        let fence = MetadataCommand::FenceBroker { broker_id: gone };
        assert_eq!(
            apply_next(&mut state, &mut index, fence),
            ApplyOutcome::Done
        );
    }
    assert_eq!(
        apply_next(&mut state, &mut index, register_short(3, 2)),
        ApplyOutcome::Done
    );
    let p = state.partition("t", 0).expect("t-0");
    assert_eq!(
        (p.leader, p.isr.clone(), p.elr.clone()),
        (None, vec![], vec![2])
    );
}

/// R-REPL-6 with R-REPL-4: a leader fenced while alone in an ISR below the minimum
/// stays eligible when it syncs what it acknowledges, since it holds every committed
/// record. Before, it did not: an eligible follower whose recovery had just cut the
/// committed tail was elected in its place, its registration's hand-over was refused
/// (no other replica was eligible), and it answered OffsetForLeaderEpoch, so the
/// fenced leader's return truncated the records (a reviewer's reading of stop 47's
/// change). Now the short copy's registration leaves the partition offline for the
/// fenced leader, which leads on its return.
#[test]
fn r_repl_6_a_fenced_leader_that_syncs_what_it_acknowledges_stays_eligible() {
    let (mut state, mut index) = three_brokers_one_topic_with(&[("min.insync.replicas", "2")]);
    let partition = |state: &MetadataState| state.partition("t", 0).expect("t-0").clone();
    for isr in [vec![1, 2], vec![1]] {
        let p = partition(&state);
        let shrink = alter_isr(p.leader_epoch, isr, p.partition_epoch);
        assert_eq!(
            apply_next(&mut state, &mut index, shrink),
            ApplyOutcome::Done
        );
    }
    assert_eq!(partition(&state).elr, vec![2]);
    let fence = MetadataCommand::FenceBroker { broker_id: 1 };
    assert_eq!(
        apply_next(&mut state, &mut index, fence),
        ApplyOutcome::Done
    );
    let p = partition(&state);
    assert_eq!(
        (p.leader, p.isr.clone(), p.elr.clone()),
        (Some(2), vec![2], vec![1])
    );
    // Broker 2's new start found its copy short: the fenced leader holds what it
    // lost, so the partition waits offline for that one rather than lead on less.
    assert_eq!(
        apply_next(&mut state, &mut index, register_short(2, 2)),
        ApplyOutcome::Done
    );
    let p = partition(&state);
    assert_eq!(
        (p.leader, p.isr.clone(), p.elr.clone()),
        (None, vec![], vec![1])
    );
    // Broker 1 returns and leads; broker 2's repair changes nothing more.
    assert_eq!(
        apply_next(&mut state, &mut index, register_broker(1, 2, false)),
        ApplyOutcome::Done
    );
    let p = partition(&state);
    assert_eq!((p.leader, p.isr.clone()), (Some(1), vec![1]), "{p:?}");
    let repair = repair(&state, 2);
    assert_eq!(
        apply_next(&mut state, &mut index, repair),
        ApplyOutcome::Done
    );
    let p = partition(&state);
    assert_eq!((p.leader, p.isr.clone()), (Some(1), vec![1]), "{p:?}");
}

/// R-REPL-2: a fenced broker is in no ISR, also of a partition created after its
/// fence. The creation was planned against an older image (the swarm seeds 1509,
/// 1847 and 1964 created a partition with a fenced replica in its ISR): from
/// command format 10 the apply leaves fenced replicas out, leads with the first
/// other one, and refuses a partition whose replicas are all fenced, as Kafka's
/// controller does. A record of format 9 keeps its meaning on replay.
#[test]
fn r_repl_2_a_partition_created_after_a_fence_leaves_the_fenced_broker_out_of_its_isr() {
    let (mut state, mut index) = three_brokers_one_topic();
    for broker_id in [1, 3] {
        let fence = MetadataCommand::FenceBroker { broker_id };
        assert_eq!(
            apply_next(&mut state, &mut index, fence),
            ApplyOutcome::Done
        );
    }
    let created = create("u", vec![vec![1, 2, 3], vec![3, 2, 1]]);
    assert_eq!(
        apply_next(&mut state, &mut index, created),
        ApplyOutcome::Done
    );
    let added = MetadataCommand::CreatePartitions {
        topic: "u".into(),
        new_partitions: vec![vec![3, 1, 2]],
    };
    assert_eq!(
        apply_next(&mut state, &mut index, added),
        ApplyOutcome::Done
    );
    for partition in 0..3 {
        let p = state
            .partition("u", partition)
            .cloned()
            .expect("u partition");
        assert_eq!((p.leader, p.isr), (Some(2), vec![2]), "u-{partition}");
        assert_eq!(p.replicas.len(), 3);
    }
    let all_fenced = create("v", vec![vec![1, 2], vec![3, 1]]);
    let refused = apply_next(&mut state, &mut index, all_fenced);
    assert!(
        matches!(
            refused,
            ApplyOutcome::Rejected {
                code: INVALID_REPLICA_ASSIGNMENT,
                ..
            }
        ),
        "{refused:?}"
    );
    assert!(!state.topics.contains_key("v"));
    let as_in_format_9 = CommandEnvelope {
        version: 9,
        ..CommandEnvelope::new(index + 1, create("w", vec![vec![1, 2, 3]]))
    };
    assert_eq!(state.apply(index + 1, &as_in_format_9), ApplyOutcome::Done);
    let p = state.partition("w", 0).cloned().expect("w-0");
    assert_eq!((p.leader, p.isr), (Some(1), vec![1, 2, 3]));
}

/// R-REPL-2: an offline partition keeps its ISR until a member can lead, and the
/// member that leads it again sheds the fenced ones (command format 10). Created
/// before its replicas registered, t-0 is led by broker 3, fenced while broker 2
/// has not registered: offline, ISR [3, 2]. Broker 2 registers and leads with an
/// ISR of its own, not one with a fenced broker its high watermark would wait for
/// (found by `metadata_invariants`).
#[test]
fn r_repl_2_a_member_leading_an_offline_partition_again_sheds_its_fenced_members() {
    for (version, isr) in [(10, vec![2]), (9, vec![3, 2])] {
        let mut state = MetadataState::default();
        let commands = [
            create("t", vec![vec![3, 2]]),
            register_broker(3, 1, false),
            MetadataCommand::FenceBroker { broker_id: 3 },
            register_broker(2, 1, false),
        ];
        for (i, command) in commands.into_iter().enumerate() {
            let index = i as u64 + 1;
            let envelope = CommandEnvelope {
                version,
                ..CommandEnvelope::new(index, command)
            };
            assert_eq!(state.apply(index, &envelope), ApplyOutcome::Done);
        }
        let p = state.partition("t", 0).cloned().expect("t-0");
        assert_eq!((p.leader, p.isr), (Some(2), isr), "format {version}");
    }
}
