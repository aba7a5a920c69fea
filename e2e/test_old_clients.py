"""Old clients as Debian packages them, and kafkajs, against the real binary
(spec/wire.md R-WIRE-13): Sarama 1.22 and segmentio kafka-go 0.2.1 speak the request
versions and message formats v0/v1 that Kafka 4 removed and Kafka 3.9 serves. Each
client is a small program in e2e/clients/ built offline (Go in GOPATH mode from
/usr/share/gocode; kafkajs from e2e/clients/kafkajs/node_modules, which
scripts/install-test-deps fills). Every record is counted and checked in order."""
import os
import subprocess
from pathlib import Path

import pytest

CLIENTS = Path(__file__).resolve().parent / "clients"
GO_ENV = {**os.environ, "GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOFLAGS": ""}


@pytest.fixture(scope="module")
def go_clients(tmp_path_factory):
    """The Sarama and kafka-go programs, built once for this file."""
    out = tmp_path_factory.mktemp("go-clients")
    built = {}
    for name in ["sarama_old", "kafkago_old"]:
        subprocess.run(["go", "build", "-o", str(out / name), "."], cwd=CLIENTS / name,
                       env=GO_ENV, check=True, capture_output=True, timeout=600)
        built[name] = out / name
    return built


def run(args, timeout=120, cwd=None):
    """Runs a client; its one line of output, or a failure naming its stderr."""
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)
    assert done.returncode == 0, f"{args[:3]}: {done.stderr.strip()}"
    return done.stdout.strip()


def sarama(clients, broker, *args, version=None):
    extra = ["-version", version] if version else []
    return run([clients["sarama_old"], "-brokers", broker.bootstrap, *extra, *args])


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy"])
def test_r_wire_13_sarama_default_version_produces_consumes_commits_and_resumes(
        broker, go_clients, codec):
    """Sarama's default (Kafka 0.8.2): Produce v0 with message format v0 in each codec,
    Fetch v0, OffsetCommit/OffsetFetch v1. 500 records; a group reads 200, commits,
    and a new consumer of the group resumes at 200 and reads the other 300."""
    topic = f"sarama-{codec}"
    assert sarama(go_clients, broker, "-mode", "produce", "-topic", topic, "-n", 500,
                  "-codec", codec) == "produced 500"
    assert sarama(go_clients, broker, "-mode", "consume", "-topic", topic, "-group", "g",
                  "-n", 200) == "consumed 200 from -2"
    assert sarama(go_clients, broker, "-mode", "consume", "-topic", topic, "-group", "g",
                  "-n", 300) == "consumed 300 from 200"


def test_r_wire_13_sarama_0_10_magic_1_every_codec_and_admin(broker, go_clients):
    """Sarama configured for Kafka 0.10.0: Produce v2 and Fetch v2 with message format
    v1 (lz4 too), 4 x 250 records read back in order; as 0.11 its ClusterAdmin creates a
    topic (CreateTopics v1), describes it (DescribeConfigs v0) and deletes it."""
    for i, codec in enumerate(["none", "gzip", "snappy", "lz4"]):
        assert sarama(go_clients, broker, "-mode", "produce", "-topic", "s10", "-n", 250,
                      "-first", i * 250, "-codec", codec, version="0.10.0.0") == "produced 250"
    assert sarama(go_clients, broker, "-mode", "consume", "-topic", "s10", "-group", "g10",
                  "-n", 1000, version="0.10.0.0") == "consumed 1000 from -2"
    assert sarama(go_clients, broker, "-mode", "admin", "-topic", "sarama-admin",
                  version="0.11.0.0") == "admin ok"


def test_r_wire_13_kafka_go_0_2_writer_and_group_reader(broker, go_clients):
    """kafka-go 0.2.1's defaults: CreateTopics v0, Produce v2 (format v1) in every
    codec, 4 x 250 records; a group reader (Fetch v2, OffsetCommit v2) reads 600 and
    commits, a second one resumes and reads the other 400."""
    kgo = go_clients["kafkago_old"]
    b = ["-brokers", broker.bootstrap]
    assert run([kgo, *b, "-mode", "create", "-topic", "kgo"]) == "created"
    for i, codec in enumerate(["none", "gzip", "snappy", "lz4"]):
        assert run([kgo, *b, "-mode", "produce", "-topic", "kgo", "-codec", codec,
                    "-first", i * 250, "-n", 250]) == "produced 250"
    assert run([kgo, *b, "-mode", "consume", "-topic", "kgo", "-group", "kg",
                "-first", 0, "-n", 600]) == "consumed 600"
    assert run([kgo, *b, "-mode", "consume", "-topic", "kgo", "-group", "kg",
                "-first", 600, "-n", 400]) == "consumed 400"


def test_r_wire_13_kafkajs_admin_codecs_group_commit_and_resume(broker):
    """kafkajs 2.2.4 (npm): creates a topic and reads its config back, produces 3 x 300
    records (none, gzip, snappy), a group reads 500 and commits, a second run of the
    group resumes at 500 and reads the other 400."""
    js = ["node", "client.js", broker.bootstrap]
    cwd = CLIENTS / "kafkajs"
    assert run([*js, "admin", "kjs"], cwd=cwd) == "admin ok"
    for i, codec in enumerate(["none", "gzip", "snappy"]):
        assert run([*js, "produce", "kjs", 300, codec, i * 300], cwd=cwd) == "produced 300"
    assert run([*js, "consume", "kjs", 500, "kjg", 0], cwd=cwd) == "consumed 500"
    assert run([*js, "consume", "kjs", 400, "kjg", 500], cwd=cwd) == "consumed 400"
