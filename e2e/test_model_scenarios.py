"""Process-level conformance (spec/conformance.md, C-4): the model chooses where kill -9
falls among produces, syncs and reads (`chronik-conformance scenarios`); each scenario
runs against the real `chronik` binary, and what is read back must be what the model
guarantees: every acknowledged record at its acknowledged offset, after any number of
crashes (R-LOG-1, R-RECOVER-4, I-6); nothing read that was not produced; nothing read
twice; offsets dense from 0."""
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import ROOT, Broker, free_port

CONFORMANCE = Path(os.environ.get(
    "CHRONIK_CONFORMANCE_BIN", ROOT / "target" / "release" / "chronik-conformance"))
TOPIC = "scenario"


def scenarios():
    assert CONFORMANCE.exists(), f"build the conformance runner first: {CONFORMANCE} is missing"
    out = subprocess.run([str(CONFORMANCE), "scenarios", "--count", "6", "--seed", "3"],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_ready(bootstrap, timeout=10.0):
    """The topic exists and its partition has a leader that Metadata lists."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            md = admin.list_topics(timeout=2)
        except KafkaException:
            # Right after start the broker may not be registered yet: Metadata lists
            # no broker, which librdkafka reports as a partial response.
            time.sleep(0.05)
            continue
        if TOPIC not in md.topics:
            admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].exception(5)
            continue
        part = md.topics[TOPIC].partitions.get(0)
        if part is not None and part.leader in md.brokers:
            return
        time.sleep(0.05)
    raise AssertionError("the partition has no listed leader 10 s after start")


def read_all(bootstrap):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "scenario-reader",
                         "enable.auto.commit": False})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=5)
        consumer.assign([TopicPartition(TOPIC, 0, 0)])
        got = {}
        deadline = time.time() + 10
        while len(got) < high and time.time() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            got[msg.offset()] = msg.value().decode()
        assert len(got) == high, f"read {len(got)} of {high} records below the high watermark"
        return got
    finally:
        consumer.close()


def check_read(read, sent, acked, complete=True):
    """`read` ({offset: value}) is dense from 0, holds no value twice and nothing never
    `sent`, and holds each `acked` value at its offset: all of them if `complete`,
    otherwise those below where the read ended."""
    values = list(read.values())
    assert sorted(read) == list(range(len(read))), "offsets are dense from 0"
    assert len(set(values)) == len(values), f"a record was read twice: {values}"
    assert set(values) <= set(sent), f"read something never produced: {values}"
    lost = {v: o for v, o in acked.items() if (complete or o < len(read)) and read.get(o) != v}
    assert not lost, f"acknowledged records lost or moved: {lost}; read {read}"


@pytest.mark.parametrize("index", range(6))
def test_c4_model_chosen_kill_points_lose_no_acknowledged_record(tmp_path, index):
    steps = scenarios()[index]
    broker = Broker(tmp_path / "data", free_port())
    producer = None
    sent, acked = [], {}

    def on_delivery(err, msg):
        if err is None:
            acked[msg.value().decode()] = msg.offset()

    def check(read):
        check_read(read, sent, acked)

    try:
        for step in steps:
            if step == "start":
                broker.start()
                wait_ready(broker.bootstrap)
                # No retries: a record whose acknowledgement a crash swallowed is
                # never sent twice, so any duplicate read is the broker's.
                producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                                     "retries": 0, "enable.idempotence": False,
                                     "linger.ms": 0, "message.timeout.ms": 5000})
            elif step == "produce":
                value = f"s{index}-r{len(sent)}"
                sent.append(value)
                producer.produce(TOPIC, value.encode(), partition=0, on_delivery=on_delivery)
                producer.poll(0)
            elif step == "sync":
                if producer is not None:
                    producer.flush(10)
            elif step == "kill":
                broker.kill9()
                if producer is not None:
                    producer.flush(10)  # what was not acknowledged now fails
                    producer = None
            elif step == "fetch":
                check(read_all(broker.bootstrap))
        if broker.proc is None or broker.proc.poll() is not None:
            broker.start()
            wait_ready(broker.bootstrap)
        if producer is not None:
            producer.flush(10)
        check(read_all(broker.bootstrap))
        print(f"scenario {index}: {' '.join(steps)}: sent {len(sent)}, acknowledged {len(acked)}")
    finally:
        broker.stop()
