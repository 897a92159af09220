#!/usr/bin/env bash
# Side-by-side benchmark: natsd against the Go nats-server, same machine, same run.
#
#   scripts/bench-compare.sh [-r ROUNDS] [-o OUTDIR] [-s SCALE] [-k core|js|cluster|all]
#
# Builds natsd and natsd-bench (release), installs nats-server with apt-get when
# it is missing and we are root (otherwise runs natsd alone), starts both on
# 127.0.0.1 on free ports, and runs every scenario against each in alternation
# (natsd, nats-server, natsd, ...) for ROUNDS rounds (default 3) with 16 B and
# 1 KiB payloads. Each run is bounded by a message count and 20 s. The idle
# scenario gets a freshly started server each time, so memory freed by earlier
# scenarios cannot hide the per-connection cost. Prints markdown tables of
# medians. JetStream scenarios (-k js or all) run against servers started with
# -js and a fresh store directory each round: sync publish (file stream),
# async publish with 256 acks in flight (file and memory streams), reading
# back through a durable pull consumer with and without acks, through an
# ordered push consumer (js-consume --push) and through a durable push
# consumer acking each message (js-consume --push-ack); both
# servers keep their default sync policy (fsync on an interval). Cluster
# scenarios (-k cluster or all) start a 3-node cluster of each server (two
# nodes route to the first and find each other by gossip) and run pubsub with
# the publisher on node 1 and the subscriber on node 2, and fanout to one
# subscriber on each node; CPU is the three servers' together.
# Environment: ROUNDS, SCALE (multiplies message counts; default 1),
# NATS_SERVER (path of the Go server), CARGO_TARGET_DIR (where cargo builds).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SCALE=${SCALE:-1}
OUT=""
KIND=all
while getopts "r:o:s:k:h" opt; do
    case $opt in
        r) ROUNDS=$OPTARG ;;
        o) OUT=$OPTARG ;;
        s) SCALE=$OPTARG ;;
        k) KIND=$OPTARG ;;
        *) sed -n '2,15p' "$0"; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
cargo build --release --bin natsd --bin natsd-bench
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
NATSD=$TARGET/release/natsd
BENCH=$TARGET/release/natsd-bench

# The reference is the pinned release .ci/run installs, else one on PATH.
PINNED=$HOME/.cache/natsd-ref/2.15.1/bin/nats-server
[[ -z ${NATS_SERVER:-} && -x $PINNED ]] && NATS_SERVER=$PINNED
NATS_SERVER=${NATS_SERVER:-$(command -v nats-server || true)}
if [[ -z $NATS_SERVER && -x /usr/sbin/nats-server ]]; then
    NATS_SERVER=/usr/sbin/nats-server
fi
if [[ -z $NATS_SERVER ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get install -y nats-server >&2 || { apt-get update >&2 && apt-get install -y nats-server >&2; }
        NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
    else
        echo "nats-server not installed and not root: running natsd alone" >&2
    fi
fi
[[ -n $NATS_SERVER && ! -x $NATS_SERVER ]] && NATS_SERVER=""

# 1,000 idle connections need 2,000+ descriptors in the client.
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [[ -z $OUT ]]; then
    OUT=$(mktemp -d /tmp/bench-compare.XXXXXX)
fi
mkdir -p "$OUT"

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server NAME [ARGS...]: starts it on a free loopback port; sets PORT and PID.
start_server() {
    local name=$1 bin
    shift
    case $name in
        natsd) bin=$NATSD ;;
        nats-server) bin=$NATS_SERVER ;;
    esac
    PORT=$(free_port)
    "$bin" -a 127.0.0.1 -p "$PORT" "$@" >"$OUT/$name.$PORT.log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    echo "$name did not start on port $PORT; log: $OUT/$name.$PORT.log" >&2
    exit 1
}

