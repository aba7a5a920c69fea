"""End-to-end tests with real Kafka clients against the real binary (R-WIRE-*,
R-LOG-4, R-RECOVER-*). Each test names the rule it checks."""
import logging
import re
import subprocess
import threading
import time
import uuid

from confluent_kafka import Producer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic


def kcat(*args, input=None, timeout=30):
    return subprocess.run(["kcat", *args], input=input, capture_output=True, text=True, timeout=timeout)


def consume_all(bootstrap, topic, partitions, expected, timeout=60):
    """Reads every partition from the beginning with kafka-python (no group):
    returns {(partition, offset): value}."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=5000, fetch_max_bytes=8 * 1024 * 1024)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        seen = {}
        deadline = time.time() + timeout
        while len(seen) < expected and time.time() < deadline:
            for tp, records in consumer.poll(timeout_ms=1000, max_records=50000).items():
                for r in records:
                    key = (tp.partition, r.offset)
                    assert key not in seen, f"offset {key} delivered twice"
                    seen[key] = r.value
        return seen
    finally:
        consumer.close()


def test_r_wire_1_kcat_lists_the_broker_and_its_topics(broker):
    kcat("-b", broker.bootstrap, "-P", "-t", "listed", input="one\n")
    out = kcat("-b", broker.bootstrap, "-L")
    assert out.returncode == 0, out.stderr
    assert f"broker 1 at {broker.bootstrap}" in out.stdout
    assert "(controller)" in out.stdout
    assert 'topic "listed" with 1 partitions' in out.stdout


def test_r_wire_2_kafka_python_admin_creates_and_deletes_topics(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic("admin-made", num_partitions=3, replication_factor=1,
                                      topic_configs={"retention.ms": "3600000"})])
        assert "admin-made" in admin.list_topics()
        described = admin.describe_topics(["admin-made"])
        assert len(described[0]["partitions"]) == 3
        admin.delete_topics(["admin-made"])
        deadline = time.time() + 10
        while "admin-made" in admin.list_topics() and time.time() < deadline:
            time.sleep(0.1)
        assert "admin-made" not in admin.list_topics()
    finally:
        admin.close()


def test_r_wire_18_a_name_colliding_by_dot_and_underscore_is_refused(broker):
    """Kafka refuses a topic whose name differs from an existing one's only by '.'
    against '_' (both map to one metric name); Chronik made both (found by
    exploratory testing)."""
    from kafka.errors import InvalidTopicError
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic("orders.eu", num_partitions=1, replication_factor=1)])
        try:
            admin.create_topics([NewTopic("orders_eu", num_partitions=1, replication_factor=1)])
            raise AssertionError("orders_eu was created beside orders.eu")
        except InvalidTopicError as e:
            assert "collides with existing topic: orders.eu" in str(e), e
        assert "orders_eu" not in admin.list_topics()
        admin.create_topics([NewTopic("orders-eu", num_partitions=1, replication_factor=1)])
    finally:
        admin.close()


def test_r_wire_13_a_transactional_producer_fails_at_once_in_every_client(broker):
    """Transactions are not built. The broker answered a transactional InitProducerId
    INVALID_REQUEST, which librdkafka retries for ever: init_transactions() without a
    timeout never returned. It now answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED, on
    which every client gives up at once, and its log says why."""
    from confluent_kafka import KafkaException
    from confluent_kafka import Producer as ConfluentProducer
    from kafka.errors import TransactionalIdAuthorizationFailedError
    started = time.time()
    producer = ConfluentProducer({"bootstrap.servers": broker.bootstrap,
                                  "transactional.id": "e2e-txn"})
    try:
        producer.init_transactions(60)
        raise AssertionError("a transaction was begun")
    except KafkaException as e:
        error = e.args[0]
        assert error.fatal() and error.code() == 53, error
    assert time.time() - started < 10
    try:
        KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="e2e-txn-kp",
                      max_block_ms=20000).init_transactions()
        raise AssertionError("kafka-python began a transaction")
    except TransactionalIdAuthorizationFailedError:
        pass
    log = open(broker.log_path).read()
    assert "transactions are not supported" in log


def test_r_log_4_confluent_producer_acks_all_and_every_message_read_once_at_its_offset(broker):
    topic = "bulk"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    admin.close()
    total = 100_000
    acked = {}
    errors = []

    def delivered(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[(msg.partition(), msg.offset())] = msg.value()

    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(total):
        while True:
            try:
                producer.produce(topic, value=b"m%06d" % i, partition=i % 3, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors, errors[:5]
    assert len(acked) == total
    assert sorted(acked.values()) == sorted(b"m%06d" % i for i in range(total))
    seen = consume_all(broker.bootstrap, topic, 3, total)
    assert seen == acked, f"{len(seen)} read back, {len(acked)} acknowledged"
    # librdkafka pipelines many produce requests per connection: within a partition
    # the log must keep the order they were sent in.
    for p in range(3):
        values = [v for (part, _), v in sorted(seen.items()) if part == p]
        assert values == sorted(values), f"partition {p} out of order"


def test_r_wire_2_kafka_python_default_idempotent_producer_works(broker):
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)  # idempotent by default
    futures = [producer.send("idem", b"v%d" % i) for i in range(100)]
    offsets = [f.get(timeout=30).offset for f in futures]
    producer.close()
    assert offsets == list(range(100))
    seen = consume_all(broker.bootstrap, "idem", 1, 100)
    assert [seen[(0, o)] for o in range(100)] == [b"v%d" % i for i in range(100)]


def test_r_recover_2_kill_9_during_acks_all_produce_loses_no_acknowledged_message(broker_factory, tmp_path):
    data = tmp_path / "crashdata"
    b = broker_factory(data)
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    admin.create_topics([NewTopic("crash", num_partitions=2, replication_factor=1,
                                  topic_configs={"retention.ms": "86400000"})])
    admin.close()
    acked = {}
    lock = threading.Lock()
    stop = threading.Event()

    def produce():
        producer = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 1,
                             "message.timeout.ms": 3000, "retries": 0})

        def delivered(err, msg):
            if err is None:
                with lock:
                    acked[(msg.partition(), msg.offset())] = msg.value()
        i = 0
        while not stop.is_set():
            try:
                producer.produce("crash", value=b"c%07d" % i, partition=i % 2, on_delivery=delivered)
                i += 1
            except BufferError:
                pass
            producer.poll(0.001)
        producer.flush(5)

    t = threading.Thread(target=produce)
    t.start()
    deadline = time.time() + 30
    while time.time() < deadline:
        with lock:
            if len(acked) >= 2000:
                break
        time.sleep(0.01)
    b.kill9()  # mid-produce
    stop.set()
    t.join(30)
    with lock:
        acked_now = dict(acked)
    assert len(acked_now) >= 2000

    restarted = time.time()
    b2 = broker_factory(data, port=b.port)
    listed = None
    while time.time() - restarted < 10:
        out = kcat("-b", b2.bootstrap, "-L", "-m", "1")
        if f"broker 1 at {b2.bootstrap}" in out.stdout:
            listed = time.time() - restarted
            break
        time.sleep(0.02)
    assert listed is not None and listed < 2.0, f"Metadata listed the broker after {listed}s"

    from kafka.admin import ConfigResource, ConfigResourceType
    admin = KafkaAdminClient(bootstrap_servers=b2.bootstrap)
    assert "crash" in admin.list_topics(), "the topic survived"
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "crash")])
    assert configs["topic"]["crash"]["retention.ms"]["value"] == "86400000", "its config survived"
    admin.close()
    seen = consume_all(b2.bootstrap, "crash", 2, len(acked_now))
    missing = [k for k in acked_now if seen.get(k) != acked_now[k]]
    assert not missing, f"{len(missing)} acknowledged messages lost or changed, e.g. {missing[:5]}"


def test_r_wire_2_kafka_python_admin_configs_partitions_and_delete_records(broker):
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions
    from kafka.errors import InvalidConfigurationError
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic("cfg", num_partitions=1, replication_factor=1,
                                      topic_configs={"retention.ms": "123456"})])
        # kafka-python 3 returns {type: {name: {config: {...}}}}, non-default ones.
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "cfg")])
        entry = described["topic"]["cfg"]["retention.ms"]
        assert entry["value"] == "123456" and entry["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "cfg", configs={"retention.ms": "999"})])
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "cfg")])
        assert described["topic"]["cfg"]["retention.ms"]["value"] == "999"
        # A behaviour Chronik does not implement is refused, not silently stored.
        try:
            admin.create_topics([NewTopic("tiered", 1, 1, topic_configs={"remote.storage.enable": "true"})])
            raise AssertionError("remote.storage.enable=true was accepted")
        except InvalidConfigurationError:
            pass
        assert "tiered" not in admin.list_topics()
        admin.create_partitions({"cfg": NewPartitions(total_count=3)})
        assert len(admin.describe_topics(["cfg"])[0]["partitions"]) == 3
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(10):
        producer.send("cfg", b"r%d" % i, partition=0).get(timeout=10)
    producer.close()
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        result = admin.delete_records({TopicPartition("cfg", 0): 4})
        assert list(result.values())[0]["low_watermark"] == 4
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    tp = TopicPartition("cfg", 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    assert consumer.position(tp) == 4
    consumer.close()


def test_r_wire_19_describe_log_dirs_reports_each_partition_log_size(broker):
    """kafka-python's describe_log_dirs (DescribeLogDirs, as `kafka-log-dirs.sh`):
    the broker's log directory with every partition log it holds and its size, the
    sizes growing with what was written, and only what was asked for when asked."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic("sized", num_partitions=2, replication_factor=1),
                             NewTopic("other", num_partitions=1, replication_factor=1)])
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        for i in range(200):
            producer.send("sized", b"x" * 1000, partition=0).get(timeout=10)
        producer.close()

        def sizes(asked=None):
            # kafka-python 3: one dict per broker asked.
            (answer,) = admin.describe_log_dirs(asked)
            (log_dir,) = answer["log_dirs"]
            assert log_dir["error_code"] == 0, log_dir
            assert log_dir["log_dir"].endswith("/logs"), log_dir["log_dir"]
            return log_dir, {(t["name"], p["partition_index"]): p
                             for t in log_dir["topics"] for p in t["partitions"]}

        log_dir, every = sizes()
        assert {("sized", 0), ("sized", 1), ("other", 0)} <= set(every), every
        assert every[("sized", 0)]["partition_size"] >= 200 * 1000, every
        assert every[("sized", 1)]["partition_size"] < 1000, every
        assert all(p["offset_lag"] == 0 and not p["is_future_key"] for p in every.values())
        if "total_bytes" in log_dir:
            assert 0 < log_dir["usable_bytes"] <= log_dir["total_bytes"], log_dir
        _, asked = sizes({"sized": [1], "missing": [0]})
        assert set(asked) == {("sized", 1)}, asked
    finally:
        admin.close()


