"""C-9 over real processes (spec/conformance.md): three `chronik` brokers write the
replication trace of one partition (`--replication-trace`), acks=all producers write
to it while its leader is killed (-9) and started again, and `chronik-sim
--check-replication-trace` checks every step the brokers took against the
replication model, as the simulator's runs are checked: a step the model does not
allow (a high watermark ahead of the followers, an acknowledgement the rules do not
allow yet, a truncation below what was committed) fails the test and prints it.
What this reaches that the simulator does not: the broker's own request handlers,
replica fetcher, ISR upkeep and start-up, over TCP."""
import json
import os
import random
import signal
import subprocess
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import SIM_BINARY, Cluster
from test_jepsen import nemesis
from test_cluster import brokers_seen, partition_state, produce, wait_for

TOPIC = "traced"


def traced_cluster(tmp_path):
    traces = [tmp_path / f"replication-{i}.trace" for i in (1, 2, 3)]
    cluster = Cluster(tmp_path, node_args=lambda node_id: [
        "--replication-trace", str(traces[node_id - 1]),
        "--replication-trace-partition", f"{TOPIC}:0"])
    return cluster, traces


def start_with_traced_topic(cluster):
    """Starts the brokers and creates the traced partition as the model starts it:
    replicas 1, 2, 3, broker 1 leading, `min.insync.replicas` 2."""
    for n in cluster.nodes:
        n.start()
    wait_for("3 brokers", lambda: brokers_seen(cluster.node(1).bootstrap) == [1, 2, 3], 10.0)
    admin = AdminClient({"bootstrap.servers": cluster.node(1).bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, replica_assignment=[[1, 2, 3]],
                                  config={"min.insync.replicas": "2"})])[TOPIC].result(10)
    wait_for("full ISR", lambda: len(partition_state(cluster.node(1), TOPIC)[1]) == 3, 10.0)


def run_check(traces):
    return subprocess.run([str(SIM_BINARY), "--check-replication-trace", *map(str, traces)],
                          capture_output=True, text=True, timeout=300)


def check_replication_traces(traces):
    out = run_check(traces)
    print(out.stdout[-20000:] + out.stderr[-5000:])
    assert out.returncode == 0, \
        f"the replication traces break the replication model (C-9):\n{out.stdout[-20000:]}{out.stderr}"
    return out.stdout


def hw_ahead_of_followers(traces, tmp_path):
    """The traces with one leader line changed to show a high watermark past what
    its followers reported: a step the model never allows (R-REPL-1)."""
    changed = []
    done = False
    for path in traces:
        out = tmp_path / f"changed-{path.name}"
        with open(path) as src, open(out, "w") as dst:
            for text in src:
                line = json.loads(text)
                shown = (line["event"].get("Shown", {}).get("shown")
                         if isinstance(line["event"], dict) else None)
                log = shown and shown["log"]
                if not done and log and shown["leader"] and log["hw"] < log["durable"]:
                    ends = shown["leader"]["follower_end"].values()
                    if ends and max(ends) < log["durable"]:
                        log["hw"] = log["durable"]
                        done = True
                        text = json.dumps(line) + "\n"
                dst.write(text)
        changed.append(out)
    assert done, "no leader line to change"
    return changed


def test_c_9_every_replication_step_of_real_brokers_is_a_model_step(tmp_path):
    cluster, traces = traced_cluster(tmp_path)
    try:
        start_with_traced_topic(cluster)

        acked, failed = produce(cluster.node(1).bootstrap, TOPIC, [f"a{i}" for i in range(40)])
        assert not failed and len(acked) == 40, failed

        cluster.node(1).kill9()
        survivor = cluster.node(2)
        acked2, failed2 = produce(survivor.bootstrap, TOPIC, [f"b{i}" for i in range(40)])
        assert not failed2 and len(acked2) == 40, failed2

        cluster.node(1).start()
        wait_for("broker 1 back in the ISR", lambda: 1 in partition_state(survivor, TOPIC)[1], 20.0)
        acked3, failed3 = produce(survivor.bootstrap, TOPIC, [f"c{i}" for i in range(40)])
        assert not failed3 and len(acked3) == 40, failed3
    finally:
        cluster.stop()
    report = check_replication_traces(traces)
    assert "ended early: no" in report, report[-2000:]
    # The check has teeth: the same run with one leader's high watermark moved past
    # its followers is rejected.
    out = run_check(hw_ahead_of_followers(traces, tmp_path))
    assert out.returncode != 0 and "not a step the replication model allows" in out.stdout, \
        out.stdout[-3000:]


