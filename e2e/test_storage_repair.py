"""Damaged partition data as an operator meets it (issue 12): a byte flipped on disk
under a running or a stopped broker. A replicated partition repairs its damaged copy
from a replica while it runs (R-REPL-4), found by the background scrub (R-LOG-16);
a sole copy keeps serving what is undamaged, and `chronik check-data --quarantine`
on the stopped broker gives the damaged range up on the operator's word (R-LOG-17).
Every test counts what a consumer reads."""
import json
import signal
import subprocess
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BINARY, Broker, Cluster
from test_cluster import brokers_seen, partition_state, wait_for

SCRUB = ["--log-scrub-bytes-per-sec", "50000000", "--log-scrub-interval-ms", "200"]
VALUE = 200


def create_topic(bootstrap, name, replication, configs):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, replication, config=configs)])[name].result(10)


def produce_all(bootstrap, topic, start, count):
    """Produces `count` acks=all records numbered from `start`; all must be acknowledged."""
    acked, failed = {}, []

    def on_delivery(err, msg):
        if err is None:
            acked[int(msg.value()[:8])] = msg.offset()
        else:
            failed.append(err)

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5, "batch.num.messages": 20})
    for i in range(start, start + count):
        p.produce(topic, (b"%08d" % i).ljust(VALUE, b"x"), partition=0, on_delivery=on_delivery)
        p.poll(0)
    p.flush(60)
    assert not failed and len(acked) == count, (failed[:3], len(acked))
    return acked


