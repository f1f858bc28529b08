#!/usr/bin/env bash
# Interop run: discord.js's @discordjs/ws against the gateway simulator
# (`cargo run --example simulator`), script `resume`, once per compression
# mode (zlib-stream via node:zlib, zlib-stream via zlib-sync, none), with a
# fresh simulator for each. Exits non-zero if any mode fails.
#
#   interop/discordjs/run.sh          # from anywhere; works from the repo root
#
# Needs cargo, node >= 20 and npm (only the npm registry is contacted).
# Environment: EVENTS (default 20), INTERVAL_MS (1000), CHECK_TIMEOUT (30),
# MODES (default "zlib-native zlib-sync none"), CHECK_DEBUG=1 for the
# library's debug log.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

EVENTS="${EVENTS:-20}"
INTERVAL_MS="${INTERVAL_MS:-1000}"
CHECK_TIMEOUT="${CHECK_TIMEOUT:-30}"
MODES="${MODES:-zlib-native zlib-sync none}"

work="$(mktemp -d "${TMPDIR:-/tmp}/discordjs-interop.XXXXXX")"
sim_pid=""

stop_simulator() {
    if [[ -n "$sim_pid" ]]; then
        kill "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
        sim_pid=""
    fi
}
cleanup() {
    stop_simulator
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building the simulator example"
cargo build --example simulator
target_dir="$(cargo metadata --no-deps --format-version 1 |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
simulator="$target_dir/debug/examples/simulator"
[[ -x "$simulator" ]] || { echo "no simulator binary at $simulator" >&2; exit 1; }

echo "== installing @discordjs/ws (npm registry only)"
if [[ -f "$here/package-lock.json" ]]; then
    (cd "$here" && npm ci --no-audit --no-fund)
else
    (cd "$here" && npm install --no-audit --no-fund)
fi

# Starts a fresh simulator on a free port (the OS picks it: --port 0) and
# sets sim_pid and sim_port.
start_simulator() {
    local log="$1"
    "$simulator" --port 0 --script resume --events "$EVENTS" --interval "$INTERVAL_MS" \
        --exit-after-secs 60 2>"$log" &
    sim_pid=$!
    sim_port=""
    for _ in $(seq 100); do
        sim_port="$(sed -n 's#^gateway simulator on ws://127\.0\.0\.1:\([0-9]*\) .*#\1#p' "$log")"
        [[ -n "$sim_port" ]] && return 0
        kill -0 "$sim_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "the simulator did not start:" >&2
    cat "$log" >&2
    return 1
}

failed=()
passed=()
skipped=()
for mode in $MODES; do
    if [[ "$mode" == zlib-sync ]] &&
        ! (cd "$here" && node -e 'require("zlib-sync")' 2>/dev/null); then
        echo "== $mode: SKIPPED (the optional native module zlib-sync did not build)"
        skipped+=("$mode")
        continue
    fi
    log="$work/simulator-$mode.log"
    start_simulator "$log"
    echo "== $mode: simulator on port $sim_port (pid $sim_pid)"
    status=0
    (cd "$here" && timeout $((CHECK_TIMEOUT + 15)) node check.mjs "$sim_port" \
        --compression "$mode" --events "$EVENTS" --script resume --timeout "$CHECK_TIMEOUT") ||
        status=$?
    sleep 0.3 # let the simulator log the client's last frames
    stop_simulator

    # Cross-check from the server side: one Identify, at least one Resume on
    # the resume URL, and dispatches committed while the client was away.
    identifies="$(grep -c -- '-> op 2:' "$log" || true)"
    resumes="$(grep -c -- '-> op 6:' "$log" || true)"
    logged="$(grep -c 'logged for replay' "$log" || true)"
    echo "== $mode: simulator saw $identifies Identify, $resumes Resume;" \
        "$logged dispatches committed while the client was away"
    if [[ "$status" -eq 0 && ( "$identifies" -ne 1 || "$resumes" -lt 1 || "$logged" -lt 1 ) ]]; then
        echo "== $mode: the simulator's log disagrees with the client" >&2
        status=1
    fi
    if [[ "$status" -eq 0 ]]; then
        passed+=("$mode")
        echo "== $mode: PASS"
    else
        failed+=("$mode")
        echo "== $mode: FAIL (exit $status); simulator log:" >&2
        sed 's/^/    /' "$log" >&2
    fi
done

echo "== passed: ${passed[*]:-none}; failed: ${failed[*]:-none}; skipped: ${skipped[*]:-none}"
[[ ${#failed[@]} -eq 0 && ${#passed[@]} -gt 0 ]]
