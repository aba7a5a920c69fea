#!/usr/bin/env python3
"""Issue 12's memory flood: N connections each send most of a large request frame and
stop, while one more client asks ApiVersions. Prints the broker's peak resident memory
(VmHWM) before and during the flood, and whether the bystander was answered.

    python3 benches/request_memory.py --bin target/release/chronik
"""

import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

CHUNK = b"\xff" * (1 << 20)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_hwm_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_for_port(port, deadline):
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("broker did not listen")


def flood(port, frame, send, sockets):
    """Sends a frame size and `send` bytes of it, then holds the connection."""
    s = socket.create_connection(("127.0.0.1", port))
    sockets.append(s)
    try:
        s.sendall(struct.pack(">i", frame))
        left = send
        while left > 0:
            n = min(left, len(CHUNK))
            s.sendall(CHUNK[:n])
            left -= n
    except OSError:
        pass  # closed by the broker


def api_versions_answered(port, timeout):
    """ApiVersions v0 on a fresh connection: True when answered in time."""
    body = struct.pack(">hhih", 18, 0, 1, -1)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            return len(s.recv(4)) == 4
    except OSError:
        return False


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--frame-mb", type=float, default=95)
    p.add_argument("--send-fraction", type=float, default=0.95)
    p.add_argument("--settle-s", type=float, default=10)
    a = p.parse_args()
    frame = int(a.frame_mb * 1_000_000)
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        broker = subprocess.Popen(
            [a.bin, "--data-dir", data, "--listen", f"127.0.0.1:{port}",
             "--log-level", "warn"],
            stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, time.time() + 20)
            before = vm_hwm_mb(broker.pid)
            sockets = []
            for _ in range(a.connections):
                threading.Thread(
                    target=flood,
                    args=(port, frame, int(frame * a.send_fraction), sockets),
                    daemon=True).start()
            # Let every sender send what the broker will take.
            time.sleep(a.settle_s)
            answered = api_versions_answered(port, 5)
            peak = vm_hwm_mb(broker.pid)
            print(f"connections={a.connections} frame={frame} "
                  f"sent_each={int(frame * a.send_fraction)}")
            print(f"VmHWM before={before:.0f} MB during={peak:.0f} MB "
                  f"bystander ApiVersions answered={answered}")
            for s in sockets:
                s.close()
        finally:
            broker.terminate()
            broker.wait(timeout=30)


if __name__ == "__main__":
    main()
