"""Three `chronik` nodes on one machine (spec/cluster.md): any start order, any delay,
metadata writes through any node, restarts."""
import itertools
import random
import socket
import struct
import time

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from conftest import Cluster, frame, kafka_string, read_frame


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


def partition_state(node, topic, partition=0):
    """(leader, isr) of a partition as Metadata via `node` reports it."""
    from confluent_kafka.admin import AdminClient
    md = AdminClient({"bootstrap.servers": node.bootstrap}).list_topics(topic, timeout=3)
    p = md.topics[topic].partitions[partition]
    return p.leader, sorted(p.isrs)


def produce(bootstrap, topic, values, timeout=30):
    from confluent_kafka import Producer
    acked, failed = {}, []

    def on_delivery(err, msg):
        if err is None:
            acked[msg.value().decode()] = msg.offset()
        else:
            failed.append((msg.value().decode(), err))

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "message.timeout.ms": timeout * 1000, "linger.ms": 0})
    for v in values:
        p.produce(topic, v.encode(), partition=0, on_delivery=on_delivery)
        p.poll(0)
    p.flush(timeout + 5)
    return acked, failed


def consume(bootstrap, topic, count, timeout=20):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.time()}",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.time() + timeout
    while len(got) < count and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append((m.offset(), m.value().decode()))
    c.close()
    return got


def test_r_repl_chaos_leader_killed_every_acknowledged_message_survives(cluster):
    """The earlier broker produced 0 of 50 after one of three nodes died (seed 000)."""
    from confluent_kafka.admin import AdminClient, NewTopic as CNewTopic
    for n in cluster.nodes:
        n.start()
    wait_for("3 brokers", lambda: brokers_seen(cluster.node(1).bootstrap) == [1, 2, 3], 10.0)
    admin = AdminClient({"bootstrap.servers": cluster.node(1).bootstrap})
    admin.create_topics([CNewTopic("chaos", 1, 3, config={"min.insync.replicas": "2"})])[
        "chaos"].result(10)
    wait_for("full ISR", lambda: len(partition_state(cluster.node(1), "chaos")[1]) == 3, 10.0)

    first = [f"m{i}" for i in range(50)]
    acked, failed = produce(cluster.node(1).bootstrap, "chaos", first)
    assert not failed and len(acked) == 50, failed

    leader, _ = partition_state(cluster.node(1), "chaos")
    cluster.node(leader).kill9()
    survivor = next(n for i, n in enumerate(cluster.nodes, 1) if i != leader)
    second = [f"m{i}" for i in range(50, 100)]
    acked2, failed2 = produce(survivor.bootstrap, "chaos", second)
    assert not failed2 and len(acked2) == 50, failed2
    acked.update(acked2)

    got = consume(survivor.bootstrap, "chaos", 100)
    assert [v for _, v in got] == first + second, got
    assert all(acked[v] == o for o, v in got), "every record at its acknowledged offset"

    # The killed leader comes back, truncates if it must, catches up, rejoins the ISR.
    cluster.node(leader).start()
    wait_for("the old leader back in the ISR",
             lambda: leader in partition_state(survivor, "chaos")[1], 20.0)