def test_c_9_a_paused_leader_and_a_killed_follower_take_only_model_steps(tmp_path):
    """A leader paused (SIGSTOP) past its session is fenced while it still holds its
    view; it resumes deposed and must follow. A follower killed while records flow
    comes back, truncates if it must and catches up."""
    cluster, traces = traced_cluster(tmp_path)
    try:
        start_with_traced_topic(cluster)
        acked, failed = produce(cluster.node(1).bootstrap, TOPIC, [f"a{i}" for i in range(30)])
        assert not failed and len(acked) == 30, failed

        cluster.node(1).proc.send_signal(signal.SIGSTOP)
        try:
            wait_for("a new leader", lambda: partition_state(cluster.node(2), TOPIC)[0] in (2, 3),
                     20.0)
            acked, failed = produce(cluster.node(2).bootstrap, TOPIC,
                                    [f"b{i}" for i in range(30)])
            assert not failed and len(acked) == 30, failed
        finally:
            cluster.node(1).proc.send_signal(signal.SIGCONT)
        wait_for("broker 1 back in the ISR",
                 lambda: 1 in partition_state(cluster.node(2), TOPIC)[1], 20.0)

        leader = partition_state(cluster.node(2), TOPIC)[0]
        follower = next(i for i in (2, 3) if i != leader)
        cluster.node(follower).kill9()
        acked, failed = produce(cluster.node(leader).bootstrap, TOPIC,
                                [f"c{i}" for i in range(30)])
        assert not failed and len(acked) == 30, failed
        cluster.node(follower).start()
        wait_for("the follower back in the ISR",
                 lambda: follower in partition_state(cluster.node(leader), TOPIC)[1], 20.0)
        acked, failed = produce(cluster.node(leader).bootstrap, TOPIC,
                                [f"d{i}" for i in range(30)])
        assert not failed and len(acked) == 30, failed
    finally:
        cluster.stop()
    report = check_replication_traces(traces)
    assert "ended early: no" in report, report[-2000:]


class BackgroundWriter(threading.Thread):
    """acks=all idempotent writes of `count` values, one every few milliseconds,
    batched as librdkafka batches them, whatever the brokers go through."""

    def __init__(self, bootstrap, count, interval=0.01):
        super().__init__(daemon=True)
        self.bootstrap, self.count, self.interval = bootstrap, count, interval
        self.acked, self.failed = {}, []

    def on_delivery(self, err, msg):
        if err is None:
            self.acked[msg.value().decode()] = msg.offset()
        else:
            self.failed.append((msg.value().decode(), err))

    def run(self):
        p = Producer({"bootstrap.servers": self.bootstrap, "acks": "all",
                      "enable.idempotence": True, "message.timeout.ms": 30000,
                      "linger.ms": 5})
        for i in range(self.count):
            p.produce(TOPIC, f"w{i}".encode(), partition=0, on_delivery=self.on_delivery)
            p.poll(0)
            time.sleep(self.interval)
        p.flush(40)


def test_c_9_writes_throughout_a_leader_kill_and_restart_are_model_steps(tmp_path):
    """Records keep coming while the leader is killed (-9), a new one is elected, and
    the old one starts again, truncates if it must and rejoins: appends of batches of
    several records, retries of the batches the kill left unanswered."""
    cluster, traces = traced_cluster(tmp_path)
    try:
        start_with_traced_topic(cluster)
        writer = BackgroundWriter(cluster.bootstrap, 200)
        writer.start()
        wait_for("writes acknowledged", lambda: len(writer.acked) >= 30, 20.0)
        cluster.node(1).kill9()
        wait_for("a new leader", lambda: partition_state(cluster.node(2), TOPIC)[0] in (2, 3),
                 20.0)
        time.sleep(0.3)
        cluster.node(1).start()
        wait_for("broker 1 back in the ISR",
                 lambda: 1 in partition_state(cluster.node(2), TOPIC)[1], 20.0)
        writer.join(60)
        assert not writer.is_alive()
        assert not writer.failed and len(writer.acked) == 200, writer.failed
    finally:
        cluster.stop()
    report = check_replication_traces(traces)
    assert "ended early: no" in report, report[-2000:]


def test_c_9_a_nemesis_run_takes_only_model_steps(tmp_path):
    """The fault run's nemesis (one broker at a time killed or paused for 1 to 3 s,
    every 2 to 4 s) for as long as a writer sends 220 records, about 30 s: every
    step of the traced partition must be one the model allows."""
    seed = int(os.environ.get("CHRONIK_C9_SEED", "11"))
    rng = random.Random(seed)
    cluster, traces = traced_cluster(tmp_path)
    stop, log = threading.Event(), []
    try:
        start_with_traced_topic(cluster)
        writer = BackgroundWriter(cluster.bootstrap, 220, interval=0.13)
        writer.start()
        faults = threading.Thread(target=nemesis, args=(cluster, stop, rng, log), daemon=True)
        faults.start()
        writer.join(120)
        stop.set()
        faults.join(30)
        for n in cluster.nodes:
            if n.running:
                n.proc.send_signal(signal.SIGCONT)
        wait_for("a full ISR again",
                 lambda: len(partition_state(cluster.node(1), TOPIC)[1]) == 3, 30.0)
        print(f"seed {seed}: faults {log}; {len(writer.acked)} acknowledged, "
              f"{len(writer.failed)} failed")
    finally:
        stop.set()
        cluster.stop()
    report = check_replication_traces(traces)
    assert "ended early: no" in report, report[-2000:]
