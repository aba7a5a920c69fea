"""Fixtures that run the real `chronik` binary on 127.0.0.1 with a fresh data
directory and a free port, and always stop it."""
import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BINARY = Path(os.environ.get("CHRONIK_BIN", ROOT / "target" / "release" / "chronik"))
SIM_BINARY = Path(os.environ.get("CHRONIK_SIM_BIN", ROOT / "target" / "release" / "chronik-sim"))


# Ports handed out in this test process. The OS may give a port that was free a
# moment ago to the next bind(0) as well: a cluster once got the same port as one
# node's HTTP listener and another's peer listener, and that node could not start.
_handed_out = set()


def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


class Broker:
    def __init__(self, data_dir, port=None, extra_args=()):
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        # The broker sets 64 MiB of its disk aside (R-OPS-4); a few hundred test
        # brokers whose directories outlive them would hold gigabytes.
        if "--disk-reserve-bytes" not in self.extra_args:
            self.extra_args += ["--disk-reserve-bytes", str(1024 * 1024)]
        self.port = port or free_port()
        self.http_port = free_port()
        self.proc = None
        self.log_path = self.data_dir.parent / f"broker-{self.port}.log"

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=10.0):
        assert BINARY.exists(), f"build the broker first: {BINARY} is missing"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(BINARY), "--data-dir", str(self.data_dir), "--listen", self.bootstrap,
             "--http-listen", f"127.0.0.1:{self.http_port}", *self.extra_args],
            stdout=self.log, stderr=self.log,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}; log: {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("broker did not start listening in time")

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()
        if getattr(self, "log", None):
            self.log.close()
            self.log = None
        return self.proc.returncode if self.proc else None


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "data").start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def broker_factory(tmp_path):
    started = []

    def make(data_dir=None, port=None):
        b = Broker(data_dir or tmp_path / "data", port).start()
        started.append(b)
        return b

    try:
        yield make
    finally:
        for b in started:
            b.stop()


# Raw Kafka frames, for what a client library will not send (or not yet).
def frame(api_key, version, correlation_id, body):
    header = struct.pack(">hhih", api_key, version, correlation_id, 4) + b"test"
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def kafka_string(text):
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def read_frame(sock):
    size = struct.unpack(">i", recv_exactly(sock, 4))[0]
    return recv_exactly(sock, size)


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class Cluster:
    """Three (or n) `chronik` processes on 127.0.0.1, each with its own data directory,
    Kafka port and peer port; every node is a voter of the metadata group. Each node
    writes its Raft trace (`--raft-trace`), and `stop` checks them against the Raft
    rules (spec/conformance.md C-10): a cluster test fails on a Raft step the rules do
    not allow, whatever else it asserts."""

    def __init__(self, root, n=3, extra_args=(), node_args=lambda node_id: []):
        self.root = Path(root)
        peer_ports = [free_port() for _ in range(n)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(peer_ports))
        self.raft_traces = [self.root / f"raft-{i + 1}.trace" for i in range(n)]
        self.nodes = [
            Broker(self.root / f"node{i + 1}", free_port(),
                   ["--node-id", str(i + 1), "--voters", voters,
                    "--raft-trace", str(self.raft_traces[i]), *extra_args,
                    *node_args(i + 1)])
            for i in range(n)
        ]
        self.raft_trace_checked = False

    def node(self, node_id):
        return self.nodes[node_id - 1]

    @property
    def bootstrap(self):
        return ",".join(n.bootstrap for n in self.nodes if n.running)

    def stop(self):
        for n in self.nodes:
            n.stop()
        if not self.raft_trace_checked:
            self.raft_trace_checked = True
            check_raft_traces([t for t in self.raft_traces if t.exists()], len(self.nodes))


def check_raft_traces(traces, voters):
    """C-10: every metadata Raft step the brokers wrote, merged by time, is one the
    Raft rules allow (`chronik-sim --check-raft-trace`)."""
    if not traces:
        return
    out = subprocess.run([str(SIM_BINARY), "--nodes", str(voters), "--check-raft-trace",
                          *map(str, traces)], capture_output=True, text=True, timeout=120)
    print(out.stdout + out.stderr)
    assert out.returncode == 0, \
        f"the Raft traces break the Raft rules (C-10):\n{out.stdout}{out.stderr}"


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()
