#!/usr/bin/env bash
# The best_node lookup against the simulator: the same answers and messages as the
# proxlb_best_node module, with the connection from proxlb_api_* variables (templated, as in
# the shipped playbooks) and from the PROXMOX_* environment; then the shipped
# provision_example playbook, run up to its choice.
set -eux
export ANSIBLE_LOCALHOST_WARNING=False
# setup_pvesim sits next to this target
export ANSIBLE_ROLES_PATH=..

config=$(cd ../.. && pwd)/integration_config.yml
python=${ANSIBLE_TEST_PYTHON_INTERPRETER:-python}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

ansible-playbook compare.yml "$@" -e "@${config}" \
  -e 'proxlb_api_host={{ pvesim_host }}:{{ pvesim_port }}' \
  -e 'proxlb_api_user={{ pvesim_user }}' \
  -e 'proxlb_api_token_id={{ pvesim_token_id }}' \
  -e 'proxlb_api_token_secret={{ pvesim_token_secret }}' \
  -e 'proxlb_ca_path={{ pvesim_ca_path }}'

# The same through the environment only, as an AWX credential type provides it.
eval "$("$python" ../setup_pvesim/files/pvesim_env.py "$config" password --host-port)"
ansible-playbook compare.yml "$@" -e "@${config}"

# The shipped example chooses a node; creating the VM needs community.proxmox and is skipped.
ansible-playbook proxlb.balancer.provision_example "$@" --skip-tags create \
  -e provision_memory=4G -e provision_cores=2 -e '{"provision_tags": ["plb_anti_affinity_db"]}' | tee "$out/provision.txt"
grep -E '"chosen node: pve[45]"' "$out/provision.txt"
if grep -q 'Create web-01' "$out/provision.txt"; then
  echo "the create step ran although it was skipped" >&2
  exit 1
fi
