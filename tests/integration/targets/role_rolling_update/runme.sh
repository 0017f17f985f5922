#!/usr/bin/env bash
# The rolling_update playbook over three simulated nodes: the hosts are this machine
# (ansible_connection: local), the patch step is patch_tasks.yml (the simulator reboots the node),
# and ha_sim.py stands in for ha-manager. Runs: a dry run, a full run, and a run whose patch step
# fails on the second node.
set -eux
export ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_INVENTORY_UNPARSED_WARNING=False
export ANSIBLE_ROLES_PATH=..

here=$(pwd)
config=$(cd ../.. && pwd)/integration_config.yml
python=${ANSIBLE_TEST_PYTHON_INTERPRETER:-python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The connection reaches the modules through the PROXMOX_* environment, as under AWX; ha_sim.py
# runs with the test's Python and talks to the simulator.
eval "$("$python" ../setup_pvesim/files/pvesim_env.py "$config" token)"
MAINT_HA_COMMAND=$("$python" -c 'import json, sys, yaml; c = yaml.safe_load(open(sys.argv[1]))
print(json.dumps([sys.executable, sys.argv[2] + "/ha_sim.py", c["pvesim_url"], c["pvesim_ca_path"]]))' "$config" "$here")

common=(-e "@${config}" -e maint_start_file="$work/start.json")
rolling=(-i inventory.yml
  -e rolling_update_patch_tasks="$here/patch_tasks.yml"
  -e "{\"rolling_update_ha_maintenance_command\": $MAINT_HA_COMMAND}"
  -e rolling_update_ha_maintenance_delay=1 -e rolling_update_online_delay=1 -e evacuate_node_verify_delay=1)

# 1. Dry run (AWX job type "check"): plans, no write request, nothing patched; each drain
#    reports the change it would make, with --diff the placements.
mkdir -p "$work/dry"
ansible-playbook setup.yml "${common[@]}" "$@"
ansible-playbook proxlb.balancer.rolling_update --check --diff "${rolling[@]}" "${common[@]}" -e maint_marker_dir="$work/dry" "$@" \
  | tee "$work/dry.txt"
grep -q 'What would move' "$work/dry.txt"
grep -qE '^changed: \[node-a -> localhost\]' "$work/dry.txt"
grep -qE '^\+\+\+ after' "$work/dry.txt"
ansible-playbook check.yml "${common[@]}" -e maint_marker_dir="$work/dry" -e maint_expect=dry "$@"

# 2. The full run: each node drained, in HA maintenance while patched and rebooted, refilled.
mkdir -p "$work/full"
ansible-playbook setup.yml "${common[@]}" "$@"
ansible-playbook proxlb.balancer.rolling_update "${rolling[@]}" "${common[@]}" -e maint_marker_dir="$work/full" "$@" \
  | tee "$work/full.txt"
grep -q 'What came back to pve3' "$work/full.txt"
ansible-playbook check.yml "${common[@]}" -e maint_marker_dir="$work/full" -e maint_expect=done "$@"

# 3. The patch step fails on pve2: the run stops there, reports what is still drained, and
#    takes pve2 out of HA maintenance; pve3 is never touched.
mkdir -p "$work/fail"
ansible-playbook setup.yml "${common[@]}" "$@"
if ansible-playbook proxlb.balancer.rolling_update "${rolling[@]}" "${common[@]}" -e maint_marker_dir="$work/fail" \
    -e maint_fail_on=pve2 "$@" > "$work/fail.txt" 2>&1; then
  cat "$work/fail.txt"
  echo "the rolling update succeeded although the patch step of pve2 failed" >&2
  exit 1
fi
# The expected failure's output is shown only when it is not the one expected.
grep -q 'rolling update of pve2 failed' "$work/fail.txt" || { cat "$work/fail.txt"; exit 1; }
grep -q 'pve2 is still drained' "$work/fail.txt" || { cat "$work/fail.txt"; exit 1; }
grep -A1 'Leave PVE HA maintenance if a failure left it on' "$work/fail.txt" | grep -q 'included:' \
  || { cat "$work/fail.txt"; exit 1; }
ansible-playbook check.yml "${common[@]}" -e maint_marker_dir="$work/fail" -e maint_expect=failed -e maint_fail_on=pve2 "$@"
