"""A damaged metadata Raft log in a cluster, as an operator meets it (issue 12,
spec/recover.md R-RECOVER-9): one byte flipped in the middle of a stopped node's
metadata log. The node starts anyway, says where the damage is, fetches what it lost
from its peers without voting meanwhile, and then holds every topic and votes again."""
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Cluster
from test_cluster import brokers_seen, controller_of, topics_on, wait_for
from test_storage_repair import flip_byte

TOPICS = [f"t{i}" for i in range(8)]


def create(bootstrap, names, replicas=3):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(n, 1, replicas) for n in names]).values():
        try:
            future.result(15)
        except KafkaException as e:
            # A retry of a creation whose answer was lost.
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return True


def test_r_recover_9_a_node_with_a_damaged_metadata_log_rejoins_and_repairs_it(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        for n in cluster.nodes:
            n.start()
        wait_for("3 brokers", lambda: brokers_seen(cluster.node(1).bootstrap) == [1, 2, 3], 15.0)
        create(cluster.node(1).bootstrap, TOPICS)
        damaged = cluster.node(3)
        wait_for("node 3 has every topic", lambda: set(TOPICS) <= topics_on(damaged), 15.0)
        assert damaged.stop() == 0
        wal = damaged.data_dir / "metadata" / "wal.log"
        flip_byte(wal, wal.stat().st_size // 2)

        damaged.start()
        log = Path(damaged.log_path)
        wait_for("the damage named", lambda: "damaged, not torn" in log.read_text(), 15.0)
        wait_for("the repair over", lambda: "repaired from the leader" in log.read_text(), 30.0)
        assert not (damaged.data_dir / "metadata" / "repair").exists()
        create(cluster.node(1).bootstrap, ["after"])
        wait_for("node 3 has every topic again",
                 lambda: set(TOPICS) | {"after"} <= topics_on(damaged), 15.0)

        # It votes again: with one other node stopped, the two left need its vote to
        # elect a leader (unless it leads already), and the cluster takes writes.
        controller = controller_of(damaged)
        stopped = cluster.node(controller if controller != 3 else 1)
        stopped.stop()
        wait_for("a topic created with two nodes",
                 lambda: create(damaged.bootstrap, ["two-left"], replicas=2), 30.0)
        assert "two-left" in topics_on(damaged)
    finally:
        cluster.stop()