def read_all(bootstrap, topic, until_offset, timeout=60):
    """(offset, number) of every record from offset 0 until `until_offset`, and errors."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.time()}",
                  "enable.auto.commit": False, "auto.offset.reset": "error"})
    c.assign([TopicPartition(topic, 0, 0)])
    got, errors = [], []
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            errors.append(str(m.error()))
            continue
        got.append((m.offset(), int(m.value()[:8])))
        if m.offset() >= until_offset - 1:
            break
    c.close()
    return got, errors


def segments(data_dir, topic):
    return sorted((Path(data_dir) / "logs" / f"{topic}-0").glob("*.log"))


def flip_byte(path, at):
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x5A]))


def check_data(data_dir, *args):
    return subprocess.run([str(BINARY), "--data-dir", str(data_dir), "check-data", *args],
                          capture_output=True, text=True, timeout=120)


def test_r_log_17_a_sole_damaged_copy_is_served_around_the_damage_then_quarantined(tmp_path):
    data = tmp_path / "data"
    broker = Broker(data).start()
    try:
        create_topic(broker.bootstrap, "solo", 1, {"segment.bytes": "65536"})
        acked = produce_all(broker.bootstrap, "solo", 0, 2000)
        # The data directory is locked while the broker runs.
        busy = check_data(data)
        assert busy.returncode != 0 and "in use" in busy.stderr, busy
    finally:
        assert broker.stop() == 0
    first = segments(data, "solo")[0]
    assert len(segments(data, "solo")) > 3
    flip_byte(first, first.stat().st_size // 2)

    report = check_data(data)
    assert report.returncode == 1, report
    damaged = [line for line in report.stdout.splitlines() if line.startswith("damaged solo-0")]
    assert len(damaged) == 1, report.stdout

    quarantined = check_data(data, "--quarantine")
    assert quarantined.returncode == 0, quarantined
    assert "quarantined solo-0" in quarantined.stdout
    assert list((first.parent / "quarantine").iterdir()), "the damaged bytes are kept"
    again = check_data(data)
    assert again.returncode == 0 and "0 damaged ranges" in again.stdout, again

    broker = Broker(data).start()
    try:
        got, errors = read_all(broker.bootstrap, "solo", 2000)
        assert not errors, errors[:3]
        offsets = [o for o, _ in got]
        lost = sorted(set(range(2000)) - set(offsets))
        assert 0 < len(lost) < 100, f"{len(lost)} offsets given up"
        assert lost == list(range(lost[0], lost[-1] + 1)), "one contiguous range is given up"
        assert all(acked[n] == o for o, n in got), "every other record at its acknowledged offset"
        assert offsets[-1] == 1999
        # The log goes on after the quarantined range.
        more = produce_all(broker.bootstrap, "solo", 2000, 10)
        assert min(more.values()) == 2000
    finally:
        broker.stop()


def start_cluster(tmp_path):
    cluster = Cluster(tmp_path, extra_args=SCRUB)
    try:
        for n in cluster.nodes:
            n.start()
        wait_for("3 brokers", lambda: brokers_seen(cluster.node(1).bootstrap) == [1, 2, 3], 10.0)
    except BaseException:
        # A node that failed to start must not leave the others running.
        cluster.stop()
        raise
    return cluster


def repair_logged(node):
    return "fetching the records back from the leader" in Path(node.log_path).read_text()


def damage_and_watch_repair(tmp_path, damaged_role):
    cluster = start_cluster(tmp_path)
    try:
        bootstrap = cluster.node(1).bootstrap
        create_topic(bootstrap, "kept", 3, {"segment.bytes": "65536", "min.insync.replicas": "2"})
        wait_for("full ISR", lambda: len(partition_state(cluster.node(1), "kept")[1]) == 3, 10.0)
        acked = produce_all(bootstrap, "kept", 0, 3000)
        leader, _ = partition_state(cluster.node(1), "kept")
        target = leader if damaged_role == "leader" else next(i for i in (1, 2, 3) if i != leader)
        node = cluster.node(target)
        wait_for("sealed segments on the damaged node",
                 lambda: len(segments(node.data_dir, "kept")) > 3, 10.0)
        first = segments(node.data_dir, "kept")[0]
        flip_byte(first, first.stat().st_size // 2)

        wait_for(f"node {target} repaired its copy", lambda: repair_logged(node), 30.0)
        new_leader = rejoined_and_nothing_lost(cluster, target, "kept", acked)
        if damaged_role == "leader":
            assert new_leader != target, "the damaged leader handed leadership over"
    finally:
        cluster.stop()
    assert_every_copy_clean(cluster)


def rejoined_and_nothing_lost(cluster, repaired, topic, acked):
    """Waits for node `repaired` back in the ISR, produces 100 more records, and reads
    every acknowledged one back in order at its offset; returns the leader."""
    other = next(n for i, n in enumerate(cluster.nodes, 1) if i != repaired)
    leader, _ = wait_for("node back in the ISR", lambda: (
        (s := partition_state(other, topic)) and repaired in s[1] and s), 30.0)
    count = len(acked)
    acked.update(produce_all(other.bootstrap, topic, count, 100))
    got, errors = read_all(other.bootstrap, topic, count + 100)
    assert not errors, errors[:3]
    assert [n for _, n in got] == list(range(count + 100)), "every acknowledged record, in order"
    assert all(acked[n] == o for o, n in got)
    return leader


def assert_every_copy_clean(cluster):
    """The repaired copy holds everything, undamaged, as every other does."""
    for n in cluster.nodes:
        report = check_data(n.data_dir)
        assert report.returncode == 0 and "0 damaged ranges" in report.stdout, report.stdout


def test_r_repl_4_a_damaged_follower_copy_is_repaired_from_the_leader(tmp_path):
    damage_and_watch_repair(tmp_path, "follower")


def one_broker_wrote(data, topic, count):
    """A single broker on `data` that created `topic` (one partition, one replica),
    wrote `count` records to it and stopped cleanly."""
    broker = Broker(data).start()
    try:
        create_topic(broker.bootstrap, topic, 1, {})
        produce_all(broker.bootstrap, topic, 0, count)
    finally:
        assert broker.stop() == 0


def bad_last_frame(data_dir, topic):
    """A bad sector in partition 0's last frame, past the durable point its checkpoint
    records (here: a checkpoint that records none, as one written before that frame)."""
    checkpoint = data_dir / "logs" / f"{topic}-0" / "checkpoint.json"
    if checkpoint.exists():
        stamp = json.loads(checkpoint.read_text())
        stamp.pop("durable", None)
        checkpoint.write_text(json.dumps(stamp))
    last = segments(data_dir, topic)[-1]
    flip_byte(last, last.stat().st_size - 1)


def test_r_repl_4_check_data_reports_a_tail_recovery_cut_as_torn(tmp_path):
    """A bad last frame past the durable point the checkpoint records is, to recovery, a
    torn write: `check-data` cuts and marks it as the broker's start would, and reports
    where the cut starts, since the records cut may have been acknowledged
    (spec/cluster.md R-REPL-4, a bad last frame). No damage is left on disk, and the mark
    stays until a cut at it or a leader's write."""
    data = tmp_path / "data"
    one_broker_wrote(data, "edge", 200)
    bad_last_frame(data, "edge")

    for run in range(2):
        report = check_data(data)
        assert report.returncode == 0, report
        cut = [line for line in report.stdout.splitlines() if line.startswith("cut edge-0 ")]
        assert len(cut) == 1, (run, report.stdout)
        offset = int(cut[0].split("from offset ")[1].split(":")[0])
        assert 0 < offset < 200, cut
        assert "0 damaged ranges" in report.stdout and "1 tails cut and marked" in report.stdout


