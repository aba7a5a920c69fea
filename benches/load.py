#!/usr/bin/env python3
"""Load tool: drives a Chronik broker with a real Kafka client (confluent-kafka,
librdkafka 2.16) and reports produce MB/s with per-message latency percentiles at
acks=all, and consume MB/s. With --fio it also measures fio's buffered write plus
fdatasync bandwidth in the same sitting and prints the ratio.

  benches/load.py --start-broker [--messages 200000] [--size 1024] [--fio]
  benches/load.py --bootstrap 127.0.0.1:9092 ...
  benches/load.py --bootstrap 127.0.0.1:9094 -X security.protocol=SASL_SSL -X ssl.ca.location=ca.pem \
      -X sasl.mechanism=SCRAM-SHA-512 -X sasl.username=admin -X sasl.password=...
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(data_dir):
    binary = Path(os.environ.get("CHRONIK_BIN", ROOT / "target" / "release" / "chronik"))
    port = free_port()
    proc = subprocess.Popen([str(binary), "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}",
                             "--log-level", "warn"])
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.02)
    proc.kill()
    sys.exit("broker did not start")


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(p / 100.0 * len(sorted_values)))]


# librdkafka settings given with -X (security, say), for every client of the run.
CLIENT_CONFIG = {}


def produce(bootstrap, topic, messages, size, partitions, linger_ms):
    payload = os.urandom(size)
    latencies = []
    errors = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": linger_ms,
                         "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000,
                         "queue.buffering.max.kbytes": 2_000_000, **CLIENT_CONFIG})

    start = time.perf_counter()
    for i in range(messages):
        sent = time.perf_counter()
        while True:
            try:
                producer.produce(topic, payload, partition=i % partitions,
                                 on_delivery=lambda err, msg, sent=sent: (
                                     errors.append(err) if err else latencies.append(time.perf_counter() - sent)))
                break
            except BufferError:
                producer.poll(0.001)
        if i % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    elapsed = time.perf_counter() - start
    if remaining or errors:
        sys.exit(f"produce failed: {remaining} undelivered, errors {errors[:3]}")
    latencies.sort()
    return elapsed, latencies


def produce_kcat(bootstrap, topic, messages, size, linger_ms, scratch):
    """The same load from kcat (librdkafka in C): throughput without the Python
    client's per-message cost, which caps the Python driver near 110-150k msg/s."""
    data = scratch / "messages.txt"
    with open(data, "wb") as f:
        f.write((b"x" * (size - 1) + b"\n") * messages)
    start = time.perf_counter()
    settings = [arg for k, v in CLIENT_CONFIG.items() for arg in ("-X", f"{k}={v}")]
    subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", topic, "-X", "acks=all", "-X", f"linger.ms={linger_ms}",
                    "-X", "batch.size=1000000", *settings, "-l", str(data)], check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    data.unlink()
    return elapsed


def consume(bootstrap, topic, messages, partitions):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "load-tool", "enable.auto.commit": False,
                         "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760, **CLIENT_CONFIG})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = 0
    nbytes = 0
    start = time.perf_counter()
    while got < messages:
        for msg in consumer.consume(num_messages=10000, timeout=1.0):
            if msg.error() is None:
                got += 1
                nbytes += len(msg.value())
        if time.perf_counter() - start > 300:
            sys.exit(f"consume stalled at {got}/{messages}")
    elapsed = time.perf_counter() - start
    consumer.close()
    return elapsed, nbytes


def fio_write_fsync(directory):
    """Buffered 1 MiB writes with an fdatasync after every 8 MiB, as group commit does."""
    if not shutil.which("fio"):
        return None
    out = subprocess.run(["fio", "--name=ref", f"--directory={directory}", "--rw=write", "--bs=1m",
                          "--size=1G", "--fdatasync=8", "--ioengine=psync", "--output-format=json"],
                         capture_output=True, text=True, check=True).stdout
    for f in Path(directory).glob("ref*"):
        f.unlink()
    return json.loads(out)["jobs"][0]["write"]["bw_bytes"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap")
    ap.add_argument("--start-broker", action="store_true")
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--fio", action="store_true")
    ap.add_argument("--driver", choices=["python", "kcat"], default="python",
                    help="python: confluent-kafka, with per-message latency; kcat: throughput only")
    ap.add_argument("-X", dest="client_config", action="append", default=[], metavar="KEY=VALUE",
                    help="a librdkafka setting for every client (repeatable)")
    args = ap.parse_args()
    CLIENT_CONFIG.update(kv.split("=", 1) for kv in args.client_config)

    scratch = Path(tempfile.mkdtemp(prefix="chronik-load-", dir=ROOT / "target"))
    proc = None
    try:
        bootstrap = args.bootstrap
        if args.start_broker:
            proc, bootstrap = start_broker(scratch / "data")
        topic = f"load-{int(time.time())}"
        admin = AdminClient({"bootstrap.servers": bootstrap, **CLIENT_CONFIG})
        for _ in range(200):  # until the broker has registered itself
            try:
                if admin.list_topics(timeout=5).brokers:
                    break
            except Exception:
                pass
            time.sleep(0.05)
        for f in admin.create_topics([NewTopic(topic, args.partitions, 1)]).values():
            f.result(30)
        fio_bw = fio_write_fsync(scratch) if args.fio else None
        total = args.messages * args.size
        if args.driver == "kcat":
            elapsed = produce_kcat(bootstrap, topic, args.messages, args.size, args.linger_ms, scratch)
            produce_mbs = total / elapsed / 1e6
            print(f"produce (kcat, one process, partitioner-spread): {args.messages} x {args.size} B, acks=all: "
                  f"{produce_mbs:.0f} MB/s ({args.messages / elapsed:,.0f} msg/s)")
        else:
            elapsed, lat = produce(bootstrap, topic, args.messages, args.size, args.partitions, args.linger_ms)
            produce_mbs = total / elapsed / 1e6
            ms = lambda s: f"{s * 1000:.1f} ms"
            print(f"produce: {args.messages} x {args.size} B, acks=all, linger.ms={args.linger_ms}, "
                  f"{args.partitions} partitions: {produce_mbs:.0f} MB/s ({args.messages / elapsed:,.0f} msg/s); "
                  f"latency p50 {ms(percentile(lat, 50))}, p99 {ms(percentile(lat, 99))}, p999 {ms(percentile(lat, 99.9))}")
        c_elapsed, c_bytes = consume(bootstrap, topic, args.messages, args.partitions)
        print(f"consume: {c_bytes / c_elapsed / 1e6:.0f} MB/s ({args.messages / c_elapsed:,.0f} msg/s)")
        if fio_bw:
            print(f"fio 1 MiB writes + fdatasync every 8 MiB, same sitting: {fio_bw / 1e6:.0f} MB/s; "
                  f"produce is {produce_mbs * 1e6 / fio_bw * 100:.0f}% of it")
    finally:
        if proc:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
