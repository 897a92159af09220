#!/usr/bin/env bash
# Run every cargo-fuzz target of fuzz/ for a while and report which crashed.
#
#   scripts/fuzz-all.sh SECONDS
#
# Installs cargo-fuzz (cargo install) and the nightly toolchain (rustup) when
# they are missing, lists the targets (`cargo +nightly fuzz list`) and runs each
# for SECONDS (`cargo +nightly fuzz run <t> -- -max_total_time=SECONDS`),
# starting from the committed corpus fuzz/corpus/<t>/. New inputs go to
# fuzz/target/fuzz-all-corpus/<t>/, so the committed corpus stays as it is
# (minimise and copy them there with `cargo +nightly fuzz cmin <t>` to keep
# them). Ends with one line per target: the runs done and "clean" or "CRASH"
# with the crash input (fuzz/artifacts/<t>/crash-...; replay it with
# `cargo +nightly fuzz run <t> <file>`). Each target's libFuzzer output is in
# fuzz/target/fuzz-all-logs/<t>.log. Exits 1 if any target crashed.
set -euo pipefail

if [[ $# -ne 1 || ! $1 =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 SECONDS (per target)" >&2
    exit 2
fi
duration=$1
cd "$(dirname "$0")/../fuzz"

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz
fi

mapfile -t targets < <(cargo +nightly fuzz list)
mkdir -p target/fuzz-all-logs
summary=()
crashed=0
for t in "${targets[@]}"; do
    log=target/fuzz-all-logs/$t.log
    scratch=target/fuzz-all-corpus/$t
    mkdir -p "$scratch" "corpus/$t"
    echo "== $t: ${duration}s" >&2
    status=clean
    if ! cargo +nightly fuzz run "$t" "$scratch" "corpus/$t" -- -max_total_time="$duration" >"$log" 2>&1; then
        status=CRASH
        crashed=1
    fi
    # libFuzzer ends a clean run with "Done N runs"; otherwise take its last "#N" status line.
    runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
    if [[ -z $runs ]]; then
        runs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    fi
    line=$(printf '%-22s %12s runs  %s' "$t" "${runs:-0}" "$status")
    if [[ $status == CRASH ]]; then
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        line+="  ${artifact:-no artifact: see fuzz/$log}"
    fi
    summary+=("$line")
done

printf '%s\n' "${summary[@]}"
exit "$crashed"
