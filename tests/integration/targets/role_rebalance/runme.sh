#!/usr/bin/env bash
# The rebalance role end to end against the simulator: a dry run (--check --diff) reports each
# wave as changed with its placements and writes nothing; a run migrates wave by wave (one task
# per wave, named after the waves that really ran: PVE HA moves positive-affinity partners
# along, so a wave may be done before its turn); a second run migrates nothing; a run whose
# migrations fail stops after the first wave, fails, and still ends with the summary.
set -eux
export ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_NOCOLOR=1
export ANSIBLE_ROLES_PATH=..   # setup_pvesim

config=$(cd ../.. && pwd)/integration_config.yml
python=${ANSIBLE_TEST_PYTHON_INTERPRETER:-python}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

eval "$("$python" ../setup_pvesim/files/pvesim_env.py "$config" token)"
sim() { ansible-playbook sim.yml "$@" -e "@${config}"; }
# expect PATTERN FILE: the pattern is in the file, else show the file and fail.
expect() {
  grep -qE -- "$1" "$2" || { cat "$2"; echo "not found in $2: $1" >&2; return 1; }
}

# Dry run: every wave reports what it would change, with the placements; no write at all.
sim "$@" -e rr_action=reset
sim "$@" -e rr_action=record
ansible-playbook rebalance.yml "$@" --check --diff | tee "$out/check.txt"
expect 'Show the plan' "$out/check.txt"
dry_waves=$(grep -cE 'TASK \[proxlb.balancer.rebalance : Wave [0-9]+ of [0-9]+: [0-9]+ ' "$out/check.txt")
[ "$dry_waves" -ge 2 ]
# each wave task is changed and shows its placements before and after
[ "$(grep -cE '^changed: \[localhost\]' "$out/check.txt")" -eq "$dry_waves" ]
[ "$(grep -cE '^\+\+\+ after' "$out/check.txt")" -eq "$dry_waves" ]
expect '^-    "[0-9]+/[^"]+": "pve[0-9]"' "$out/check.txt"
expect "^localhost +: ok=[0-9]+ +changed=$dry_waves " "$out/check.txt"
expect '"dry run: [0-9]+ move\(s\) in [0-9]+ wave\(s\) would migrate' "$out/check.txt"
sim "$@" -e rr_action=check_dry

# The run: one task per wave that really ran, then the summary.
ansible-playbook rebalance.yml "$@" | tee "$out/run.txt"
"$python" check_waves.py "$config" "$out/run.txt"
expect '"[0-9]+ of [0-9]+ move\(s\) done \([0-9]+ moved along by PVE\), 0 failed, 0 skipped, 0 not started"' "$out/run.txt"
expect '"memory \(used\): spread [0-9.]+ -> [0-9.]+ pp \(planned: [0-9.]+ pp\)"' "$out/run.txt"
expect '^ +"pve1 +balanced +[0-9.]+% +[0-9.]+%"' "$out/run.txt"
sim "$@" -e rr_action=check_run

# Again: balanced, nothing to migrate.
sim "$@" -e rr_action=record
ansible-playbook rebalance.yml "$@" | tee "$out/again.txt"
expect 'no moves' "$out/again.txt"
expect '"nothing to do: ' "$out/again.txt"
sim "$@" -e rr_action=check_again

# A PVE 9.2 cluster whose CRS balances HA resources itself, told to move them anyway: the HA
# partner of app01 goes along with it, so its wave is not run.
sim "$@" -e rr_action=reset -e rr_scenario=pve9
ansible-playbook rebalance.yml "$@" -e rebalance_manage_ha_resources=true \
  -e '{"rebalance_ignore_guests": ["cache01", "worker01", "web0*", "git01", "api0*", "dns*"]}' | tee "$out/pve9.txt"
"$python" check_waves.py "$config" "$out/pve9.txt"
sim "$@" -e rr_action=check_run

# Every migration fails: the role fails after the first wave and still shows the summary.
sim "$@" -e rr_action=reset -e '{"rr_faults": {"migration_failure_rate": 1.0}}'
if ansible-playbook rebalance.yml "$@" > "$out/failed.txt" 2>&1; then
  cat "$out/failed.txt"
  echo "the role succeeded although every migration failed" >&2
  exit 1
fi
expect 'migration aborted' "$out/failed.txt"
expect '"0 of [0-9]+ move\(s\) done, [0-9]+ failed, 0 skipped, [0-9]+ not started"' "$out/failed.txt"
if grep -q 'TASK \[proxlb.balancer.rebalance : Wave 2' "$out/failed.txt"; then
  cat "$out/failed.txt"
  echo "the role started wave 2 after wave 1 failed" >&2
  exit 1
fi
sim "$@" -e rr_action=check_failed
