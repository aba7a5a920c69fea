#!/usr/bin/env bash
# Runs fio and the WAL benches in one sitting and prints every bench as a fraction of
# the fio figure it is judged against. This machine is noisy: compare ratios, not
# absolute numbers. Usage: benches/compare-fio.sh [--skip-bench]
# Needs fio (apt-get install fio). Data goes to $CHRONIK_BENCH_DIR (default
# target/bench-data), which must be on the same file system for both.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CHRONIK_BENCH_DIR=${CHRONIK_BENCH_DIR:-$root/target/bench-data}
fiodir=$CHRONIK_BENCH_DIR/fio
out=$root/target/fio-results
mkdir -p "$fiodir" "$out"
command -v fio >/dev/null || { echo "fio is not installed: apt-get install fio" >&2; exit 1; }

run_fio() { # name, then fio options
  local name=$1; shift
  rm -f "$fiodir"/*
  fio --name="$name" --directory="$fiodir" --ioengine=psync --output-format=json "$@" >"$out/$name$sfx.json"
}
run_all_fio() { # suffix for the result files
echo "fio: buffered sequential writes"
run_fio write_1k  --rw=write --bs=1k  --size=256M
run_fio write_16k --rw=write --bs=16k --size=1G
run_fio write_1m  --rw=write --bs=1m  --size=1G
echo "fio: one writer, fdatasync after every write"
for bs in 1k 16k 1m; do
  run_fio "fdatasync_$bs" --rw=write --bs=$bs --size=256M --fdatasync=1 --time_based --runtime=5
done
echo "fio: the same, appending to a growing file as a log does"
for bs in 1k 16k 1m; do
  run_fio "fdatasync_append_$bs" --rw=write --bs=$bs --size=64M --fdatasync=1 --file_append=1 --time_based --runtime=5
done
run_fio "fdatasync_append_4x_16k" --rw=write --bs=16k --size=64M --fdatasync=1 --file_append=1 --numjobs=4 \
  --group_reporting --time_based --runtime=5
echo "fio: 4 and 16 writers, fdatasync after every write"
for n in 4 16; do for bs in 1k 16k; do
  run_fio "fdatasync_${n}x_$bs" --rw=write --bs=$bs --size=64M --fdatasync=1 --numjobs=$n \
    --group_reporting --time_based --runtime=5
done; done
echo "fio: cached sequential read"
rm -f "$fiodir"/*
fio --name=prep --directory="$fiodir" --filename=seq --rw=write --bs=1m --size=1G --ioengine=psync >/dev/null
fio --name=read_cached --directory="$fiodir" --filename=seq --rw=read --bs=1m --size=1G \
  --ioengine=psync --invalidate=0 --output-format=json >"$out/read_cached$sfx.json"
rm -f "$fiodir"/*

}
sfx=.before run_all_fio

if [ "${1:-}" != "--skip-bench" ]; then
  cargo bench -p chronik-benches --bench wal 2>&1 | tee "$out/criterion.txt" | grep -E "^[a-z_]+/|thrpt|per fdatasync" || true
fi
sfx=.after run_all_fio

python3 - "$out" "$root/target/criterion" <<'PY'
import json, os, sys
out, crit = sys.argv[1], sys.argv[2]
def fio(name, key="write"):
    """Mean of the runs before and after the benches; the spread is printed below."""
    runs = [json.load(open(os.path.join(out, f"{name}.{when}.json")))["jobs"][0][key]
            for when in ("before", "after")]
    spread.append((name, [round(r["iops"]) for r in runs], [round(r["bw_bytes"]/1e6) for r in runs]))
    return sum(r["bw_bytes"] for r in runs)/2, sum(r["iops"] for r in runs)/2
spread = []
def bench(path):
    d = os.path.join(crit, path, "new")
    est = json.load(open(os.path.join(d, "estimates.json")))["mean"]["point_estimate"]
    tp = json.load(open(os.path.join(d, "benchmark.json"))).get("throughput") or {}
    per_iter = tp.get("Bytes") or tp.get("Elements") or 1
    return per_iter * 1e9 / est, est
rows = []
def mbs(x): return f"{x/1e6:,.0f} MB/s"
def ops(x): return f"{x:,.0f}/s"
for size, fsz in [("1KiB","1k"),("16KiB","16k"),("1MiB","1m")]:
    ours, _ = bench(f"append_buffered/{size}")
    ref, _ = fio(f"write_{fsz}")
    target = "info (40% in the notes)" if size == "1KiB" else ">= 80%"
    rows.append((f"append_buffered/{size}", mbs(ours), f"fio write bs={fsz}: {mbs(ref)}", ours/ref, target))
for size, fsz in [("1KiB","1k"),("16KiB","16k"),("1MiB","1m")]:
    ours_bytes, ns = bench(f"append_fsync/{size}")
    ours = 1e9/ns
    _, ref = fio(f"fdatasync_{fsz}")
    _, app = fio(f"fdatasync_append_{fsz}")
    rows.append((f"append_fsync/{size}", ops(ours) + f" ({mbs(ours_bytes)})", f"fio fdatasync bs={fsz}: {ops(ref)}; appending: {ops(app)} ({ours/app*100:.0f}%)", ours/ref, ">= 90%"))
for size, fsz in [("1KiB","1k"),("16KiB","16k")]:
    for n in (1, 4, 16):
        ours, _ = bench(f"group_commit/{size}/{n}")
        ref = fio(f"fdatasync_{fsz}")[1] if n == 1 else fio(f"fdatasync_{n}x_{fsz}")[1]
        target = ">= 90%" if n == 4 else "info"
        note = ""
        if n == 4 and fsz == "16k":
            app = fio("fdatasync_append_4x_16k")[1]
            note = f"; appending: {ops(app)} ({ours/app*100:.0f}%)"
        rows.append((f"group_commit/{size}/{n} producers", ops(ours), f"fio {n} writer(s) fdatasync bs={fsz}: {ops(ref)}{note}", ours/ref, target))
ours, _ = bench("recovery/scan_1GiB_16KiB_batches")
ref, _ = fio("read_cached", "read")
rows.append(("recovery/scan 1 GiB (16 KiB batches)", mbs(ours), f"fio cached read bs=1m: {mbs(ref)}", ours/ref, ">= 50%"))
_, ns = bench("read_by_offset/cached_1KiB")
rows.append(("read_by_offset/cached 1 KiB batch", f"{ns/1000:.1f} µs per read", "-", None, "info"))
print("\n| benchmark | Chronik | fio, same sitting | ratio | target |\n|---|---|---|---|---|")
for name, ours, ref, ratio, target in rows:
    r = "-" if ratio is None else f"{ratio*100:.0f}%"
    print(f"| {name} | {ours} | {ref} | {r} | {target} |")
print("\nfio before / after the benches (ops/s; MB/s):")
seen = set()
for name, iops, mb in spread:
    if name not in seen:
        seen.add(name)
        print(f"- {name}: {iops[0]:,} / {iops[1]:,} ops/s; {mb[0]:,} / {mb[1]:,} MB/s")
PY