def test_r_group_3_a_group_keeps_its_offsets_when_its_coordinator_dies(cluster):
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic as CNewTopic
    for n in cluster.nodes:
        n.start()
    wait_for("3 brokers", lambda: brokers_seen(cluster.node(1).bootstrap) == [1, 2, 3], 10.0)
    admin = AdminClient({"bootstrap.servers": cluster.node(1).bootstrap})
    admin.create_topics([CNewTopic("grouped", 1, 3)])["grouped"].result(10)
    wait_for("full ISR", lambda: len(partition_state(cluster.node(1), "grouped")[1]) == 3, 10.0)
    acked, failed = produce(cluster.bootstrap, "grouped", [f"g{i}" for i in range(20)])
    assert not failed and len(acked) == 20

    def consumer():
        return Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "survivors",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": 6000})

    c = consumer()
    c.subscribe(["grouped"])
    got = []
    deadline = time.time() + 20
    while len(got) < 10 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value().decode())
    assert got[:10] == [f"g{i}" for i in range(10)]
    c.commit(offsets=[TopicPartition("grouped", 0, 10)], asynchronous=False)
    c.close()

    # Kill the group's coordinator; a new member resumes from the committed offset.
    # Every node names the same coordinator (one per group).
    from confluent_kafka.admin import AdminClient as A2
    named = set()
    for n in cluster.nodes:
        admin = A2({"bootstrap.servers": n.bootstrap})
        named.add(admin.describe_consumer_groups(["survivors"])["survivors"].result(10)
                  .coordinator.id)
    assert len(named) == 1, named
    coordinator = named.pop()
    cluster.node(coordinator).kill9()
    c2 = consumer()
    c2.subscribe(["grouped"])
    rest = []
    deadline = time.time() + 30
    while len(rest) < 10 and time.time() < deadline:
        m = c2.poll(0.5)
        if m is not None and not m.error():
            rest.append(m.value().decode())
    c2.close()
    assert rest == [f"g{i}" for i in range(10, 20)], rest


def earliest_offset(node, topic):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "watermarks"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=3)[0]
    finally:
        c.close()


def test_r_wire_5_deleted_records_stay_deleted_when_the_leader_dies_at_once(cluster):
    """DeleteRecords used to be answered once the leader had deleted; a follower learnt
    the new log start with its next fetch answer, so a leader killed right after the
    answer left a successor serving the deleted records again. Kafka answers once
    every live replica's log start passed the offset (DelayedDeleteRecords)."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic as CNewTopic
    for n in cluster.nodes:
        n.start()
    wait_for("3 brokers", lambda: brokers_seen(cluster.node(1).bootstrap) == [1, 2, 3], 10.0)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([CNewTopic("trimmed", 1, 3)])["trimmed"].result(10)
    wait_for("full ISR", lambda: len(partition_state(cluster.node(1), "trimmed")[1]) == 3, 10.0)
    acked, failed = produce(cluster.bootstrap, "trimmed", [f"t{i}" for i in range(30)])
    assert not failed and len(acked) == 30
    for target in (10, 20):
        leader, _ = partition_state(cluster.node(1), "trimmed")
        admin = AdminClient({"bootstrap.servers": cluster.node(leader).bootstrap})
        futures = admin.delete_records([TopicPartition("trimmed", 0, target)],
                                       operation_timeout=20, request_timeout=30)
        deleted = list(futures.values())[0].result(30)
        assert deleted.low_watermark == target, deleted
        cluster.node(leader).kill9()
        survivor = next(n for i, n in enumerate(cluster.nodes, 1) if i != leader)
        wait_for("a new leader", lambda: partition_state(survivor, "trimmed")[0]
                 not in (leader, -1), 20.0)
        successor = cluster.node(partition_state(survivor, "trimmed")[0])
        assert earliest_offset(successor, "trimmed") >= target
        cluster.node(leader).start()
        wait_for("the old leader back in the ISR",
                 lambda: leader in partition_state(survivor, "trimmed")[1], 20.0)


def test_r_wire_5_a_follower_away_during_a_deletion_catches_up_from_the_leaders_log_start(cluster):
    """A follower that was down while the leader deleted past its log end used to be
    refused OFFSET_OUT_OF_RANGE on every fetch and never came back into the ISR; it
    now starts its log afresh at the leader's log start, as Kafka's follower does."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic as CNewTopic
    for n in cluster.nodes:
        n.start()
    wait_for("3 brokers", lambda: brokers_seen(cluster.node(1).bootstrap) == [1, 2, 3], 10.0)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([CNewTopic("away", 1, 3)])["away"].result(10)
    wait_for("full ISR", lambda: len(partition_state(cluster.node(1), "away")[1]) == 3, 10.0)
    acked, failed = produce(cluster.bootstrap, "away", [f"a{i}" for i in range(10)])
    assert not failed and len(acked) == 10
    leader, isr = partition_state(cluster.node(1), "away")
    away = next(r for r in isr if r != leader)
    cluster.node(away).kill9()
    staying = cluster.node(leader)
    wait_for("the ISR without the stopped follower",
             lambda: away not in partition_state(staying, "away")[1], 30.0)
    acked, failed = produce(staying.bootstrap, "away", [f"a{i}" for i in range(10, 30)])
    assert not failed and len(acked) == 20
    admin = AdminClient({"bootstrap.servers": staying.bootstrap})
    futures = admin.delete_records([TopicPartition("away", 0, 25)],
                                   operation_timeout=30, request_timeout=40)
    assert list(futures.values())[0].result(40).low_watermark == 25
    cluster.node(away).start()
    wait_for("the follower back in the ISR",
             lambda: away in partition_state(staying, "away")[1], 30.0)
    staying.kill9()
    survivor = next(n for i, n in enumerate(cluster.nodes, 1) if i != leader)
    wait_for("a new leader", lambda: partition_state(survivor, "away")[0]
             not in (leader, -1), 20.0)
    successor = cluster.node(partition_state(survivor, "away")[0])
    assert earliest_offset(successor, "away") == 25
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": successor.bootstrap, "group.id": "after-away",
                  "enable.auto.commit": False})
    c.assign([TopicPartition("away", 0, 25)])
    got = []
    deadline = time.time() + 20
    while len(got) < 5 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append((m.offset(), m.value().decode()))
    c.close()
    assert got == [(o, f"a{o}") for o in range(25, 30)], got