def test_r_repl_4_a_damaged_leader_hands_over_and_is_repaired(tmp_path):
    damage_and_watch_repair(tmp_path, "leader")


def test_r_repl_4_a_leader_whose_last_frame_went_bad_while_down_hands_over_and_is_repaired(
        tmp_path):
    """A bad sector in the leader's last frame, past the durable point its checkpoint
    records (here: a checkpoint that records none, as one written before that frame),
    is what recovery takes for a torn write: it cuts it, and the acknowledged records it
    held are gone from that copy. The cut is marked, so the restarted leader answers no
    OffsetForLeaderEpoch while its followers hold them, hands over, and fetches them back
    (spec/cluster.md R-REPL-4, a bad last frame). Before the mark its followers truncated
    them away."""
    cluster = start_cluster(tmp_path)
    try:
        bootstrap = cluster.node(1).bootstrap
        create_topic(bootstrap, "tail", 3, {"min.insync.replicas": "2"})
        wait_for("full ISR", lambda: len(partition_state(cluster.node(1), "tail")[1]) == 3, 10.0)
        acked = produce_all(bootstrap, "tail", 0, 500)
        leader, _ = partition_state(cluster.node(1), "tail")
        node = cluster.node(leader)
        node.kill9()
        bad_last_frame(Path(node.data_dir), "tail")
        node.start()

        log = lambda: Path(node.log_path).read_text()
        wait_for("the bad tail cut", lambda: "truncating a torn log tail" in log(), 10.0)
        wait_for(f"node {leader} fetching back what it cut", lambda: repair_logged(node), 30.0)
        new_leader = rejoined_and_nothing_lost(cluster, leader, "tail", acked)
        assert new_leader != leader, "the marked leader handed leadership over"
    finally:
        cluster.stop()
    assert_every_copy_clean(cluster)


