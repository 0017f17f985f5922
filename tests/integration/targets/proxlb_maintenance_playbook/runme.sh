#!/usr/bin/env bash
# The shipped playbook proxlb.balancer.evacuate against the simulator: dry run, drain, restore
# from the list the drain handed on (set_stats), and the messages for wrong input. The
# connection comes as proxlb_api_* variables (module_defaults of the playbook).
set -eux
export ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_INVENTORY_UNPARSED_WARNING=False
export ANSIBLE_ROLES_PATH=..

config=$(cd ../.. && pwd)/integration_config.yml
python=${ANSIBLE_TEST_PYTHON_INTERPRETER:-python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

connection=(-e "@${config}"
  -e 'proxlb_api_host={{ pvesim_host }}' -e 'proxlb_api_port={{ pvesim_port }}' -e 'proxlb_api_user={{ pvesim_user }}'
  -e 'proxlb_api_token_id={{ pvesim_token_id }}' -e 'proxlb_api_token_secret={{ pvesim_token_secret }}'
  -e 'proxlb_ca_path={{ pvesim_ca_path }}')
sim=(sim.yml -e "@${config}" -e maint_work="$work")

ansible-playbook "${sim[@]}" -e maint_step=setup "$@"

# Dry run: the plan, reported as the change it would make (with the placements), no write request.
ansible-playbook proxlb.balancer.evacuate --check --diff "${connection[@]}" -e evacuate_node_name=pve1 "$@" | tee "$work/dry.txt"
grep -q 'What would move' "$work/dry.txt"
grep -qE '^changed: \[localhost\]' "$work/dry.txt"
grep -qE '^\+\+\+ after' "$work/dry.txt"
ansible-playbook "${sim[@]}" -e maint_step=unchanged "$@"

# Drain; the list of moved guests comes back in the custom stats (set_stats), as AWX would hand
# it to the next job of a workflow.
ANSIBLE_SHOW_CUSTOM_STATS=true \
  ansible-playbook proxlb.balancer.evacuate "${connection[@]}" -e evacuate_node_name=pve1 -e evacuate_node_verify_delay=1 "$@" \
  | tee "$work/drain.txt"
"$python" - "$work/drain.txt" "$work/evacuated.json" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    stats = [line.split("RUN:", 1)[1] for line in f if line.strip().startswith("RUN:")]
evacuated = json.loads(stats[-1])["evacuate_node_evacuated"]
assert sorted(e["vmid"] for e in evacuated) == [101, 102, 111, 121, 131, 141, 151], evacuated
with open(sys.argv[2], "w") as f:
    json.dump({"evacuate_node_return_guests": evacuated}, f)
PY
ansible-playbook "${sim[@]}" -e maint_step=drained "$@"

# Restore without a list, and an unknown action: clear messages, nothing moves.
if ansible-playbook proxlb.balancer.evacuate "${connection[@]}" -e evacuate_node_name=pve1 -e evacuate_node_action=restore \
    "$@" > "$work/nolist.txt" 2>&1; then
  echo "restore without a list succeeded" >&2
  exit 1
fi
grep -q 'evacuate_node_action=restore needs the list the drain printed' "$work/nolist.txt"
if ansible-playbook proxlb.balancer.evacuate "${connection[@]}" -e evacuate_node_name=pve1 -e evacuate_node_action=empty \
    "$@" > "$work/badaction.txt" 2>&1; then
  echo "an unknown action succeeded" >&2
  exit 1
fi
grep -q "evacuate_node_action must be drain or restore, got 'empty'" "$work/badaction.txt"

# Restore from the list.
ansible-playbook proxlb.balancer.evacuate "${connection[@]}" -e evacuate_node_name=pve1 -e evacuate_node_action=restore \
  -e "@$work/evacuated.json" "$@" | tee "$work/restore.txt"
grep -q 'What came back to pve1' "$work/restore.txt"
ansible-playbook "${sim[@]}" -e maint_step=restored "$@"
