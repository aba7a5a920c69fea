"""Consumer groups with confluent-kafka (classic protocol) against the real binary
(R-GROUP-*): rebalancing when a member leaves, and committed offsets that lose and
duplicate nothing."""
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

PARTITIONS = 6
TOTAL = 6000


def produce(bootstrap, topic):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(TOTAL):
        producer.produce(topic, value=b"g%05d" % i, partition=i % PARTITIONS)
        if i % 500 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0


class Member(threading.Thread):
    """Consumes and commits each message synchronously; a message counts only once
    its commit succeeded, so a count of two means two owners committed one offset."""

    def __init__(self, bootstrap, topic, name, committed, lock):
        super().__init__(name=name)
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": "e2e-group", "client.id": name,
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
            "partition.assignment.strategy": "range",
        })
        self.consumer.subscribe([topic])
        self.committed, self.lock = committed, lock
        self.stop = threading.Event()
        self.assigned_ever = set()

    def run(self):
        try:
            while not self.stop.is_set():
                msg = self.consumer.poll(0.2)
                if msg is None or msg.error():
                    continue
                self.assigned_ever.add(msg.partition())
                try:
                    self.consumer.commit(message=msg, asynchronous=False)
                except KafkaException:
                    continue  # lost the partition in a rebalance: the next owner re-reads it
                with self.lock:
                    key = (msg.partition(), msg.offset())
                    self.committed.setdefault(key, []).append((self.name, msg.value()))
        finally:
            self.consumer.close()  # LeaveGroup


def test_r_group_1_three_members_rebalance_when_one_leaves_and_offsets_lose_and_duplicate_nothing(broker):
    topic = "grouped"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    admin.close()
    produce(broker.bootstrap, topic)

    committed, lock = {}, threading.Lock()
    members = [Member(broker.bootstrap, topic, f"m{i}", committed, lock) for i in range(3)]
    for m in members:
        m.start()

    deadline = time.time() + 60
    while time.time() < deadline:
        with lock:
            if len(committed) >= TOTAL // 3:
                break
        time.sleep(0.05)
    members[2].stop.set()  # one member leaves the group mid-stream
    members[2].join(30)

    deadline = time.time() + 90
    while time.time() < deadline:
        with lock:
            if len(committed) >= TOTAL:
                break
        time.sleep(0.1)
    for m in members[:2]:
        m.stop.set()
    for m in members[:2]:
        m.join(30)

    assert len(committed) == TOTAL, f"{len(committed)} of {TOTAL} messages committed"
    duplicates = {k: v for k, v in committed.items() if len(v) > 1}
    assert not duplicates, f"offsets committed twice: {list(duplicates.items())[:3]}"
    values = sorted(v[0][1] for v in committed.values())
    assert values == sorted(b"g%05d" % i for i in range(TOTAL))
    # The survivors took over the partitions of the member that left.
    taken_over = set().union(*(m.assigned_ever for m in members[:2]))
    assert taken_over == set(range(PARTITIONS)), taken_over

    # The group's committed offsets are at the end of every partition.
    checker = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "e2e-group"})
    try:
        offsets = checker.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        assert [tp.offset for tp in offsets] == [TOTAL // PARTITIONS] * PARTITIONS
    finally:
        checker.close()


def test_r_group_2_committed_offsets_survive_a_restart(broker_factory, tmp_path):
    data = tmp_path / "groupdata"
    b = broker_factory(data)
    consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "durable",
                         "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": b.bootstrap})
    producer.produce("kept", b"x")
    assert producer.flush(10) == 0
    consumer.commit(offsets=[TopicPartition("kept", 0, 42)], asynchronous=False)
    consumer.close()
    b.kill9()
    b2 = broker_factory(data, port=b.port)
    checker = Consumer({"bootstrap.servers": b2.bootstrap, "group.id": "durable"})
    try:
        got = checker.committed([TopicPartition("kept", 0)], timeout=10)
        assert got[0].offset == 42
    finally:
        checker.close()



def consume_committing(consumer, expected, timeout):
    """Polls up to `expected` records, committing each synchronously; returns their values."""
    got = []
    deadline = time.time() + timeout
    while time.time() < deadline and len(got) < expected:
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            got.append(msg.value())
            consumer.commit(message=msg, asynchronous=False)
    return got


def test_r_group_8_a_coordinator_restart_keeps_the_generation_so_nobody_rebalances(broker_factory, tmp_path):
    """kill -9 of the (single-node) coordinator: the restarted broker resumes the group
    from its stored record, so the member's heartbeats and commits of its generation
    are accepted and its partitions are neither revoked nor assigned again."""
    data = tmp_path / "coord"
    b = broker_factory(data)
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    admin.create_topics([NewTopic("resumed", num_partitions=2, replication_factor=1)])
    admin.close()
    events = []
    consumer = Consumer({
        "bootstrap.servers": b.bootstrap, "group.id": "resumed-group",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "session.timeout.ms": 10000, "heartbeat.interval.ms": 300,
    })
    consumer.subscribe(["resumed"], on_assign=lambda c, ps: events.append(("assign", len(ps))),
                       on_revoke=lambda c, ps: events.append(("revoke", len(ps))))
    producer = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})

    try:
        for i in range(10):
            producer.produce("resumed", b"before-%d" % i, partition=i % 2)
        assert producer.flush(10) == 0
        assert len(consume_committing(consumer, 10, 30)) == 10
        assert events == [("assign", 2)]

        b.kill9()
        b2 = broker_factory(data, port=b.port)
        producer2 = Producer({"bootstrap.servers": b2.bootstrap, "acks": "all"})
        for i in range(10):
            producer2.produce("resumed", b"after-%d" % i, partition=i % 2)
        assert producer2.flush(15) == 0
        after = consume_committing(consumer, 10, 30)
        assert sorted(after) == sorted(b"after-%d" % i for i in range(10))
        assert events == [("assign", 2)], f"the restart made the group rebalance: {events}"
    finally:
        consumer.close()