# start_cluster NAME: three nodes of it on free ports, nodes 2 and 3 routing to node 1;
# sets CURL (client URLs) and CPID (pids).
start_cluster() {
    local name=$1 seed i
    CURL=()
    CPID=()
    seed=$(free_port)
    for i in 0 1 2; do
        local cport=$seed
        ((i > 0)) && cport=$(free_port)
        local args=(--cluster "nats://127.0.0.1:$cport" --cluster_name bench -n "$name-$i")
        ((i > 0)) && args+=(--routes "nats://127.0.0.1:$seed")
        start_server "$name" "${args[@]}"
        CURL+=("nats://127.0.0.1:$PORT")
        CPID+=("$PID")
    done
}

stop_server() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

SERVERS=(natsd)
[[ -n $NATS_SERVER ]] && SERVERS+=(nats-server)

declare -A URL SPID
if [[ $KIND == core || $KIND == all ]]; then
    for s in "${SERVERS[@]}"; do
        start_server "$s"
        URL[$s]=nats://127.0.0.1:$PORT
        SPID[$s]=$PID
    done
fi

# Message counts per scenario: enough for the 10 ms CPU-time resolution of
# /proc/PID/stat to matter little, small enough for 2 cores.
msgs_for() {
    local n
    case $1 in
        pub) n=2000000 ;;
        pubsub | fanin | queue) n=1000000 ;;
        fanout) n=500000 ;;
        reqrep | js-sync) n=20000 ;;
        js-async) n=500000 ;;
        js-consume) n=300000 ;;
    esac
    python3 -c "print(max(1, int($n * $SCALE)))"
}

run_one() { # server scenario size round
    local s=$1 sc=$2 size=$3 round=$4
    local f="$OUT/$s.$sc.$size.$round.json"
    # Exit status 3 (lost messages or errors) still leaves a report to keep.
    "$BENCH" "$sc" --server "${URL[$s]}" --size "$size" --msgs "$(msgs_for "$sc")" \
        --duration 20 --server-pid "${SPID[$s]}" --json --quiet >"$f" || [[ $? -eq 3 ]]
    echo "  $s $sc ${size}B round $round done" >&2
}

for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS" >&2
    # Alternate which server goes first each round, so drift hits both.
    order=("${SERVERS[@]}")
    if ((round % 2 == 0)) && ((${#SERVERS[@]} == 2)); then
        order=("${SERVERS[1]}" "${SERVERS[0]}")
    fi
    if [[ $KIND == core || $KIND == all ]]; then
        for sc in pub pubsub fanout fanin queue reqrep; do
            for size in 16 1024; do
                for s in "${order[@]}"; do
                    run_one "$s" "$sc" "$size" "$round"
                done
            done
        done
        for s in "${order[@]}"; do
            start_server "$s"
            "$BENCH" idle --server "nats://127.0.0.1:$PORT" --conns 1000 --hold 3 \
                --server-pid "$PID" --json --quiet >"$OUT/$s.idle.0.$round.json" || [[ $? -eq 3 ]]
            stop_server "$PID"
            echo "  $s idle round $round done" >&2
        done
    fi
    if [[ $KIND == cluster || $KIND == all ]]; then
        for s in "${order[@]}"; do
            start_cluster "$s"
            for size in 16 1024; do
                f="$OUT/$s.cluster-pubsub.$size.$round.json"
                "$BENCH" pubsub --server "${CURL[0]}" --sub-server "${CURL[1]}" --size "$size" \
                    --msgs "$(msgs_for pubsub)" --duration 20 --server-pid "${CPID[0]}" \
                    --peer-pids "${CPID[1]},${CPID[2]}" --json --quiet >"$f" || [[ $? -eq 3 ]]
                f="$OUT/$s.cluster-fanout.$size.$round.json"
                "$BENCH" fanout --subs 3 --server "${CURL[0]}" \
                    --sub-server "${CURL[0]},${CURL[1]},${CURL[2]}" --size "$size" \
                    --msgs "$(msgs_for fanout)" --duration 20 --server-pid "${CPID[0]}" \
                    --peer-pids "${CPID[1]},${CPID[2]}" --json --quiet >"$f" || [[ $? -eq 3 ]]
                echo "  $s cluster ${size}B round $round done" >&2
            done
            for pid in "${CPID[@]}"; do
                stop_server "$pid"
            done
        done
    fi
    if [[ $KIND == js || $KIND == all ]]; then
        for s in "${order[@]}"; do
            store="$OUT/store.$s.$round"
            start_server "$s" -js -sd "$store"
            for run in js-sync:file js-async:file js-async:memory js-consume:file js-consume:file:--no-ack js-consume:file:--push js-consume:file:--push-ack; do
                IFS=: read -r sc storage flag <<<"$run"
                case $flag in
                    --no-ack) label=$sc-$storage-noack ;;
                    --push) label=$sc-$storage-push ;;
                    --push-ack) label=$sc-$storage-push-ack ;;
                    *) label=$sc-$storage ;;
                esac
                "$BENCH" "$sc" --server "nats://127.0.0.1:$PORT" --size 16 --storage "$storage" \
                    --msgs "$(msgs_for "$sc")" --duration 20 --server-pid "$PID" --json --quiet $flag \
                    >"$OUT/$s.$label.16.$round.json" || {
                    # 3: lost messages or errors (the report stays); else the
                    # server cannot run it (e.g. no consumers): n/a in the table.
                    rc=$?
                    [[ $rc -eq 3 ]] || { echo "  $s $label: natsd-bench exit $rc" >&2; rm -f "$OUT/$s.$label.16.$round.json"; }
                }
                echo "  $s $sc $storage round $round done" >&2
            done
            stop_server "$PID"
            rm -rf "$store"
        done
    fi
