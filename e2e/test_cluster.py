"""Three `chronik` nodes on one machine (spec/cluster.md): any start order, any delay,
metadata writes through any node, restarts."""
import itertools
import random
import time

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from conftest import Cluster


def brokers_seen(bootstrap):
    """The broker ids kafka-python's cluster metadata lists, via one node."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        return sorted(b["broker_id"] for b in admin.describe_cluster()["brokers"])
    finally:
        admin.close()


def wait_for(what, check, timeout):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - a node still starting refuses or times out
            last = e
        time.sleep(0.05)
    raise AssertionError(f"{what} not within {timeout}s (last: {last!r})")


def topics_on(node):
    admin = KafkaAdminClient(bootstrap_servers=node.bootstrap, request_timeout_ms=2000)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def controller_of(node):
    admin = KafkaAdminClient(bootstrap_servers=node.bootstrap, request_timeout_ms=2000)
    try:
        return admin.describe_cluster()["controller_id"]
    finally:
        admin.close()


@pytest.mark.parametrize("order", list(itertools.permutations([1, 2, 3])))
def test_r_start_3_three_nodes_in_any_order_register_and_keep_their_metadata(tmp_path, order):
    rng = random.Random(sum(o * 10 ** i for i, o in enumerate(order)))
    cluster = Cluster(tmp_path)
    try:
        for node_id in order:
            time.sleep(rng.uniform(0, 0.5))
            cluster.node(node_id).start()
        last_start = time.time()
        for n in cluster.nodes:
            wait_for(f"3 brokers listed by node {n.port}",
                     lambda n=n: brokers_seen(n.bootstrap) == [1, 2, 3], 5.0)
        took = time.time() - last_start
        assert took < 5.0, f"3 brokers listed {took:.2f}s after the last start"

        # A metadata write through a node that is not the controller is forwarded.
        controller = wait_for("a controller", lambda: controller_of(cluster.node(1)), 5.0)
        follower = next(n for i, n in enumerate(cluster.nodes, 1) if i != controller)
        admin = KafkaAdminClient(bootstrap_servers=follower.bootstrap, request_timeout_ms=5000)
        admin.create_topics([NewTopic("orders", num_partitions=3, replication_factor=3)])
        admin.close()
        for n in cluster.nodes:
            wait_for(f"topic on node {n.port}", lambda n=n: "orders" in topics_on(n), 5.0)

        # Restart all three: brokers and topics are still there.
        for n in cluster.nodes:
            assert n.stop() == 0
        for node_id in order:
            cluster.node(node_id).start()
        for n in cluster.nodes:
            wait_for(f"3 brokers listed again by node {n.port}",
                     lambda n=n: brokers_seen(n.bootstrap) == [1, 2, 3], 5.0)
            assert "orders" in topics_on(n)
    finally:
        cluster.stop()
