"""The bound on open segment files (spec/log.md R-LOG-19, issue 12): a broker whose
partitions hold far more sealed segments than `max_open_segment_files` keeps at most that
many open, serves every record of every segment (closed ones are opened again when
read), and still does after a restart, which opens each sealed segment once."""
import os
import re
import time
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker

LIMIT = 64


def open_segment_files(broker):
    text = urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/metrics", timeout=5).read()
    return int(re.search(r"^chronik_open_segment_files (\d+)", text.decode(), re.M).group(1))


def segment_fds(broker):
    """Descriptors of the broker process that are segment files."""
    fd_dir = f"/proc/{broker.proc.pid}/fd"
    names = []
    for fd in os.listdir(fd_dir):
        try:
            names.append(os.readlink(os.path.join(fd_dir, fd)))
        except OSError:
            continue
    return [n for n in names if n.endswith(".log") and "/logs/" in n]


def read_from_start(bootstrap, topic, partitions, count):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"files-{time.time()}",
                  "enable.auto.commit": False, "auto.offset.reset": "error"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = set()
    deadline = time.time() + 120
    while len(seen) < count and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        assert not m.error(), m.error()
        seen.add((m.partition(), m.offset()))
    c.close()
    return seen


def test_r_log_19_sealed_segment_files_stay_within_the_bound_and_every_record_is_read(tmp_path):
    b = Broker(tmp_path / "data", extra_args=["--max-open-segment-files", str(LIMIT)]).start()
    try:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        admin.create_topics([NewTopic("many", 4, 1, config={"segment.bytes": "1024"})])["many"].result(10)
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0,
                      "batch.num.messages": 1})
        count = 4 * 150
        for i in range(count):
            p.produce("many", b"%0400d" % i, partition=i % 4)
            p.poll(0)
        assert p.flush(60) == 0
        segments = sum(1 for _ in (tmp_path / "data").rglob("*.log")) - 4
        assert segments > 4 * LIMIT, f"only {segments} sealed segments"
        assert len(read_from_start(b.bootstrap, "many", 4, count)) == count
        assert open_segment_files(b) == LIMIT, "the bound is reached and kept"
        # Active segments, and files a read still holds, may come on top.
        assert len(segment_fds(b)) <= LIMIT + 4 + 8, len(segment_fds(b))
        b.stop()
        b.start()
        assert open_segment_files(b) <= LIMIT
        assert len(read_from_start(b.bootstrap, "many", 4, count)) == count
        assert len(segment_fds(b)) <= LIMIT + 4 + 8
    finally:
        b.stop()
