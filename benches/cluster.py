#!/usr/bin/env python3
"""Cluster benchmarks (issue 5): three `chronik` processes on this machine.

  benches/cluster.py [--trials 10] [--messages 100000] [--size 1024]

1. Start to registered: from launching three nodes (at once) to Metadata listing
   three brokers, per trial (target <= 2 s).
2. Failover: kill -9 the leader of a partition (replication factor 3, min ISR 2)
   while a producer sends acks=all to it; time from the kill to the first
   acknowledgement of a record sent after the kill (target median <= 1.5 s), for
   two kinds of producer: the one that was producing (existing), and one created
   right after the kill, bootstrapping from the surviving nodes, once with the same
   settings (new) and once with librdkafka's defaults but acks=all (new-defaults).
3. Throughput: acks=all produce MB/s to three partitions with replication factor 3,
   and the same on a single node, same client and sitting.
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
BINARY = Path(os.environ.get("CHRONIK_BIN", ROOT / "target" / "release" / "chronik"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, root, node_id, voters, port):
        self.dir = Path(root) / f"node{node_id}"
        self.args = [str(BINARY), "--data-dir", str(self.dir), "--listen", f"127.0.0.1:{port}",
                     "--log-level", "warn"]
        if voters:
            self.args += ["--node-id", str(node_id), "--voters", voters]
        self.bootstrap = f"127.0.0.1:{port}"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.args, stderr=subprocess.DEVNULL)

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def cluster(root, n=3):
    peers = [free_port() for _ in range(n)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(peers)) if n > 1 else ""
    return [Node(root, i + 1, voters, free_port()) for i in range(n)]


def brokers_listed(node):
    try:
        md = AdminClient({"bootstrap.servers": node.bootstrap}).list_topics(timeout=0.5)
        return len(md.brokers)
    except Exception:  # noqa: BLE001 - still starting
        return 0


def wait(check, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = check()
        if r:
            return r
        time.sleep(0.01)
    raise SystemExit(f"{what} not within {timeout}s")


def leader_of(node, topic):
    md = AdminClient({"bootstrap.servers": node.bootstrap}).list_topics(topic, timeout=5)
    p = md.topics[topic].partitions[0]
    return p.leader, len(p.isrs)


def create(admin, topic, partitions=1, rf=3, config=None):
    """CreateTopics, retried while the cluster settles (NOT_CONTROLLER, timeouts)."""
    deadline = time.time() + 60
    while True:
        try:
            admin.create_topics([NewTopic(topic, partitions, rf, config=config if config is not None
                                          else {"min.insync.replicas": "2"})])[topic].result(15)
            return
        except Exception as e:  # noqa: BLE001 - retriable until the deadline
            if "already exists" in str(e):
                return
            if time.time() > deadline:
                raise
            print(f"  create {topic}: {e}; retrying", file=sys.stderr)
            time.sleep(0.2)


def start_to_registered(trials):
    times = []
    for _ in range(trials):
        with tempfile.TemporaryDirectory() as root:
            nodes = cluster(root)
            t0 = time.time()
            for n in nodes:
                n.start()
            wait(lambda: all(brokers_listed(n) == 3 for n in nodes), 20, "3 brokers")
            times.append(time.time() - t0)
            for n in nodes:
                n.stop()
    return times


PRODUCER = {"acks": "all", "linger.ms": 0, "message.timeout.ms": 30000,
            "retry.backoff.ms": 20, "topic.metadata.refresh.interval.ms": 100}


def first_acks(topic, existing, new_bootstrap, killed_at, deadline):
    """Produces with the existing producer and with new ones created now, until
    each has an acknowledgement of a record sent after `killed_at`: their times."""
    new = Producer({"bootstrap.servers": new_bootstrap, **PRODUCER})
    new_defaults = Producer({"bootstrap.servers": new_bootstrap, "acks": "all"})
    firsts = {}

    def recorder(kind):
        def on_delivery(err, msg):
            if err is None and msg.timestamp()[1] / 1000 >= killed_at:
                firsts.setdefault(kind, time.time())
        return on_delivery

    producers = {"existing": existing, "new": new, "new-defaults": new_defaults}
    while len(firsts) < len(producers) and time.time() < deadline:
        for kind, p in producers.items():
            if kind not in firsts:
                p.produce(topic, b"after", partition=0, on_delivery=recorder(kind))
            p.poll(0.005)
    for p in producers.values():
        p.flush(30)
    return {kind: t - killed_at for kind, t in firsts.items()}


def failover(trials):
    times = {"existing": [], "new": [], "new-defaults": []}
    with tempfile.TemporaryDirectory() as root:
        nodes = cluster(root)
        for n in nodes:
            n.start()
        wait(lambda: brokers_listed(nodes[0]) == 3, 20, "3 brokers")
        for trial in range(trials):
            topic = f"failover-{trial}"
            admin = AdminClient({"bootstrap.servers": ",".join(n.bootstrap for n in nodes)})
            create(admin, topic)
            wait(lambda: leader_of(nodes[0], topic)[1] == 3, 20, "full ISR")
            leader, _ = leader_of(nodes[0], topic)
            victim = nodes[leader - 1]
            bootstrap = ",".join(n.bootstrap for n in nodes if n is not victim)
            p = Producer({"bootstrap.servers": ",".join(n.bootstrap for n in nodes), **PRODUCER})
            p.produce(topic, b"warm", partition=0)
            p.flush(10)
            killed_at = time.time()
            victim.kill9()
            firsts = first_acks(topic, p, bootstrap, killed_at, time.time() + 30)
            for kind, took in firsts.items():
                times[kind].append(took)
            print(f"  trial {trial}: leader {leader} killed; first ack after "
                  + ", ".join(f"{k} {v:.2f}s" for k, v in sorted(firsts.items())), file=sys.stderr)
            victim.start()
            wait(lambda: brokers_listed(nodes[0]) == 3, 20, "the victim back")
            wait(lambda: leader_of(nodes[0], topic)[1] == 3, 30, "the victim back in the ISR")
        for n in nodes:
            n.stop()
    return times


def throughput(n_nodes, messages, size):
    with tempfile.TemporaryDirectory() as root:
        nodes = cluster(root, n_nodes)
        for n in nodes:
            n.start()
        wait(lambda: brokers_listed(nodes[0]) == n_nodes, 20, "brokers")
        rf = n_nodes
        admin = AdminClient({"bootstrap.servers": nodes[0].bootstrap})
        create(admin, "tput", 3, rf, {})
        wait(lambda: all(leader_of(nodes[0], "tput")[0] > 0 for _ in [0]), 20, "leaders")
        time.sleep(1)
        p = Producer({"bootstrap.servers": ",".join(n.bootstrap for n in nodes), "acks": "all",
                      "linger.ms": 5, "batch.size": 1 << 20, "queue.buffering.max.messages": 500000})
        payload = b"x" * size
        t0 = time.time()
        for i in range(messages):
            while True:
                try:
                    p.produce("tput", payload, partition=i % 3)
                    break
                except BufferError:
                    p.poll(0.001)
            if i % 1000 == 0:
                p.poll(0)
        left = p.flush(120)
        took = time.time() - t0
        for n in nodes:
            n.stop()
        assert left == 0, f"{left} messages unacknowledged"
        return messages * size / took / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--only", choices=["start", "failover", "throughput"])
    args = ap.parse_args()
    if not BINARY.exists():
        sys.exit(f"build the broker first: {BINARY}")
    if args.only in (None, "start"):
        s = start_to_registered(max(3, args.trials // 2))
        print(f"start to 3 registered brokers: median {statistics.median(s):.2f}s, "
              f"max {max(s):.2f}s over {len(s)} trials")
    if args.only in (None, "failover"):
        for kind, f in failover(args.trials).items():
            if not f:
                print(f"failover, {kind} producer: no acknowledgement in any trial")
                continue
            print(f"failover (kill -9 of the leader to the first acks=all ack on its successor), "
                  f"{kind} producer: median {statistics.median(f):.2f}s, min {min(f):.2f}s, "
                  f"max {max(f):.2f}s over {len(f)} of {args.trials} trials")
    if args.only not in (None, "throughput"):
        return
    t3 = throughput(3, args.messages, args.size)
    t1 = throughput(1, args.messages, args.size)
    print(f"acks=all produce, {args.size} B messages, 3 partitions, confluent-kafka: "
          f"3 nodes (RF 3) {t3:.0f} MB/s, 1 node {t1:.0f} MB/s")


if __name__ == "__main__":
    main()
