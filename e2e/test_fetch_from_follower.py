"""Fetch from a follower (KIP-392, spec/wire.md R-WIRE-17), as a consumer in another
rack than the partition's leader sees it: three processes, each in a rack of its own,
with Kafka's RackAwareReplicaSelector. A confluent-kafka consumer that names the rack
of a follower is sent there by the leader and reads every record from it, in order;
librdkafka's own statistics say which broker the bytes came from."""
import json

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from conftest import Cluster
from test_cluster import brokers_seen, partition_state, wait_for

SELECTOR = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
COUNT = 2000


def racked_cluster(tmp_path):
    cluster = Cluster(tmp_path, extra_args=["--replica-selector-class", SELECTOR],
                      node_args=lambda node_id: ["--broker-rack", f"rack-{node_id}"])
    for n in cluster.nodes:
        n.start()
    wait_for("3 brokers", lambda: brokers_seen(cluster.node(1).bootstrap) == [1, 2, 3], 15.0)
    return cluster


def produce(bootstrap, topic):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(COUNT):
        p.produce(topic, b"%06d" % i, partition=0)
        p.poll(0)
    assert p.flush(30) == 0


def consume_in_rack(bootstrap, topic, rack):
    """The values read with client.rack `rack`, and the bytes received per broker id."""
    received = {}

    def on_stats(text):
        for name, b in json.loads(text)["brokers"].items():
            if b.get("nodeid", -1) >= 0:
                received[b["nodeid"]] = b["rxbytes"]

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"in-{rack}",
                  "client.rack": rack, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "statistics.interval.ms": 200,
                  "stats_cb": on_stats})
    c.subscribe([topic])
    values = []
    try:
        wait_for("every record", lambda: (values.extend(
            m.value() for m in c.consume(100, 0.5) if not m.error()) or len(values) >= COUNT),
            60.0)
        c.poll(0.5)  # one more statistics report after the last fetch
    finally:
        c.close()
    return values, received


def test_r_wire_17_a_consumer_reads_from_the_in_sync_replica_in_its_rack(tmp_path):
    cluster = racked_cluster(tmp_path)
    try:
        bootstrap = cluster.node(1).bootstrap
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("racked", 1, 3)])["racked"].result(15)
        wait_for("full ISR", lambda: len(partition_state(cluster.node(1), "racked")[1]) == 3, 15.0)
        produce(bootstrap, "racked")
        leader, _ = partition_state(cluster.node(1), "racked")
        follower = next(i for i in (1, 2, 3) if i != leader)
        other = next(i for i in (1, 2, 3) if i not in (leader, follower))

        described = admin.describe_configs([ConfigResource("BROKER", str(follower))])
        configs = next(iter(described.values())).result(15)
        assert configs["broker.rack"].value == f"rack-{follower}"

        values, received = consume_in_rack(bootstrap, "racked", f"rack-{follower}")
        assert values[:COUNT] == [b"%06d" % i for i in range(COUNT)], "every record, in order"
        assert received.get(follower, 0) > COUNT * 6, received
        assert received.get(follower, 0) > 10 * received.get(leader, 0), received
        assert received.get(other, 0) < COUNT, received
    finally:
        cluster.stop()
