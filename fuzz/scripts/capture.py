#!/usr/bin/env python3
"""Seeds fuzz/corpus/kafka_request with request frames real clients send.

Starts a broker (CHRONIK_BIN) on a free port, puts a recording proxy in front of it,
and drives kcat, kafka-python and confluent-kafka through the proxy (metadata,
produce with every codec, consume in a group, admin calls). Each distinct
(API key, version) is kept up to twice, frames over 4 KiB are skipped, so the
corpus stays small. Run from the repository root:

    CHRONIK_BIN=target/release/chronik python3 fuzz/scripts/capture.py
"""
import asyncio, os, shutil, socket, subprocess, sys, tempfile, threading, time, hashlib

OUT = os.path.join(os.path.dirname(__file__), "..", "corpus", "kafka_request")
MAX_FRAME = 4 << 10
KEEP_PER_VERSION = 2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    def __init__(self):
        self.seen = {}
        self.lock = threading.Lock()

    def frame(self, data):
        if len(data) < 8 or len(data) > MAX_FRAME:
            return
        key = (int.from_bytes(data[0:2], "big", signed=True), int.from_bytes(data[2:4], "big", signed=True))
        with self.lock:
            n = self.seen.get(key, 0)
            if n >= KEEP_PER_VERSION:
                return
            self.seen[key] = n + 1
        digest = hashlib.sha1(data).hexdigest()[:12]
        with open(os.path.join(OUT, f"client-{key[0]}-v{key[1]}-{digest}"), "wb") as f:
            f.write(data)


async def pipe(reader, writer, recorder):
    buf = b""
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
            if recorder is None:
                continue
            buf += chunk
            while len(buf) >= 4:
                size = int.from_bytes(buf[:4], "big")
                if len(buf) < 4 + size:
                    break
                recorder.frame(buf[4:4 + size])
                buf = buf[4 + size:]
    finally:
        writer.close()


async def proxy(listen_port, broker_port, recorder, ready):
    async def handle(cr, cw):
        br, bw = await asyncio.open_connection("127.0.0.1", broker_port)
        await asyncio.gather(pipe(cr, bw, recorder), pipe(br, cw, None))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    ready.set()
    async with server:
        await server.serve_forever()


def clients(bootstrap):
    run = lambda *a, **k: subprocess.run(list(a), timeout=60, check=False, capture_output=True, **k)
    run("kcat", "-b", bootstrap, "-L")
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        run("kcat", "-b", bootstrap, "-P", "-t", "cap", "-z", codec, "-K:", input=b"k1:v1\nk2:v2\n")
    run("kcat", "-b", bootstrap, "-C", "-t", "cap", "-o", "beginning", "-e", "-G", "capg", "cap")
    from kafka import KafkaProducer, KafkaConsumer, KafkaAdminClient
    from kafka.admin import NewTopic, NewPartitions, ConfigResource, ConfigResourceType
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("cap2", 2, 1, topic_configs={"retention.ms": "60000"})])
    admin.create_partitions({"cap2": NewPartitions(3)})
    admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "cap2")])
    admin.list_groups() if hasattr(admin, "list_groups") else None
    for codec in [None, "gzip", "snappy", "lz4", "zstd"]:
        try:
            p = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec)
            for i in range(3):
                p.send("cap2", key=b"k%d" % i, value=b"value %d" % i, headers=[("h", b"x")])
            p.flush(); p.close()
        except Exception as e:  # a codec library missing: skip that codec
            print("kafka-python", codec, e, file=sys.stderr)
    c = KafkaConsumer("cap2", bootstrap_servers=bootstrap, group_id="capg2",
                      auto_offset_reset="earliest", consumer_timeout_ms=3000)
    for _ in c:
        pass
    c.commit(); c.close()
    admin.delete_topics(["cap2"]); admin.close()
    import confluent_kafka
    from confluent_kafka.admin import AdminClient
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                  "compression.type": "zstd"})
    for i in range(5):
        p.produce("cap3", key=b"k", value=b"v%d" % i)
    p.flush(10)
    c = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "capg3",
                                  "auto.offset.reset": "earliest"})
    c.subscribe(["cap3"])
    deadline = time.time() + 8
    while time.time() < deadline:
        c.poll(0.5)
    try:
        c.commit(asynchronous=False)
    except confluent_kafka.KafkaException:
        pass
    c.close()
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.list_topics(timeout=5)
    a.describe_cluster().result() if hasattr(a, "describe_cluster") else None


def main():
    os.makedirs(OUT, exist_ok=True)
    broker_port, proxy_port = free_port(), free_port()
    data = tempfile.mkdtemp()
    broker = subprocess.Popen([os.environ.get("CHRONIK_BIN", "target/release/chronik"),
                               "--data-dir", data, "--listen", f"127.0.0.1:{broker_port}",
                               "--advertised-port", str(proxy_port),
                               "--group-initial-rebalance-delay-ms", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    recorder, ready = Recorder(), threading.Event()
    loop = asyncio.new_event_loop()
    threading.Thread(target=lambda: loop.run_until_complete(proxy(proxy_port, broker_port, recorder, ready)),
                     daemon=True).start()
    try:
        ready.wait(10)
        time.sleep(1)
        clients(f"127.0.0.1:{proxy_port}")
    finally:
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(data, ignore_errors=True)
    print(f"{sum(recorder.seen.values())} frames of {len(recorder.seen)} API versions", file=sys.stderr)


if __name__ == "__main__":
    main()