def test_r_ops_1_health_and_prometheus_metrics(broker):
    import urllib.request

    def get(path):
        with urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}{path}", timeout=5) as r:
            return r.status, r.read().decode()

    deadline = time.time() + 10
    while True:
        try:
            status, body = get("/health")
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    assert (status, body) == (200, "ok\n")
    kcat("-b", broker.bootstrap, "-P", "-t", "metered", input="a\nb\nc\n")
    _, metrics = get("/metrics")
    lines = dict(l.rsplit(" ", 1) for l in metrics.splitlines() if l and not l.startswith("#"))
    assert int(lines['chronik_requests_total{api="Produce"}']) >= 1
    assert int(lines['chronik_log_end_offset{topic="metered",partition="0"}']) == 3
    assert int(lines["chronik_log_fsync_seconds_count"]) >= 1
    assert int(lines["chronik_raft_commit_index"]) >= 1
    assert int(lines["chronik_bytes_in_total"]) > 0 and int(lines["chronik_bytes_out_total"]) > 0


def test_r_log_1_compressed_batches_are_stored_as_sent_and_read_back(broker):
    from confluent_kafka import Consumer
    for codec in ["gzip", "lz4", "zstd", "snappy"]:
        topic = f"compressed-{codec}"
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                             "compression.type": codec, "linger.ms": 20})
        for i in range(500):
            producer.produce(topic, value=(b"%s-%04d " % (codec.encode(), i)) * 20)
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"c-{codec}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([topic])
        got = []
        deadline = time.time() + 30
        while len(got) < 500 and time.time() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
        consumer.close()
        assert got == [(b"%s-%04d " % (codec.encode(), i)) * 20 for i in range(500)], codec


