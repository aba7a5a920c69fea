"""A Jepsen-style fault run against three `chronik` nodes (spec/cluster.md, R-REPL-*,
I-6): producers write unique values with acks=all while a nemesis kills (-9),
pauses (SIGSTOP/SIGCONT) and restarts nodes for at least 60 s; after healing, every
partition is drained and checked. Fails on any acknowledged write lost or moved,
any value read twice, two values at one offset, or acknowledged offsets going
backwards for one producer within a partition; and (as in every cluster test,
`Cluster.stop`) every metadata Raft step the brokers traced must be one the Raft
rules allow (C-10). Prints the counts."""
import os
import random
import signal
import threading
import time
from collections import defaultdict

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Cluster
from test_cluster import brokers_seen, partition_state, wait_for

TOPIC = "jepsen"
PARTITIONS = 3
RUN_SECONDS = float(os.environ.get("CHRONIK_JEPSEN_SECONDS", "60"))


class Writer(threading.Thread):
    def __init__(self, cluster, name, stop):
        super().__init__(daemon=True)
        self.cluster, self.name, self.stop = cluster, name, stop
        self.acked = {}  # value -> (partition, offset)
        self.ack_order = defaultdict(list)  # partition -> offsets in acknowledgement order
        self.failed = 0
        self.sent = 0
        self.lock = threading.Lock()

    def on_delivery(self, err, msg):
        # The offset is None when librdkafka acknowledges a message implicitly: a later
        # batch of this producer on the partition was acknowledged while this one's own
        # answer was lost to a disconnect (rd_kafka_dr_implicit_ack), so the broker
        # holds it below that batch but the client never learnt where.
        with self.lock:
            if err is None:
                self.acked[msg.value().decode()] = (msg.partition(), msg.offset())
                if msg.offset() is not None:
                    self.ack_order[msg.partition()].append(msg.offset())
            else:
                self.failed += 1

    def producer(self):
        bootstrap = ",".join(n.bootstrap for n in self.cluster.nodes)
        return Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "message.timeout.ms": 10000,
                         "linger.ms": 5, "max.in.flight.requests.per.connection": 5})

    def run(self):
        p = self.producer()
        i = 0
        while not self.stop.is_set():
            value = f"{self.name}-{i}"
            try:
                p.produce(TOPIC, value.encode(), partition=i % PARTITIONS,
                          on_delivery=self.on_delivery)
                self.sent += 1
                i += 1
            except BufferError:
                pass
            p.poll(0.005)
        p.flush(30)


def nemesis(cluster, stop, rng, log):
    """One fault at a time, so a quorum of nodes is always up."""
    while not stop.is_set():
        time.sleep(rng.uniform(2, 4))
        if stop.is_set():
            break
        victim = rng.choice(cluster.nodes)
        fault = rng.choice(["kill", "pause"])
        log.append((round(time.time(), 1), fault, victim.port))
        if fault == "kill":
            victim.kill9()
            time.sleep(rng.uniform(1, 3))
            victim.start()
        else:
            victim.proc.send_signal(signal.SIGSTOP)
            time.sleep(rng.uniform(1, 3))
            victim.proc.send_signal(signal.SIGCONT)


def drain(cluster, partition):
    bootstrap = ",".join(n.bootstrap for n in cluster.nodes)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"drain-{time.time()}",
                  "enable.auto.commit": False})
    try:
        _, high = c.get_watermark_offsets(TopicPartition(TOPIC, partition), timeout=10)
        c.assign([TopicPartition(TOPIC, partition, 0)])
        read = []
        deadline = time.time() + 60
        while (not read or read[-1][0] < high - 1) and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                read.append((m.offset(), m.value().decode()))
        return high, read
    finally:
        c.close()


def test_i_6_fault_run_loses_no_acknowledged_write(tmp_path):
    rng = random.Random(int(os.environ.get("CHRONIK_JEPSEN_SEED", "7")))
    cluster = Cluster(tmp_path)
    stop = threading.Event()
    faults = []
    try:
        for n in cluster.nodes:
            n.start()
        wait_for("3 brokers", lambda: brokers_seen(cluster.node(1).bootstrap) == [1, 2, 3], 10)
        admin = AdminClient({"bootstrap.servers": cluster.node(1).bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3,
                                      config={"min.insync.replicas": "2"})])[TOPIC].result(10)
        for p in range(PARTITIONS):
            wait_for("full ISR", lambda p=p: len(partition_state(cluster.node(1), TOPIC, p)[1]) == 3,
                     10)

        writers = [Writer(cluster, f"w{i}", stop) for i in range(2)]
        for w in writers:
            w.start()
        chaos = threading.Thread(target=nemesis, args=(cluster, stop, rng, faults), daemon=True)
        chaos.start()
        time.sleep(RUN_SECONDS)
        stop.set()
        chaos.join(30)
        for w in writers:
            w.join(60)

        # Heal: every node running, every partition with its full ISR again.
        for n in cluster.nodes:
            if not n.running:
                n.start()
            else:
                n.proc.send_signal(signal.SIGCONT)
        for p in range(PARTITIONS):
            wait_for(f"partition {p} healed",
                     lambda p=p: len(partition_state(cluster.node(1), TOPIC, p)[1]) == 3, 30)

        acked = {}
        for w in writers:
            acked.update(w.acked)
        at = {}  # (partition, offset) -> value
        read_at = {}  # value -> (partition, offset)
        seen = defaultdict(int)
        highs = {}
        for p in range(PARTITIONS):
            highs[p], read = drain(cluster, p)
            for offset, value in read:
                at[(p, offset)] = value
                read_at[value] = (p, offset)
                seen[value] += 1

        def kept(value, partition, offset):
            if offset is None:
                return read_at.get(value, (None,))[0] == partition
            return at.get((partition, offset)) == value

        lost = {v: po for v, po in acked.items() if not kept(v, *po)}
        implicit = sum(1 for _, o in acked.values() if o is None)
        duplicates = {v: n for v, n in seen.items() if n > 1}
        collisions = defaultdict(set)
        for v, po in acked.items():
            if po[1] is not None:
                collisions[po].add(v)
        two_at_one = {po: vs for po, vs in collisions.items() if len(vs) > 1}
        backwards = []
        for w in writers:
            for p, offsets in w.ack_order.items():
                if any(b <= a for a, b in zip(offsets, offsets[1:])):
                    backwards.append((w.name, p))
        sent = sum(w.sent for w in writers)
        failed = sum(w.failed for w in writers)
        print(f"\nfaults: {len(faults)} {faults}")
        print(f"sent {sent}, acknowledged {len(acked)} ({implicit} without an offset), "
              f"failed or indeterminate {failed}, "
              f"read {sum(seen.values())} (high watermarks {highs}); lost {len(lost)}, "
              f"duplicates {len(duplicates)}, two values at one offset {len(two_at_one)}, "
              f"offsets backwards {len(backwards)}")
        assert len(faults) >= RUN_SECONDS / 6, faults
        assert len(acked) > 1000, "the run made progress"
        assert not lost, f"acknowledged writes lost or moved: {list(lost.items())[:10]}"
        where = {v: [po for po, x in at.items() if x == v] for v in list(duplicates)[:10]}
        assert not duplicates, f"values read twice, at: {where}; acknowledged at: " \
            f"{ {v: acked.get(v) for v in where} }"
        assert not two_at_one, f"two acknowledged values at one offset: {two_at_one}"
        assert not backwards, f"acknowledged offsets went backwards: {backwards}"
    finally:
        stop.set()
        for n in cluster.nodes:
            if n.running:
                n.proc.send_signal(signal.SIGCONT)
        cluster.stop()