done

echo "JSON reports: $OUT" >&2
echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
echo "Servers: natsd $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $([[ -n $NATS_SERVER ]] && "$NATS_SERVER" --version 2>&1 | head -1 || echo 'nats-server: not run')"
echo "Command: scripts/bench-compare.sh -r $ROUNDS -s $SCALE -k $KIND; medians of $ROUNDS rounds"
echo
python3 - "$OUT" "$KIND" <<'EOF'
import glob, json, os, statistics, sys

out, kind = sys.argv[1], sys.argv[2]
runs = {}  # (server, scenario, size) -> [report]
for path in glob.glob(os.path.join(out, "*.json")):
    server, scenario, size, _round, _ = os.path.basename(path).rsplit(".", 4)
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError):
        continue
    runs.setdefault((server, scenario, int(size)), []).append(report)

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

def rate(r):
    # Delivered rate where there are subscribers; the publish rate otherwise.
    side = r.get("subscribe") if r.get("subs") else r.get("publish")
    return side["msgs_per_sec"] if side else None

def cpu(r):
    u = r.get("server_usage")
    return u["cpu_us_per_msg"] if u else None

def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)

def ratio(a, b):
    return a / b if a is not None and b else None

def stat(server, scenario, size, fn):
    return med(fn(r) for r in runs.get((server, scenario, size), []))

def lost(server, scenario, size):
    rs = runs.get((server, scenario, size), [])
    if not rs:
        return "n/a"
    errs = sum(1 for r in rs if r.get("errors"))
    total = sum(r.get("lost", 0) for r in rs)
    return f"{total}" + (f" ({errs} runs with errors)" if errs else "")