def test_r_ops_2_sigterm_flushes_and_exits_cleanly(broker_factory, tmp_path):
    data = tmp_path / "termdata"
    b = broker_factory(data)
    producer = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    for i in range(1000):
        producer.produce("term", b"t%d" % i)
    assert producer.flush(30) == 0
    assert b.stop() == 0, "SIGTERM must exit 0"
    b2 = broker_factory(data, port=b.port)
    seen = consume_all(b2.bootstrap, "term", 1, 1000)
    assert [seen[(0, o)] for o in range(1000)] == [b"t%d" % i for i in range(1000)]


def test_r_wire_11_confluent_admin_topic_configs_catalogue(broker):
    from confluent_kafka import Consumer, KafkaException
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                       ConfigSource, NewTopic as CNewTopic, ResourceType)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    # librdkafka sends CreateTopics to the controller it saw in Metadata; a broker
    # not yet registered names none (issue 14, first contact).
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            if admin.list_topics(timeout=5).controller_id >= 0:
                break
        except KafkaException:
            pass
        time.sleep(0.1)
    configs = {"compression.type": "zstd", "message.format.version": "2.8",
               "message.timestamp.type": "LogAppendTime", "retention.ms": "3600000",
               "min.cleanable.dirty.ratio": "0.3", "segment.jitter.ms": "10"}
    admin.create_topics([CNewTopic("catalogue", 1, 1, config=configs)])["catalogue"].result(15)

    def describe():
        resource = ConfigResource(ResourceType.TOPIC, "catalogue")
        return admin.describe_configs([resource], request_timeout=15)[resource].result(15)

    described = describe()
    assert len(described) >= 35, sorted(described)
    for name, value in configs.items():
        assert described[name].value == value, name
        assert described[name].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, name
    assert described["segment.ms"].value == "604800000"
    assert described["segment.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert described["cleanup.policy"].is_default
    synonyms = described["retention.ms"].synonyms
    assert "retention.ms" in synonyms and "log.retention.ms" in synonyms, synonyms

    def alter(*entries):
        resource = ConfigResource(ResourceType.TOPIC, "catalogue", incremental_configs=list(entries))
        return admin.incremental_alter_configs([resource])[resource].result(15)

    alter(ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
          ConfigEntry("segment.jitter.ms", None, incremental_operation=AlterConfigOpType.DELETE))
    described = describe()
    assert described["retention.ms"].value == "7200000"
    assert described["segment.jitter.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    for bad in [ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET),
                ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET),
                ConfigEntry("cleanup.policy", "archive", incremental_operation=AlterConfigOpType.APPEND)]:
        try:
            alter(bad)
            raise AssertionError(f"{bad.name}={bad.value} was accepted")
        except KafkaException as e:
            assert e.args[0].code() == 40, e  # INVALID_CONFIG
    assert describe()["cleanup.policy"].value == "delete"

    # The topic's codec and timestamp type apply to what a gzip producer sends.
    producer = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "gzip",
                         "linger.ms": 20})
    before = int(time.time() * 1000)
    for i in range(50):
        producer.produce("catalogue", value=b"v%02d" % i, timestamp=1000 + i)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "catalogue",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(["catalogue"])
    got = []
    deadline = time.time() + 30
    while len(got) < 50 and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append(msg)
    consumer.close()
    assert [m.value() for m in got] == [b"v%02d" % i for i in range(50)]
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
    assert all(m.timestamp()[0] == TIMESTAMP_LOG_APPEND_TIME and m.timestamp()[1] >= before
               for m in got)
    stored = broker_log_codecs(broker, "catalogue")
    assert stored and set(stored) == {4}, stored  # zstd


