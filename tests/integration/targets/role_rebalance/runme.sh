#!/usr/bin/env bash
# The rebalance role end to end against the simulator: dry run (--check) writes nothing, a run
# migrates wave by wave (one task per wave), a second run migrates nothing, and a run whose
# migrations fail stops after the first wave, fails, and still shows the node loads.
set -eux
export ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_NOCOLOR=1
export ANSIBLE_ROLES_PATH=..   # setup_pvesim

config=$(cd ../.. && pwd)/integration_config.yml
python=${ANSIBLE_TEST_PYTHON_INTERPRETER:-python}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

eval "$("$python" ../setup_pvesim/files/pvesim_env.py "$config" token)"
sim() { ansible-playbook sim.yml "$@" -e "@${config}"; }

# Dry run: the plan and the loads it leads to, no write at all.
sim "$@" -e rr_action=reset
sim "$@" -e rr_action=record
ansible-playbook rebalance.yml "$@" --check | tee "$out/check.txt"
grep -q 'Show the plan' "$out/check.txt"
grep -q 'Show the node loads the plan leads to' "$out/check.txt"
if grep -q 'TASK \[proxlb.balancer.rebalance : Wave ' "$out/check.txt"; then
  echo "the dry run ran a wave" >&2
  exit 1
fi
sim "$@" -e rr_action=check_dry

# The run: one task per wave, named after its moves, then the final loads.
ansible-playbook rebalance.yml "$@" | tee "$out/run.txt"
waves=$(grep -c 'TASK \[proxlb.balancer.rebalance : Wave [0-9]*: [0-9]* ' "$out/run.txt")
[ "$waves" -ge 2 ]
grep -q 'Show the node loads after the migrations' "$out/run.txt"
grep -qE '^ +"pve1 +online' "$out/run.txt"
sim "$@" -e rr_action=check_run

# Again: balanced, nothing to migrate.
sim "$@" -e rr_action=record
ansible-playbook rebalance.yml "$@" | tee "$out/again.txt"
grep -q 'no moves' "$out/again.txt"
sim "$@" -e rr_action=check_again

# Every migration fails: the role fails after the first wave and still shows the loads.
sim "$@" -e rr_action=reset -e '{"rr_faults": {"migration_failure_rate": 1.0}}'
if ansible-playbook rebalance.yml "$@" > "$out/failed.txt" 2>&1; then
  cat "$out/failed.txt"
  echo "the role succeeded although every migration failed" >&2
  exit 1
fi
cat "$out/failed.txt"
grep -q 'migration aborted' "$out/failed.txt"
grep -q 'Show the node loads after the migrations' "$out/failed.txt"
if grep -q 'TASK \[proxlb.balancer.rebalance : Wave 2' "$out/failed.txt"; then
  echo "the role started wave 2 after wave 1 failed" >&2
  exit 1
fi
sim "$@" -e rr_action=check_failed