def test_r_propose_2_proposals_on_followers_under_load_are_all_answered(cluster):
    """Seed 003: a follower's raw propose panicked raft-rs. Here three clients hammer
    CreateTopics (metadata proposals) on both followers and the controller while
    acks=all produce load runs: every request is answered (created, or a retriable
    error), no node dies, and every topic reported created exists everywhere."""
    import threading
    from kafka.errors import KafkaError
    for n in cluster.nodes:
        n.start()
    wait_for("3 brokers", lambda: brokers_seen(cluster.node(1).bootstrap) == [1, 2, 3], 10.0)
    created, refused, unanswered = [], [], []
    lock = threading.Lock()

    def hammer(node, prefix):
        admin = KafkaAdminClient(bootstrap_servers=node.bootstrap, request_timeout_ms=15000)
        for i in range(40):
            name = f"{prefix}-{i}"
            try:
                admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=3)])
                with lock:
                    created.append(name)
            except KafkaError as e:
                with lock:
                    refused.append((name, type(e).__name__))
            except Exception as e:  # noqa: BLE001 - a timeout or lost connection
                with lock:
                    unanswered.append((name, repr(e)))
        admin.close()

    load_stop = threading.Event()

    def load():
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
        while not load_stop.is_set():
            try:
                p.produce("load", b"x" * 100)
            except BufferError:
                pass
            p.poll(0.001)
        p.flush(10)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    threads = [threading.Thread(target=hammer, args=(n, f"n{i}")) for i, n in enumerate(cluster.nodes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    load_stop.set()
    loader.join(30)
    assert all(n.running for n in cluster.nodes), "a node died"
    assert not unanswered, unanswered[:5]
    assert all(kind in ("NotControllerError", "RequestTimedOutError", "TopicAlreadyExistsError")
               for _, kind in refused), refused[:5]
    assert len(created) >= 100, f"only {len(created)} of 120 created; refused {refused[:5]}"
    for n in cluster.nodes:
        missing = set(created) - topics_on(n)
        assert not missing, f"node {n.port} lacks {sorted(missing)[:5]}"


def create_topic_v0(name, timeout_ms):
    """A CreateTopics v0 frame for one topic of one partition and one replica."""
    body = (struct.pack(">i", 1) + kafka_string(name) + struct.pack(">ihii", 1, 1, 0, 0)
            + struct.pack(">i", timeout_ms))
    return frame(19, 0, 7, body)


def create_topic_error(payload):
    """The error code of the one topic of a CreateTopics v0 answer."""
    body = payload[4:]
    (name_length,) = struct.unpack(">h", body[4:6])
    (error,) = struct.unpack(">h", body[6 + name_length:8 + name_length])
    return error


def metadata_v1_controller(sock):
    """Asks Metadata v1 for no topics; the controller id and broker ids answered."""
    sock.sendall(frame(3, 1, 9, struct.pack(">i", 0)))
    body = read_frame(sock)[4:]
    (count,) = struct.unpack(">i", body[:4])
    at, brokers = 4, []
    for _ in range(count):
        (node_id,) = struct.unpack(">i", body[at:at + 4])
        (host_length,) = struct.unpack(">h", body[at + 4:at + 6])
        at += 6 + host_length + 4
        (rack_length,) = struct.unpack(">h", body[at:at + 2])
        at += 2 + max(rack_length, 0)
        brokers.append(node_id)
    (controller,) = struct.unpack(">i", body[at:at + 4])
    return controller, brokers


def test_r_start_2_a_node_alone_of_three_voters_serves_metadata_at_once(cluster):
    """Seeds 000 and 001: start-up steps that waited on an election or an apply left a
    node that never served. Node 1 of three voters starts alone: no leader can exist.
    Connected the moment its port opens, it answers Metadata at once and keeps
    answering, with no controller (-1), and it still answers once node 2 joins and
    a leader is elected."""
    first = cluster.node(1)
    first.start()
    with socket.create_connection(("127.0.0.1", first.port), timeout=5) as sock:
        for _ in range(3):
            controller, _ = metadata_v1_controller(sock)
            assert controller == -1, f"a controller ({controller}) with one voter of three"
            time.sleep(0.5)
        cluster.node(2).start()
        wait_for("a controller", lambda: metadata_v1_controller(sock)[0] in (1, 2), 10.0)


def test_r_propose_2_a_write_made_before_any_leader_waits_for_one(cluster):
    """CI of 2026-12-04: a CreateTopics reached a node that knew no leader (its
    pre-vote had cleared it) and was answered NOT_CONTROLLER at once, while a topic
    of the same request was created; kafka-python's one retry then failed on it.
    Here the request reaches node 1 the moment its port opens, alone of three voters:
    no leader can exist until a second node starts. The broker holds the write, as
    Kafka's forwarding to its controller does, and creates the topic once node 2 is
    up and a leader is elected (within the broker's metadata timeout of 5 s)."""
    first = cluster.node(1)
    first.start()
    with socket.create_connection(("127.0.0.1", first.port), timeout=15) as sock:
        sock.sendall(create_topic_v0("early", 10000))
        cluster.node(2).start()
        error = create_topic_error(read_frame(sock))
    assert error == 0, f"CreateTopics answered error {error} (41 is NOT_CONTROLLER)"
    cluster.node(3).start()
    for n in cluster.nodes:
        wait_for(f"the topic on node {n.port}", lambda: "early" in topics_on(n), 10.0)


def test_r_group_8_a_member_keeps_its_generation_when_the_coordinator_dies(cluster):
    """kill -9 of the group's coordinator in a 3-node cluster: the group moves to
    another broker, which resumes it from the replicated record; the live member's
    heartbeats and commits of its generation are accepted there, so its partition is
    not revoked, and it goes on consuming where it committed."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic as CNewTopic
    for n in cluster.nodes:
        n.start()
    wait_for("3 brokers", lambda: brokers_seen(cluster.node(1).bootstrap) == [1, 2, 3], 10.0)
    admin = AdminClient({"bootstrap.servers": cluster.node(1).bootstrap})
    admin.create_topics([CNewTopic("kept-generation", 1, 3)])["kept-generation"].result(10)
    wait_for("full ISR", lambda: len(partition_state(cluster.node(1), "kept-generation")[1]) == 3, 10.0)
    acked, failed = produce(cluster.bootstrap, "kept-generation", [f"k{i}" for i in range(10)])
    assert not failed and len(acked) == 10

    events = []
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "kept",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "session.timeout.ms": 10000, "heartbeat.interval.ms": 300})
    c.subscribe(["kept-generation"], on_assign=lambda _c, ps: events.append("assign"),
                on_revoke=lambda _c, ps: events.append("revoke"))

    def consume(n, timeout):
        got = []
        deadline = time.time() + timeout
        while len(got) < n and time.time() < deadline:
            m = c.poll(0.3)
            if m is not None and not m.error():
                got.append(m.value().decode())
                c.commit(message=m, asynchronous=False)
        return got

    try:
        assert consume(10, 30) == [f"k{i}" for i in range(10)]
        coordinator = admin.describe_consumer_groups(["kept"])["kept"].result(10).coordinator.id
        cluster.node(coordinator).kill9()
        survivor = next(n for n in cluster.nodes if n.running)
        # Kept in a name: a client dropped mid-call cancels its request.
        survivor_admin = AdminClient({"bootstrap.servers": survivor.bootstrap})
        wait_for("the group on another coordinator",
                 lambda: survivor_admin.describe_consumer_groups(["kept"])["kept"]
                 .result(10).coordinator.id != coordinator,
                 20.0)
        acked, failed = produce(survivor.bootstrap, "kept-generation", [f"k{i}" for i in range(10, 20)])
        assert not failed and len(acked) == 10
        assert consume(10, 40) == [f"k{i}" for i in range(10, 20)]
        assert events == ["assign"], f"the coordinator's death made the group rebalance: {events}"
    finally:
        c.close()


def test_r_repl_5_a_leader_that_lost_its_unsynced_tail_hands_over_on_restart(tmp_path):
    """Under --fsync-interval-ms a leader acknowledges before syncing. Its machine
    losing power is kill -9 plus the loss of every byte not yet synced: here the
    partition's segments are cut back to empty (the interval, 60 s, never came). The
    leader is back well within its session timeout; its registration must take it
    out of the ISR and hand its leadership to a follower, which holds every
    acknowledged record. Before R-REPL-5 it kept leading with an empty log and the
    followers truncated all 50 records away."""
    from confluent_kafka.admin import AdminClient, NewTopic as CNewTopic
    cluster = Cluster(tmp_path, extra_args=["--fsync-interval-ms", "60000",
                                            "--session-timeout-ms", "30000"])
    try:
        for n in cluster.nodes:
            n.start()
        wait_for("3 brokers", lambda: brokers_seen(cluster.node(1).bootstrap) == [1, 2, 3],
                 10.0)
        admin = AdminClient({"bootstrap.servers": cluster.node(1).bootstrap})
        admin.create_topics([CNewTopic("interval", 1, 3, config={"min.insync.replicas": "2"})])[
            "interval"].result(10)
        wait_for("full ISR", lambda: len(partition_state(cluster.node(1), "interval")[1]) == 3,
                 10.0)
        values = [f"v{i}" for i in range(50)]
        acked, failed = produce(cluster.node(1).bootstrap, "interval", values)
        assert not failed and len(acked) == 50, failed

        leader, _ = partition_state(cluster.node(1), "interval")
        old = cluster.node(leader)
        old.kill9()
        cut = sorted((old.data_dir / "logs" / "interval-0").glob("*.log"))
        assert cut, "the leader's segments"
        for segment in cut:
            segment.write_bytes(b"")
        old.start()
        survivor = next(n for i, n in enumerate(cluster.nodes, 1) if i != leader)
        new_leader, isr = wait_for(
            "a follower leads",
            lambda: (lambda s: s if s[0] not in (leader, -1) else None)(
                partition_state(survivor, "interval")),
            20.0)
        assert new_leader != leader, isr

        got = consume(survivor.bootstrap, "interval", 50)
        assert [v for _, v in got] == values, got
        assert all(acked[v] == o for o, v in got), "every record at its acknowledged offset"
        wait_for("the restarted broker back in the ISR",
                 lambda: leader in partition_state(survivor, "interval")[1], 30.0)
    finally:
        cluster.stop()


def test_r_repl_6_an_eligible_follower_leads_after_the_lone_leader_lost_power(tmp_path):
    """Under --fsync-interval-ms the ISR shrinks to the leader alone: one follower is
    stopped (ISR {leader, other}, at min.insync.replicas 2) and then the other (below
    it: that follower stays eligible to lead, KIP-966's ELR). While the ISR is below
    the minimum the high watermark stands still, so an acks=1 record is acknowledged
    but no consumer sees it. Then the leader loses power (kill -9, unsynced bytes
    gone) and restarts: it must not lead alone on a log that lost acknowledged
    records; the partition waits offline for the eligible follower, which leads on
    its return with every acknowledged record. Before R-REPL-6 the restarted leader
    led alone and the returning follower truncated all 50 records away (the
    simulator's --faults interval seed 50210 is this order). Five nodes, so that the
    metadata group keeps a quorum with two of the partition's replicas down."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic as CNewTopic
    cluster = Cluster(tmp_path, n=5, extra_args=["--fsync-interval-ms", "60000",
                                                 "--session-timeout-ms", "3000"])
    try:
        for n in cluster.nodes:
            n.start()
        wait_for("5 brokers", lambda: brokers_seen(cluster.node(1).bootstrap) == [1, 2, 3, 4, 5],
                 20.0)
        admin = AdminClient({"bootstrap.servers": cluster.node(1).bootstrap})
        admin.create_topics([CNewTopic("elr", 1, replica_assignment=[[1, 2, 3]],
                                       config={"min.insync.replicas": "2"})])["elr"].result(10)
        wait_for("full ISR", lambda: len(partition_state(cluster.node(4), "elr")[1]) == 3, 10.0)
        values = [f"v{i}" for i in range(50)]
        acked, failed = produce(cluster.node(4).bootstrap, "elr", values)
        assert not failed and len(acked) == 50, failed

        leader, _ = partition_state(cluster.node(4), "elr")
        first, eligible = [i for i in (1, 2, 3) if i != leader]
        for gone, isr in ((first, sorted([leader, eligible])), (eligible, [leader])):
            cluster.node(gone).kill9()
            wait_for(f"ISR {isr}", lambda isr=isr: partition_state(cluster.node(4), "elr")
                     == (leader, isr), 20.0)

        p = Producer({"bootstrap.servers": cluster.node(leader).bootstrap, "acks": "1",
                      "linger.ms": 0})
        results = []
        p.produce("elr", b"unseen", partition=0, on_delivery=lambda e, m: results.append(e))
        p.flush(10)
        assert results == [None], results
        seen = consume(cluster.node(leader).bootstrap, "elr", 51, timeout=5)
        assert [v for _, v in seen] == values, "the high watermark stood still below the minimum"

        old = cluster.node(leader)
        old.kill9()
        for segment in sorted((old.data_dir / "logs" / "elr-0").glob("*.log")):
            segment.write_bytes(b"")
        old.start()
        wait_for("the partition offline, waiting for its eligible replica",
                 lambda: partition_state(cluster.node(4), "elr")[0] == -1, 20.0)
        cluster.node(eligible).start()
        wait_for("the eligible follower leads",
                 lambda: partition_state(cluster.node(4), "elr")[0] == eligible, 20.0)
        got = consume(cluster.node(eligible).bootstrap, "elr", 50)
        assert [v for _, v in got] == values, got
        assert all(acked[v] == o for o, v in got), "every record at its acknowledged offset"
        cluster.node(first).start()
        wait_for("every replica back in the ISR",
                 lambda: partition_state(cluster.node(4), "elr")[1] == [1, 2, 3], 30.0)
    finally:
        cluster.stop()
