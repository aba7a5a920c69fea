"""A data directory serves the node and voter set it was first started with
(R-START-5), and /health says ok only once this start is registered (R-OPS-1).
Exploratory testing (2026-12-07) found both missing: node 1 restarted with --voters
naming only itself elected itself, fenced its peers, took acks=1 writes no peer ever
saw, and stayed a cluster of its own when started again with the right list; and a
node restarted where no quorum was reachable answered /health `ok` while every write
it took timed out."""

import time
import urllib.error
import urllib.request

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from conftest import Broker, Cluster


def wait_for(what, check, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def health(node):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/health", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def start_healthy(cluster):
    for n in cluster.nodes:
        n.start()
    wait_for("every node healthy", lambda: all(health(n)[0] == 200 for n in cluster.nodes), 30)


def refused_start(node, args):
    """Starts `node` with `args` in place of its own; the exit code and the log."""
    saved = node.extra_args
    node.extra_args = args
    try:
        node.start()
        node.stop()
        raise AssertionError(f"the start with {args} was not refused")
    except RuntimeError:
        pass
    finally:
        node.extra_args = saved
        if getattr(node, "log", None):
            node.log.close()
            node.log = None
    return node.proc.returncode, node.log_path.read_text()


def test_r_start_5_a_single_node_refuses_another_node_id(tmp_path):
    node = Broker(tmp_path / "data").start()
    admin = KafkaAdminClient(bootstrap_servers=node.bootstrap)
    admin.create_topics([NewTopic("kept", 1, 1)])
    admin.close()
    node.stop()
    code, log = refused_start(node, [*node.extra_args, "--node-id", "7"])
    assert code != 0
    assert "belongs to node 1" in log and "--node-id 1" in log, log[-2000:]
    node.start()
    try:
        admin = KafkaAdminClient(bootstrap_servers=node.bootstrap)
        assert "kept" in admin.list_topics()
        admin.close()
    finally:
        node.stop()


def test_r_start_5_a_voter_restarted_with_another_voter_set_is_refused(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        start_healthy(cluster)
        one = cluster.node(1)
        one.stop()
        own_peer = next(v for v in one.extra_args[one.extra_args.index("--voters") + 1].split(",")
                        if v.startswith("1@"))
        alone = list(one.extra_args)
        alone[alone.index("--voters") + 1] = own_peer
        code, log = refused_start(one, alone)
        assert code != 0
        assert "belongs to node 1 of the voters [1, 2, 3]" in log, log[-2000:]
        one.start()
        wait_for("node 1 back and healthy", lambda: health(one)[0] == 200, 30)
    finally:
        cluster.stop()


def test_r_ops_1_health_says_starting_until_this_start_is_registered(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        start_healthy(cluster)
        for n in cluster.nodes:
            n.stop()
        one = cluster.node(1)
        one.start()
        # Alone it replays its old registration but cannot apply this start's.
        seen = set()
        deadline = time.time() + 3
        while time.time() < deadline:
            status, body = health(one)
            seen.add(status)
            assert status != 200, f"a node without a quorum said {body!r}"
            time.sleep(0.1)
        assert 503 in seen, seen
        for n in cluster.nodes[1:]:
            n.start()
        wait_for("node 1 healthy once a quorum registers it",
                 lambda: health(one)[0] == 200, 30)
    finally:
        cluster.stop()