def test_r_repl_6_a_fenced_leader_stays_eligible_while_the_copy_elected_in_its_place_cut_its_tail(
        tmp_path):
    """Three faults in one window (spec/cluster.md R-REPL-6, a reviewer's reading of
    stop 47). The ISR shrinks to the leader alone: one follower is killed, the other
    paused past its session (below min.insync.replicas 2 it stays eligible). The
    leader is paused past its session while the eligible follower comes back: the
    follower is elected, and the leader, which syncs what it acknowledges, stays
    eligible. The new leader is killed and its last frame goes bad, so its restart
    cuts acknowledged records as a torn write. Its registration names the short copy:
    with the fenced leader eligible, the partition waits offline for it, and on its
    return it leads with every record. Before, no fenced leader was eligible, the
    short copy kept leading, and the returning leader truncated the records it cut.
    Five nodes, so that the metadata group keeps a quorum with two replicas down."""
    cluster = Cluster(tmp_path, n=5, extra_args=["--session-timeout-ms", "3000"])
    paused = []

    def pause(node):
        node.proc.send_signal(signal.SIGSTOP)
        paused.append(node)

    def resume(node):
        node.proc.send_signal(signal.SIGCONT)
        paused.remove(node)

    try:
        for n in cluster.nodes:
            n.start()
        wait_for("5 brokers", lambda: brokers_seen(cluster.node(1).bootstrap) == [1, 2, 3, 4, 5],
                 20.0)
        watcher = cluster.node(4)
        state = lambda: partition_state(watcher, "window")
        admin = AdminClient({"bootstrap.servers": watcher.bootstrap})
        admin.create_topics([NewTopic("window", 1, replica_assignment=[[1, 2, 3]],
                                      config={"min.insync.replicas": "2"})])["window"].result(10)
        wait_for("full ISR", lambda: len(state()[1]) == 3, 10.0)
        acked = produce_all(watcher.bootstrap, "window", 0, 300)

        leader, _ = state()
        first, eligible = [i for i in (1, 2, 3) if i != leader]
        cluster.node(first).kill9()
        wait_for("ISR at the minimum", lambda: state() == (leader, sorted([leader, eligible])),
                 20.0)
        pause(cluster.node(eligible))
        wait_for("ISR below the minimum", lambda: state() == (leader, [leader]), 20.0)

        pause(cluster.node(leader))
        resume(cluster.node(eligible))
        wait_for("the eligible follower elected", lambda: state()[0] == eligible, 20.0)

        short = cluster.node(eligible)
        short.kill9()
        bad_last_frame(Path(short.data_dir), "window")
        short.start()
        wait_for("the partition offline, waiting for the fenced leader",
                 lambda: state()[0] == -1, 20.0)
        resume(cluster.node(leader))
        wait_for("the fenced leader leads again", lambda: state()[0] == leader, 20.0)
        got, errors = read_all(cluster.node(leader).bootstrap, "window", 300)
        assert not errors, errors[:3]
        assert [n for _, n in got] == list(range(300)), "every acknowledged record, in order"
        assert all(acked[n] == o for o, n in got), "each at its acknowledged offset"
        cluster.node(first).start()
        wait_for("every replica back in the ISR", lambda: state()[1] == [1, 2, 3], 30.0)
    finally:
        for n in paused:
            n.proc.send_signal(signal.SIGCONT)
        cluster.stop()


def test_r_recover_8_directories_of_deleted_topics_are_removed_at_start(tmp_path):
    """A kill -9 between DeleteTopics' commit and the removal of its directories leaves
    them on disk; the next start removes them, and a topic of the same name starts empty."""
    import shutil
    data = tmp_path / "data"
    one_broker_wrote(data, "gone", 50)
    left_behind = tmp_path / "gone-0.copy"
    shutil.copytree(data / "logs" / "gone-0", left_behind)
    broker = Broker(data).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.delete_topics(["gone"])["gone"].result(10)
    finally:
        assert broker.stop() == 0
    # What the crash would have left: the deleted topic's directory, and one from
    # before topic ids were stamped, of a topic the metadata never had.
    shutil.copytree(left_behind, data / "logs" / "gone-0")
    shutil.copytree(left_behind, data / "logs" / "never-3")
    (data / "logs" / "never-3" / "topic_id").unlink()

    broker = Broker(data).start()
    try:
        # The port opens before the metadata is replayed; the first answer comes after.
        assert "gone" not in AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(
            timeout=10).topics
        assert not (data / "logs" / "gone-0").exists()
        assert not (data / "logs" / "never-3").exists()
        log = Path(broker.log_path).read_text()
        assert log.count("removing the partition directory of a deleted topic") == 2
        create_topic(broker.bootstrap, "gone", 1, {})
        got, errors = read_all(broker.bootstrap, "gone", 1, timeout=3)
        assert got == [] and not errors
    finally:
        broker.stop()


