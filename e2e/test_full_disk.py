"""A full data disk as an operator meets it: the broker stopped while its disk was full
must start again, so that DeleteTopics or DeleteRecords can free space, and no
acknowledged record is lost on the way (R-OPS-4). The disk is a small tmpfs, which
needs root; elsewhere the test is skipped."""
import os
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker
from test_storage_repair import read_all

# Below 1% of the 24 MB disk, which would bound it (R-OPS-4).
RESERVE = 200 * 1024


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def produce(bootstrap, topic, count):
    """Produces up to `count` numbered records of 4 KB, until the disk refuses one:
    the numbers acknowledged, and whether the disk refused."""
    acked, failed = [], []

    def on_delivery(err, msg):
        (failed if err else acked).append(int(msg.value()[:8]))

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "enable.idempotence": True, "message.timeout.ms": 5000})
    for i in range(count):
        p.produce(topic, b"%08d" % i + b"x" * 4000, on_delivery=on_delivery)
        p.poll(0)
        if failed:
            break
        if i % 200 == 0:
            p.flush(10)
    p.flush(30)
    return acked, bool(failed)


def take_every_byte(path):
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def reserve_held(data):
    path = data / "disk-reserve"
    return path.exists() and path.stat().st_size == RESERVE


def test_r_ops_4_a_broker_stopped_on_a_full_disk_starts_and_frees_space(small_disk, tmp_path):
    data = small_disk / "data"
    args = ["--disk-reserve-bytes", str(RESERVE)]
    broker = Broker(data, extra_args=args).start()
    try:
        deadline = time.time() + 20
        while not reserve_held(data):
            assert time.time() < deadline, "the reserve was never set aside"
            time.sleep(0.2)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for f in admin.create_topics([NewTopic("kept", 1, 1), NewTopic("filler", 1, 1)]).values():
            f.result(10)
        acked, full = produce(broker.bootstrap, "kept", 500)
        assert len(acked) == 500 and not full
        _, full = produce(broker.bootstrap, "filler", 20_000)
        assert full, "the disk never filled"
    finally:
        assert broker.stop() == 0

    # Whatever room the refused produces left, something else takes: the disk is
    # full to the last byte, and without the reserve this start failed writing its
    # incarnation (ENOSPC).
    take_every_byte(small_disk / "hog")
    broker = Broker(data, extra_args=args).start()
    try:
        log = Path(broker.log_path).read_text()
        assert "released the disk reserve" in log, log[-2000:]
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.delete_topics(["filler"])["filler"].result(20)
        # Every record there is, until the read goes quiet: the acknowledged ones
        # must all be among them.
        got, errors = read_all(broker.bootstrap, "kept", len(acked) + 10_000, timeout=10)
        assert set(acked) <= {n for _, n in got} and not errors, (len(acked), len(got))
        p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        p.produce("kept", b"after")
        assert p.flush(20) == 0
        deadline = time.time() + 30
        while not reserve_held(data):
            assert time.time() < deadline, "the reserve was not set aside again"
            time.sleep(0.5)
    finally:
        assert broker.stop() == 0
