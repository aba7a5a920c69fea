"""Compacted topics as Kafka Connect and Kafka Streams use them (R-LOG-18, issue 14):
keyed records overwritten many times, tombstones, the cleaner running under the
producers, a clean restart and kill -9 in the middle of cleaning. Every test reads the
topic from offset 0 with librdkafka and kafka-python (and Sarama 1.22 in its three
fetch generations and kafkajs in one test) and checks what a compacted topic promises:
offsets only grow and never change their record, and the last record of every key is
there."""
import random
import re
import time
import urllib.request

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition

from conftest import Broker, Cluster
from test_old_clients import go_clients, run, CLIENTS  # noqa: F401 - a fixture
from test_cluster import brokers_seen, partition_state, wait_for

CLEANER = ["--log-cleaner-backoff-ms", "100"]
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": "4096",
    "min.cleanable.dirty.ratio": "0.01",
}
KEYS = 40


def create_compacted(bootstrap, name, replication=1):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, replication, config=TOPIC_CONFIG)])[name].result(10)


def produce(bootstrap, topic, records):
    """Produces (key, value) pairs acks=all; returns {offset: (key, value)} as acknowledged."""
    acked, failed = {}, []

    def on_delivery(err, msg):
        if err is None:
            acked[msg.offset()] = (msg.key(), msg.value())
        else:
            failed.append(err)

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 2, "batch.num.messages": 20})
    for key, value in records:
        p.produce(topic, value, key, partition=0, on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(60) == 0
    assert not failed and len(acked) == len(records), (failed[:3], len(acked))
    return acked


def updates(start, count):
    """Values for keys round-robin; every seventh one a tombstone."""
    return [(b"key-%d" % (n % KEYS), None if n % 7 == 6 else b"value-%d" % n)
            for n in range(start, start + count)]


def metric(broker, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/metrics", timeout=5).read()
    m = re.search(rf"^chronik_{name}(?:_total)? (\d+)", text.decode(), re.M)
    return int(m.group(1)) if m else 0


def wait_cleaned(broker, at_least=1, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if metric(broker, "log_cleaner_records_removed") >= at_least:
            return
        time.sleep(0.1)
    raise AssertionError("the cleaner removed nothing")


def read_librdkafka(bootstrap, topic, end):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"compact-{time.time()}",
                  "enable.auto.commit": False, "auto.offset.reset": "error"})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.time() + 60
    while time.time() < deadline and not (got and got[-1][0] >= end - 1):
        m = c.poll(0.5)
        if m is None:
            _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
            if c.position([TopicPartition(topic, 0)])[0].offset >= high >= end:
                break
            continue
        assert not m.error(), m.error()
        got.append((m.offset(), m.key(), m.value()))
    c.close()
    return got


def read_kafka_python(bootstrap, topic, end):
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=3000)
    tp = KafkaTopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    got = []
    deadline = time.time() + 60
    while time.time() < deadline and c.position(tp) < end:
        for records in c.poll(timeout_ms=500).values():
            got.extend((r.offset, r.key, r.value) for r in records)
    c.close()
    return got


def check(read, acked):
    """What a compacted topic promises a reader of `read` when `acked` was produced."""
    offsets = [o for o, _, _ in read]
    assert offsets == sorted(set(offsets)), "offsets go back or repeat"
    for offset, key, value in read:
        assert acked[offset] == (key, value), f"offset {offset} changed its record"
    last = {}
    for offset in sorted(acked):
        last[acked[offset][0]] = offset
    held = set(offsets)
    for key, offset in last.items():
        if acked[offset][1] is not None:
            assert offset in held, f"the last record of {key} (offset {offset}) is gone"


def read_both_and_check(bootstrap, topic, acked):
    end = max(acked) + 1
    for read in (read_librdkafka(bootstrap, topic, end), read_kafka_python(bootstrap, topic, end)):
        check(read, acked)
    return read


def test_r_log_18_a_compacted_topic_keeps_the_last_record_of_every_key(tmp_path):
    b = Broker(tmp_path / "data", extra_args=CLEANER).start()
    try:
        create_compacted(b.bootstrap, "table")
        acked = produce(b.bootstrap, "table", updates(0, 3000))
        wait_cleaned(b, at_least=1000)
        read = read_both_and_check(b.bootstrap, "table", acked)
        assert len(read) < 1500, f"{len(read)} of 3000 records left after cleaning"
        b.stop()
        b.start()
        again = read_both_and_check(b.bootstrap, "table", acked)
        assert len(again) <= len(read)
    finally:
        b.stop()


