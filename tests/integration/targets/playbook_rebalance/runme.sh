#!/usr/bin/env bash
# Runs the shipped playbook proxlb.balancer.rebalance against the simulator: in check mode
# through the PROXMOX_* environment (read-only user, password login), with the connection given
# as proxlb_api_* variables, then without a CA, which must fail.
set -eux
export ANSIBLE_LOCALHOST_WARNING=False

config=$(cd ../.. && pwd)/integration_config.yml
python=${ANSIBLE_TEST_PYTHON_INTERPRETER:-python}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Other targets may have left the simulator in another scenario.
ANSIBLE_ROLES_PATH=$(cd .. && pwd) ansible-playbook reset.yml "$@" -e "@${config}"

# A dry run through the environment, as an AWX credential type would provide it; the audit
# user (no VM.Migrate) logs in with a password here to cover that path as well. It reports the
# waves it would run as changed, with their placements.
(
  eval "$("$python" ../setup_pvesim/files/pvesim_env.py "$config" password)"
  ansible-playbook proxlb.balancer.rebalance --check --diff "$@" | tee "$out/env.txt"
)
grep -qE '^changed: \[localhost\]' "$out/env.txt"
grep -qE '^\+\+\+ after' "$out/env.txt"
grep -qE '"dry run: [0-9]+ move\(s\)' "$out/env.txt"
grep -qE '^ +"pve1 ' "$out/env.txt"

# The run, with the connection given as proxlb_api_* variables.
ansible-playbook proxlb.balancer.rebalance "$@" -e "@${config}" \
  -e 'proxlb_api_host={{ pvesim_host }}' \
  -e 'proxlb_api_port={{ pvesim_port }}' \
  -e 'proxlb_api_user={{ pvesim_user }}' \
  -e 'proxlb_api_token_id={{ pvesim_token_id }}' \
  -e 'proxlb_api_token_secret={{ pvesim_token_secret }}' \
  -e 'proxlb_ca_path={{ pvesim_ca_path }}' | tee "$out/vars.txt"
grep -qE '"[0-9]+ of [0-9]+ move\(s\) done' "$out/vars.txt"
grep -qE '^ +"pve1 ' "$out/vars.txt"

# Without a CA, verification must fail: TLS is on by default.
eval "$("$python" ../setup_pvesim/files/pvesim_env.py "$config" password)"
unset PROXMOX_CA_PATH
if ansible-playbook proxlb.balancer.rebalance --check "$@" > "$out/noca.txt" 2>&1; then
  cat "$out/noca.txt"
  echo "playbook succeeded without a CA although TLS verification is on" >&2
  exit 1
fi
grep -qi 'certificate of .* could not be verified' "$out/noca.txt" || { cat "$out/noca.txt"; exit 1; }
