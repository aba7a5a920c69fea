#!/usr/bin/env bash
# First contact as a script sees it (issue 14, R-START-4): start a fresh single node
# on an empty data directory, wait for its Kafka port to accept a connection, then run
# `kcat -L` once. Prints the milliseconds from process start to kcat's successful
# answer listing the broker, or FAIL if that first kcat -L did not list it.
#
#   benches/first-contact.sh [CHRONIK_BINARY] [RUNS]
set -euo pipefail
bin=${1:-target/release/chronik}
runs=${2:-10}
for _ in $(seq "$runs"); do
  data=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  start=$(date +%s%N)
  "$bin" --data-dir "$data" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
  pid=$!
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.002; done
  if kcat -L -b "127.0.0.1:$port" -m 10 2>/dev/null | grep -q " 1 brokers"; then
    echo $(( ($(date +%s%N) - start) / 1000000 ))
  else
    echo FAIL
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
done