def test_r_log_18_a_compacted_topic_refuses_a_record_without_a_key(tmp_path):
    b = Broker(tmp_path / "data", extra_args=CLEANER).start()
    try:
        create_compacted(b.bootstrap, "keyed")
        errors = []
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "retries": 0})
        p.produce("keyed", b"no key", partition=0,
                  on_delivery=lambda err, msg: errors.append(err))
        p.flush(10)
        assert errors and errors[0] is not None
        assert errors[0].code() == KafkaError.INVALID_RECORD, errors
    finally:
        b.stop()


def test_r_log_18_kill_9_while_the_cleaner_runs_loses_no_last_record(tmp_path):
    b = Broker(tmp_path / "data", extra_args=["--log-cleaner-backoff-ms", "20"]).start()
    rng = random.Random(18)
    try:
        create_compacted(b.bootstrap, "crashy")
        acked = {}
        for round_ in range(6):
            acked.update(produce(b.bootstrap, "crashy", updates(round_ * 1500, 1500)))
            time.sleep(rng.uniform(0.0, 0.4))
            b.kill9()
            b.start()
            read_both_and_check(b.bootstrap, "crashy", acked)
        names = [p.name for p in (tmp_path / "data").rglob("*") if p.suffix in (".swap", ".cleaned")]
        assert not names, names
    finally:
        b.stop()


def test_r_log_18_every_replica_cleans_and_a_new_leader_serves_a_compacted_log(tmp_path):
    """Each replica cleans its own copy; a follower that became leader serves it."""
    c = Cluster(tmp_path, extra_args=CLEANER)
    try:
        for n in c.nodes:
            n.start()
        wait_for("three brokers", lambda: brokers_seen(c.node(1).bootstrap) == [1, 2, 3], 20)
        create_compacted(c.bootstrap, "shared", replication=3)
        wait_for("a full ISR", lambda: len(partition_state(c.node(1), "shared")[1]) == 3, 20)
        acked = produce(c.bootstrap, "shared", updates(0, 3000))
        for n in c.nodes:
            wait_cleaned(n, at_least=500)
        leader, _ = partition_state(c.node(1), "shared")
        c.node(leader).kill9()
        survivor = next(n for n in c.nodes if n.running)
        wait_for("a new leader", lambda: partition_state(survivor, "shared")[0] not in (leader, -1), 20)
        acked.update(produce(c.bootstrap, "shared", updates(3000, 500)))
        read_both_and_check(c.bootstrap, "shared", acked)
        c.node(leader).start()
        wait_for("the old leader back in the ISR",
                 lambda: leader in partition_state(survivor, "shared")[1], 30)
        read_both_and_check(c.node(leader).bootstrap, "shared", acked)
    finally:
        c.stop()


def parse_dump(text):
    """(offset, key, value) from a client program's dump lines ("-": no value)."""
    read = []
    for line in text.splitlines():
        offset, key, value = line.split(" ", 2)
        read.append((int(offset), key.encode(), None if value == "-" else value.encode()))
    return read


def test_r_log_18_sarama_and_kafkajs_read_a_compacted_topic(tmp_path, go_clients):  # noqa: F811
    """Sarama 1.22 at its default (Fetch v0, down-converted to message format v0), as
    0.10 (Fetch v2, format v1) and as 2.1 (record batches), and kafkajs, read a cleaned
    topic through its emptied offsets: in the old formats a run of batches that lost
    every record converts to nothing, and the broker reads on past it."""
    b = Broker(tmp_path / "data", extra_args=CLEANER).start()
    try:
        create_compacted(b.bootstrap, "old")
        acked = produce(b.bootstrap, "old", updates(0, 3000))
        wait_cleaned(b, at_least=1000)
        for version in [None, "0.10.0.0", "2.1.0"]:
            extra = ["-version", version] if version else []
            # 100 bytes: an answer holds one batch, so some hold only an empty one.
            for fetch in ["0", "100"]:
                out = run([go_clients["sarama_old"], "-brokers", b.bootstrap, *extra,
                           "-mode", "dump", "-topic", "old", "-fetch-bytes", fetch])
                check(parse_dump(out), acked)
        out = run(["node", "client.js", b.bootstrap, "dump", "old"], cwd=CLIENTS / "kafkajs")
        check(parse_dump(out), acked)
    finally:
        b.stop()