def broker_log_codecs(broker, topic):
    """The codec of every batch in the partition's first segment, read from disk."""
    import glob
    import struct
    codecs = []
    for path in sorted(glob.glob(f"{broker.data_dir}/**/{topic}-0/*.log", recursive=True)):
        data = open(path, "rb").read()
        pos = 0
        while pos + 8 <= len(data):
            (length,) = struct.unpack(">I", data[pos:pos + 4])
            batch = data[pos + 8:pos + 8 + length]
            (attributes,) = struct.unpack(">h", batch[21:23])
            codecs.append(attributes & 7)
            pos += 8 + length
    return codecs


def test_r_log_15_confluent_offsets_for_times_reads_record_timestamps(broker):
    from confluent_kafka import Consumer, TopicPartition as CTopicPartition
    producer = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "zstd",
                         "linger.ms": 50})
    base = int(time.time() * 1000) - 60_000
    for i in range(20):
        producer.produce("by-time", value=b"t%02d" % i, partition=0, timestamp=base + 1000 * i)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "by-time"})
    found = consumer.offsets_for_times([CTopicPartition("by-time", 0, base + 7500)], timeout=15)
    assert found[0].offset == 8, found
    consumer.close()


class _FetchVersions(logging.Handler):
    """Collects the versions of the FetchRequests librdkafka logs it sent."""

    def __init__(self):
        super().__init__()
        self.versions = set()

    def emit(self, record):
        m = re.search(r"Sent FetchRequest \(v(\d+)", record.getMessage())
        if m:
            self.versions.add(int(m.group(1)))