def test_r_group_7_a_static_member_restarting_within_its_session_causes_no_rebalance(broker):
    """KIP-345 as librdkafka's test 0102 uses it: two members with group.instance.id;
    one closes (a static member sends no LeaveGroup) and comes back with the same
    instance id before its session lapses; the other member sees no rebalance and the
    returning one gets its partitions back."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("static", num_partitions=4, replication_factor=1)])
    admin.close()

    def member(instance, events):
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "static-group",
                      "group.instance.id": instance, "session.timeout.ms": 10000,
                      "heartbeat.interval.ms": 300, "auto.offset.reset": "earliest",
                      "partition.assignment.strategy": "range"})
        c.subscribe(["static"],
                    on_assign=lambda _c, ps: events.append(("assign", sorted(p.partition for p in ps))),
                    on_revoke=lambda _c, ps: events.append(("revoke", sorted(p.partition for p in ps))))
        return c

    def poll_until(consumers, check, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline and not check():
            for c in consumers:
                c.poll(0.1)
        return check()

    a_events, b_events = [], []
    a, b = member("static-a", a_events), member("static-b", b_events)
    try:
        assert poll_until([a, b], lambda: a_events and b_events, 30), (a_events, b_events)
        b_partitions = b_events[-1][1]
        assert len(a_events[-1][1]) == 2 and len(b_partitions) == 2, (a_events, b_events)
        b.close()
        b_again_events = []
        b = member("static-b", b_again_events)
        assert poll_until([a, b], lambda: b_again_events, 20), b_again_events
        assert b_again_events[-1] == ("assign", b_partitions)
        poll_until([a, b], lambda: False, 2)  # would show a late rebalance
        assert a_events == [a_events[0]], f"the other member was disturbed: {a_events}"
    finally:
        a.close()
        b.close()


def test_r_group_9_a_kip848_member_keeps_its_partitions_across_a_coordinator_restart(tmp_path):
    """group.protocol=consumer: kill -9 of the (single-node) coordinator; the restarted
    broker resumes the group from its stored record, so the member's heartbeats at its
    epoch and its commits are accepted and its partitions are neither lost nor moved."""
    from conftest import Broker
    data = tmp_path / "kip848"
    extra = ["--group-consumer-heartbeat-interval-ms", "500"]
    b = Broker(data, extra_args=extra).start()
    events = []
    consumer = None
    try:
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
        admin.create_topics([NewTopic("kip848-kept", num_partitions=2, replication_factor=1)])
        admin.close()
        consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "kip848-kept",
                             "group.protocol": "consumer", "auto.offset.reset": "earliest",
                             "enable.auto.commit": False})
        consumer.subscribe(["kip848-kept"],
                           on_assign=lambda c, ps: events.append(("assign", len(ps))),
                           on_revoke=lambda c, ps: events.append(("revoke", len(ps))),
                           on_lost=lambda c, ps: events.append(("lost", len(ps))))

        producer = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
        for i in range(10):
            producer.produce("kip848-kept", b"before-%d" % i, partition=i % 2)
        assert producer.flush(10) == 0
        assert len(consume_committing(consumer, 10, 30)) == 10
        assert events == [("assign", 2)], events

        b.kill9()
        b.stop()
        b = Broker(data, port=b.port, extra_args=extra).start()
        producer = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
        for i in range(10):
            producer.produce("kip848-kept", b"after-%d" % i, partition=i % 2)
        assert producer.flush(15) == 0
        after = consume_committing(consumer, 10, 30)
        assert sorted(after) == sorted(b"after-%d" % i for i in range(10))
        time.sleep(1.5)  # a few more heartbeats
        consumer.poll(0.2)
        assert events == [("assign", 2)], f"the restart cost the member its partitions: {events}"
    finally:
        if consumer is not None:
            consumer.close()
        b.stop()


def test_r_group_2_commit_metadata_is_bounded_and_an_offsets_only_group_is_empty(broker):
    """Offset metadata is replicated metadata kept by every broker: beyond Kafka's
    offset.metadata.max.bytes (4096) a commit is refused OFFSET_METADATA_TOO_LARGE for
    that partition and nothing is stored (Chronik stored a megabyte). A group that
    only committed offsets is described Empty, as it is listed (it was Dead)."""
    from confluent_kafka.admin import AdminClient
    from kafka import KafkaConsumer
    from kafka.errors import OffsetMetadataTooLargeError
    from kafka.structs import OffsetAndMetadata
    from kafka import TopicPartition as KafkaTopicPartition
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("meta", num_partitions=1, replication_factor=1)])
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="meta-group",
                             enable_auto_commit=False)
    tp = KafkaTopicPartition("meta", 0)
    try:
        consumer.commit({tp: OffsetAndMetadata(5, "m" * 4096, -1)})
        try:
            consumer.commit({tp: OffsetAndMetadata(7, "m" * 4097, -1)})
            raise AssertionError("4097 bytes of metadata were stored")
        except OffsetMetadataTooLargeError:
            pass
        stored = admin.list_group_offsets("meta-group")["meta-group"][tp]
        assert (stored.offset, len(stored.metadata)) == (5, 4096)
    finally:
        consumer.close(autocommit=False)
        admin.close()
    describer = AdminClient({"bootstrap.servers": broker.bootstrap})
    described = describer.describe_consumer_groups(["meta-group"])["meta-group"].result(10)
    assert str(described.state).endswith("EMPTY"), described.state
