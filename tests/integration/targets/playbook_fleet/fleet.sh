#!/usr/bin/env bash
# Runs under scripts/with_pvesim.sh, whose PVESIM_* variables describe cluster B; cluster A
# comes from integration_config.yml. The inventory has four clusters: A and B with their own
# endpoints, credentials, CA and settings, one whose API does not answer, and one without
# endpoints. Checks: the dry run writes nothing on either cluster; the real run balances A and
# B, each with its own settings and account, while the two broken clusters fail on their own
# without stopping the others; planning again on A and B finds nothing to do.
set -eux
export ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_NOCOLOR=1
export ANSIBLE_ROLES_PATH=..   # setup_pvesim

config=$(cd ../.. && pwd)/integration_config.yml
python=${ANSIBLE_TEST_PYTHON_INTERPRETER:-python}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Every cluster is described by the inventory alone. PROXMOX_HOST, set to cluster A's endpoint
# below, must not stand in for the endpoints of the cluster that names none.
unset PROXMOX_PORT PROXMOX_USER PROXMOX_PASSWORD PROXMOX_TOKEN_ID PROXMOX_TOKEN_SECRET \
  PROXMOX_CA_PATH PROXMOX_VALIDATE_CERTS PROXMOX_API_TIMEOUT

ansible-playbook reset.yml "$@" -e "@${config}"

# Writes the inventory and prints cluster A's API endpoint.
a_endpoint=$("$python" - "$config" "$out/inventory.yml" <<'PY'
import json
import os
import socket
import sys

import yaml

with open(sys.argv[1]) as handle:
    config = yaml.safe_load(handle)

# A port on which nothing listens: cluster "down".
probe = socket.socket()
probe.bind(("127.0.0.1", 0))
closed_port = probe.getsockname()[1]
probe.close()

inventory = {"proxlb_clusters": {
    "vars": {"rebalance_balanciness": 10},
    "hosts": {
        "cluster-a": {
            "proxlb_api_host": [config["pvesim_host"]],
            "proxlb_api_port": config["pvesim_port"],
            "proxlb_api_user": config["pvesim_user"],
            "proxlb_api_token_id": config["pvesim_token_id"],
            "proxlb_api_token_secret": config["pvesim_token_secret"],
            "proxlb_ca_path": config["pvesim_ca_path"],
            "rebalance_ignore_guests": ["build*"],
            "rebalance_parallel_migrations": 2,
            "fleet_sim_url": config["pvesim_url"],
        },
        "cluster-b": {
            "proxlb_api_host": "%s:%s" % (os.environ["PVESIM_HOST"], os.environ["PVESIM_PORT"]),
            "proxlb_api_user": "fleet@pve",
            "proxlb_api_password": "fleet-b-secret",
            "proxlb_ca_path": os.environ["PVESIM_CA_PATH"],
            "rebalance_maintenance_nodes": ["b3"],
            "fleet_sim_url": os.environ["PVESIM_URL"],
        },
        "cluster-down": {
            "proxlb_api_host": "127.0.0.1:%d" % closed_port,
            "proxlb_api_user": config["pvesim_user"],
            "proxlb_api_token_id": config["pvesim_token_id"],
            "proxlb_api_token_secret": config["pvesim_token_secret"],
            "proxlb_ca_path": config["pvesim_ca_path"],
            "proxlb_api_timeout": 2,
        },
        # Everything but the endpoints: enough to plan on cluster A if PROXMOX_HOST were used.
        "cluster-unnamed": {
            "proxlb_api_user": config["pvesim_user"],
            "proxlb_api_token_id": config["pvesim_token_id"],
            "proxlb_api_token_secret": config["pvesim_token_secret"],
            "proxlb_ca_path": config["pvesim_ca_path"],
        },
    },
}}
with open(sys.argv[2], "w") as handle:
    json.dump(inventory, handle, indent=2)
print("%s:%s" % (config["pvesim_host"], config["pvesim_port"]))
PY
)
export PROXMOX_HOST=$a_endpoint
fleet() { ansible-playbook -i "$out/inventory.yml" proxlb.balancer.rebalance_fleet "$@"; }
verify() { ansible-playbook -i "$out/inventory.yml" -l cluster-a,cluster-b verify.yml "$@"; }

# Each broken cluster fails on its own; A and B must succeed in the same run.
check_recap() {
  grep -qE '^cluster-a +: .* failed=0 ' "$1"
  grep -qE '^cluster-b +: .* failed=0 ' "$1"
  grep -qE '^cluster-down +: .* failed=1 ' "$1"
  grep -qE '^cluster-unnamed +: .* failed=1 ' "$1"
  grep -q 'Cluster cluster-unnamed has no proxlb_api_host' "$1"
}

# Dry run of the whole fleet: plans for A and B, nothing written anywhere.
if fleet --check -f 4 "$@" > "$out/check.txt" 2>&1; then
  cat "$out/check.txt"
  echo "the fleet dry run succeeded although two clusters cannot be reached" >&2
  exit 1
fi
cat "$out/check.txt"
check_recap "$out/check.txt"
verify -e fleet_step=dry "$@"

# The run: A and B are rebalanced in parallel, each by its own plan.
if fleet -f 4 "$@" > "$out/run.txt" 2>&1; then
  cat "$out/run.txt"
  echo "the fleet run succeeded although two clusters cannot be reached" >&2
  exit 1
fi
cat "$out/run.txt"
check_recap "$out/run.txt"
verify -e fleet_step=run "$@"
