#!/usr/bin/env bash
# Run playbooks/rebalance.yml against the simulator started by scripts/with_pvesim.sh.
#
#   scripts/run_demo.sh [ansible-playbook arguments...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
export ANSIBLE_COLLECTIONS_PATH=${ANSIBLE_COLLECTIONS_PATH:-$root/.build/collections}
# The same variables a user sets for a real cluster; TLS is verified against the simulator's CA.
export PROXMOX_HOST=${PVESIM_HOST:-127.0.0.1}
export PROXMOX_PORT=${PVESIM_PORT:?run under scripts/with_pvesim.sh}
export PROXMOX_USER=root@pam
export PROXMOX_TOKEN_ID=proxlb
export PROXMOX_TOKEN_SECRET=00000000-0000-4000-8000-000000000001
export PROXMOX_CA_PATH=${PVESIM_CA_PATH:?run under scripts/with_pvesim.sh}
export PROXMOX_VALIDATE_CERTS=true
exec "$venv/bin/ansible-playbook" -i localhost, "$root/playbooks/rebalance.yml" "$@"
