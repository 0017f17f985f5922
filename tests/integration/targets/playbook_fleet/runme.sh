#!/usr/bin/env bash
# The fleet playbook proxlb.balancer.rebalance_fleet against two simulated clusters at once:
# cluster A is the simulator of the test run (demo scenario, token login), cluster B gets a
# simulator of its own here (files/cluster_b.json: other node names, PVE 8, another account with
# a password, another CA). fleet.sh runs the checks while both are up.
set -eux
collection=${ANSIBLE_COLLECTIONS_PATH%%:*}/ansible_collections/proxlb/balancer
python=${ANSIBLE_TEST_PYTHON_INTERPRETER:-python}
sim_b=$(mktemp -d)
trap 'rm -rf "$sim_b"' EXIT

# A directory of its own gives cluster B its own CA as well.
PVESIM_DIR=$sim_b PYTHON=$python PVESIM_SPEED=50 \
  "$collection/scripts/with_pvesim.sh" "$PWD/files/cluster_b.json" -- ./fleet.sh "$@"
