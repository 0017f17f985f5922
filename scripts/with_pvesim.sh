#!/usr/bin/env bash
# Run a command against a freshly started PVE API simulator (tools/pvesim).
#
#   scripts/with_pvesim.sh [SCENARIO] -- COMMAND [ARGS...]
#
# Starts the simulator on a free loopback port with its own CA, waits until it is ready,
# exports PVESIM_URL, PVESIM_HOST, PVESIM_PORT and PVESIM_CA_PATH, runs COMMAND, stops the
# simulator whatever happens, and exits with COMMAND's exit code.
#
# Environment:
#   PYTHON            interpreter that runs the simulator (needs cryptography); default .venv/bin/python
#   PVESIM_DIR        working directory for certificates, ready file and log; default .build/pvesim
#   PVESIM_SPEED      time acceleration of simulated tasks; default 20
#   PVESIM_TIMEOUT_S  how long to wait for the simulator to become ready; default 30
#   PVESIM_ARGS       extra arguments for the simulator (word-split)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

scenario=demo
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  scenario=$1
  shift
fi
if [ $# -eq 0 ] || [ "$1" != "--" ]; then
  echo "usage: $0 [SCENARIO] -- COMMAND [ARGS...]" >&2
  exit 2
fi
shift
if [ $# -eq 0 ]; then
  echo "usage: $0 [SCENARIO] -- COMMAND [ARGS...]" >&2
  exit 2
fi

python=${PYTHON:-$root/.venv/bin/python}
sim_dir=${PVESIM_DIR:-$root/.build/pvesim}
speed=${PVESIM_SPEED:-20}
timeout_s=${PVESIM_TIMEOUT_S:-30}
# Per-run names, so that simulators of concurrent runs do not mix up their files; the
# certificates in $sim_dir are shared (pvesim reuses them while they are valid).
ready_file=$sim_dir/ready.$$.json
log_file=$sim_dir/pvesim.$$.log

mkdir -p "$sim_dir"
rm -f "$ready_file"

sim_pid=
# shellcheck disable=SC2329  # invoked from the traps below
stop_sim() {
  if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then
    kill "$sim_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$sim_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$sim_pid" 2>/dev/null || true
    wait "$sim_pid" 2>/dev/null || true
  fi
  sim_pid=
  rm -f "$ready_file"
  # Keep the log of the latest run as pvesim.log.
  [ -f "$log_file" ] && mv -f "$log_file" "$sim_dir/pvesim.log"
  return 0
}
trap stop_sim EXIT
trap 'stop_sim; exit 130' INT
trap 'stop_sim; exit 143' TERM

# shellcheck disable=SC2086  # PVESIM_ARGS is deliberately word-split
PYTHONPATH="$root/tools${PYTHONPATH:+:$PYTHONPATH}" "$python" -m pvesim \
  --scenario "$scenario" --host 127.0.0.1 --port 0 \
  --cert-dir "$sim_dir" --speed "$speed" --ready-file "$ready_file" \
  ${PVESIM_ARGS:-} >"$log_file" 2>&1 &
sim_pid=$!

deadline=$((SECONDS + timeout_s))
until [ -s "$ready_file" ]; do
  if ! kill -0 "$sim_pid" 2>/dev/null; then
    echo "pvesim exited before it was ready; its log:" >&2
    cat "$log_file" >&2 || true
    sim_pid=
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "pvesim not ready after ${timeout_s}s; its log:" >&2
    cat "$log_file" >&2 || true
    exit 1
  fi
  sleep 0.1
done

# The ready file may be written in place; retry until it parses.
ready_env=
for _ in $(seq 50); do
  if ready_env=$("$python" - "$ready_file" <<'PY' 2>/dev/null
import json, shlex, sys
with open(sys.argv[1]) as f:
    data = json.load(f)
port = int(data["port"])
host = data.get("host", "127.0.0.1")
url = data.get("url") or "https://%s:%d" % (host, port)
ca = data.get("ca_path") or data.get("ca") or data.get("cafile")
for key, value in (("PVESIM_URL", url), ("PVESIM_HOST", host), ("PVESIM_PORT", port), ("PVESIM_CA_PATH", ca)):
    print("export %s=%s" % (key, shlex.quote(str(value))))
PY
  ); then
    break
  fi
  sleep 0.1
done
if [ -z "$ready_env" ]; then
  echo "could not read $ready_file:" >&2
  cat "$ready_file" >&2 || true
  exit 1
fi
eval "$ready_env"
export PVESIM_SCENARIO=$scenario PVESIM_PID=$sim_pid
echo "pvesim: scenario $scenario at $PVESIM_URL (pid $sim_pid; log kept in $sim_dir/pvesim.log)" >&2

set +e
"$@"
rc=$?
set -e
exit "$rc"