def test_r_wire_13_librdkafka_fetches_by_topic_id(broker):
    """librdkafka 2.x sends Fetch v13+ (topics by id, KIP-516) once the broker offers
    it: every message is read once at its offset, and a topic deleted and created again
    under its name is read afresh by a new consumer (the new id, none of the old records)."""
    from confluent_kafka import Consumer
    from confluent_kafka import TopicPartition as CkTopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic as CkNewTopic

    topic = "by-id"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})

    def create_and_fill(prefix, count):
        admin.create_topics([CkNewTopic(topic, 2, 1)])[topic].result(15)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        for i in range(count):
            producer.produce(topic, value=b"%s-%04d" % (prefix, i), partition=i % 2)
        assert producer.flush(30) == 0

    def read(expected):
        handler = _FetchVersions()
        logger = logging.getLogger(f"librdkafka-fetch-{uuid.uuid4()}")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": str(uuid.uuid4()),
                             "enable.auto.commit": False, "debug": "protocol"}, logger=logger)
        try:
            consumer.assign([CkTopicPartition(topic, p, 0) for p in range(2)])
            seen = {}
            deadline = time.time() + 30
            while len(seen) < expected and time.time() < deadline:
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                key = (msg.partition(), msg.offset())
                assert key not in seen, f"offset {key} delivered twice"
                seen[key] = msg.value()
            # Anything more (an old topic's records) would arrive here.
            end = time.time() + 1
            while time.time() < end:
                msg = consumer.poll(0.2)
                if msg is not None and not msg.error():
                    seen[(msg.partition(), msg.offset())] = msg.value()
            return seen, handler.versions
        finally:
            consumer.close()

    create_and_fill(b"old", 100)
    seen, versions = read(100)
    assert sorted(seen.values()) == [b"old-%04d" % i for i in range(100)]
    assert versions and min(versions) >= 13, f"Fetch versions sent: {versions}"
    admin.delete_topics([topic])[topic].result(15)
    create_and_fill(b"new", 10)
    seen, versions = read(10)
    assert sorted(seen.values()) == [b"new-%04d" % i for i in range(10)]
    assert min(versions) >= 13