def forty_records_in_kept(data):
    """A stopped single node whose topic "kept" holds 40 acknowledged records."""
    broker = Broker(data).start()
    try:
        create_topic(broker.bootstrap, "kept", 1, {})
        produce_all(broker.bootstrap, "kept", 0, 40)
    finally:
        assert broker.stop() == 0


def test_r_recover_8_a_damaged_stamp_never_removes_a_live_topics_records(tmp_path):
    """One flipped bit in the topic_id stamp of a live partition's directory: the
    broker used to take the directory for a deleted topic's and remove it at the next
    start, with every acknowledged record in it. Now the directory is kept whole, the
    partition is not served, and an ERROR names the directory and the topic id; once
    the operator writes that id back into the stamp, every record is served again."""
    import re
    data = tmp_path / "data"
    forty_records_in_kept(data)
    partition = data / "logs" / "kept-0"
    kept_bytes = sorted((p.name, p.stat().st_size) for p in partition.glob("*.log"))
    stamp = partition / "topic_id"
    damaged = bytearray(stamp.read_bytes())
    damaged[3] ^= 0x01
    stamp.write_bytes(bytes(damaged))

    broker = Broker(data).start()
    try:
        log = ""
        deadline = time.time() + 10
        while "stamp of this partition directory is damaged" not in log:
            assert time.time() < deadline, log[-2000:]
            time.sleep(0.1)
            log = Path(broker.log_path).read_text()
        assert "removing" not in log, log[-2000:]
        got, _ = read_all(broker.bootstrap, "kept", 1, timeout=3)
        assert got == [], "served a directory whose stamp nobody vouches for"
    finally:
        assert broker.stop() == 0
    assert sorted((p.name, p.stat().st_size) for p in partition.glob("*.log")) == kept_bytes

    line = next(l for l in log.splitlines() if "stamp of this partition directory" in l)
    topic_id = re.search(r"topic_id=\"?([0-9a-f-]{36})", line).group(1)
    stamp.write_text(topic_id)
    broker = Broker(data).start()
    try:
        got, errors = read_all(broker.bootstrap, "kept", 40)
        assert [n for _, n in got] == list(range(40)) and not errors, (got[-3:], errors)
    finally:
        assert broker.stop() == 0


def test_r_recover_7_lost_metadata_refuses_to_start_until_the_logs_are_moved_aside(tmp_path):
    """An operator deletes the metadata directory of a stopped single node (or points
    --data-dir at a copy without it): the broker exits non-zero and says what it found
    and what to do, and the partition data is untouched; once the logs are moved aside
    it starts empty, and the moved data is still there to restore from."""
    import shutil
    data = tmp_path / "data"
    forty_records_in_kept(data)
    segment_bytes = sum(p.stat().st_size for p in (data / "logs" / "kept-0").iterdir())
    shutil.rmtree(data / "metadata")

    refused = Broker(data)
    try:
        refused.start(timeout=5)
        raise AssertionError("the broker started with partition data and no metadata")
    except RuntimeError as e:
        assert "exited with" in str(e), e
    finally:
        refused.stop()
    assert refused.proc.returncode not in (0, None)
    log = Path(refused.log_path).read_text()
    assert "partition directories" in log and "kept-0" in log, log[-2000:]
    assert "move" in log and "aside" in log, log[-2000:]
    assert sum(p.stat().st_size for p in (data / "logs" / "kept-0").iterdir()) == segment_bytes

    (data / "logs").rename(tmp_path / "logs.aside")
    broker = Broker(data).start()
    try:
        topics = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
        assert "kept" not in topics
    finally:
        assert broker.stop() == 0
    assert (tmp_path / "logs.aside" / "kept-0" / "topic_id").exists()