A, B = "natsd", "nats-server"
def core():
    print("| scenario | size | natsd msgs/s | nats-server msgs/s | ratio | natsd CPU µs/msg | nats-server CPU µs/msg | CPU ratio | lost natsd / nats-server |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for sc in ["pub", "pubsub", "fanout", "fanin", "queue", "reqrep"]:
        for size in [16, 1024]:
            ra, rb = stat(A, sc, size, rate), stat(B, sc, size, rate)
            ca, cb = stat(A, sc, size, cpu), stat(B, sc, size, cpu)
            print(f"| {sc} | {size} | {fmt(ra, ',.0f')} | {fmt(rb, ',.0f')} | {fmt(ratio(ra, rb), '.2f')} "
                  f"| {fmt(ca, '.3f')} | {fmt(cb, '.3f')} | {fmt(ratio(ca, cb), '.2f')} "
                  f"| {lost(A, sc, size)} / {lost(B, sc, size)} |")

    print()
    print("Request/reply round trip (µs, medians of the runs' percentiles):")
    print()
    print("| size | natsd p50 | nats-server p50 | natsd p99 | nats-server p99 | p99 ratio |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in [16, 1024]:
        lat = lambda s, k: stat(s, "reqrep", size, lambda r: (r.get("latency_us") or {}).get(k))
        a99, b99 = lat(A, "p99"), lat(B, "p99")
        print(f"| {size} | {fmt(lat(A, 'p50'), '.1f')} | {fmt(lat(B, 'p50'), '.1f')} "
              f"| {fmt(a99, '.1f')} | {fmt(b99, '.1f')} | {fmt(ratio(a99, b99), '.2f')} |")

    print()
    print("Idle connections (1,000, fresh server each round): server RSS growth per connection")
    print()
    print("| natsd KiB/conn | nats-server KiB/conn | ratio |")
    print("|---:|---:|---:|")
    ia = stat(A, "idle", 0, lambda r: (r.get("idle") or {}).get("rss_per_conn_kib"))
    ib = stat(B, "idle", 0, lambda r: (r.get("idle") or {}).get("rss_per_conn_kib"))
    print(f"| {fmt(ia, '.2f')} | {fmt(ib, '.2f')} | {fmt(ratio(ia, ib), '.2f')} |")

def js():
    print("JetStream, 16 B (fresh -js server and store each round; default sync policy on both; B/msg RSS: server RSS growth per stored message):")
    print()
    print("| scenario | natsd msgs/s | nats-server msgs/s | ratio | natsd CPU µs/msg | nats-server CPU µs/msg | CPU ratio | natsd p99 µs | nats-server p99 µs | natsd B/msg RSS | nats-server B/msg RSS | errors natsd / nats-server |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for sc in ["js-sync-file", "js-async-file", "js-async-memory", "js-consume-file", "js-consume-file-noack", "js-consume-file-push", "js-consume-file-push-ack"]:
        ra, rb = stat(A, sc, 16, rate), stat(B, sc, 16, rate)
        ca, cb = stat(A, sc, 16, cpu), stat(B, sc, 16, cpu)
        p99 = lambda s: stat(s, sc, 16, lambda r: (r.get("latency_us") or {}).get("p99"))
        mem = lambda s: stat(s, sc, 16, lambda r: r.get("stored_rss_per_msg"))
        print(f"| {sc} | {fmt(ra, ',.0f')} | {fmt(rb, ',.0f')} | {fmt(ratio(ra, rb), '.2f')} "
              f"| {fmt(ca, '.3f')} | {fmt(cb, '.3f')} | {fmt(ratio(ca, cb), '.2f')} "
              f"| {fmt(p99(A), '.1f')} | {fmt(p99(B), '.1f')} | {fmt(mem(A), '.0f')} | {fmt(mem(B), '.0f')} "
              f"| {lost(A, sc, 16)} / {lost(B, sc, 16)} |")

def cluster():
    print("Clusters of 3 nodes (pubsub: publisher on node 1, subscriber on node 2; fanout: one subscriber on each node; CPU: all three servers per delivered message):")
    print()
    print("| scenario | size | natsd msgs/s | nats-server msgs/s | ratio | natsd CPU µs/msg | nats-server CPU µs/msg | CPU ratio | lost natsd / nats-server |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for sc in ["cluster-pubsub", "cluster-fanout"]:
        for size in [16, 1024]:
            ra, rb = stat(A, sc, size, rate), stat(B, sc, size, rate)
            ca, cb = stat(A, sc, size, cpu), stat(B, sc, size, cpu)
            print(f"| {sc} | {size} | {fmt(ra, ',.0f')} | {fmt(rb, ',.0f')} | {fmt(ratio(ra, rb), '.2f')} "
                  f"| {fmt(ca, '.3f')} | {fmt(cb, '.3f')} | {fmt(ratio(ca, cb), '.2f')} "
                  f"| {lost(A, sc, size)} / {lost(B, sc, size)} |")

if kind in ("core", "all"):
    core()
    print()
if kind in ("js", "all"):
    js()
    print()
if kind in ("cluster", "all"):
    cluster()
    print()
print("msgs/s: subscriber side (all deliveries) where there are subscribers, publisher side for pub;")
print("reqrep: round trips/s. CPU: server utime+stime per delivered message (reqrep: 2 per round trip).")
EOF
