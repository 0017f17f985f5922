#!/usr/bin/env bash
# Run ansible-test on a fresh copy of the collection.
#
#   scripts/ansible_test.sh sanity|units|integration [ansible-test arguments...]
#
# ansible-test needs the collection at .../ansible_collections/proxlb/balancer and resolves the
# working directory, so a symlink does not do; the checkout is copied to TEST_COPY (default
# .build/test/ansible_collections/proxlb/balancer) and ansible-test runs there. Runs that share
# a copy take turns (flock), so two of them never overwrite each other's copy.
#
# For integration, tests/integration/integration_config.yml is written into the copy from the
# PVESIM_* environment that scripts/with_pvesim.sh exports.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
copy=${TEST_COPY:-$root/.build/test/ansible_collections/proxlb/balancer}
lock=$root/.build/test.lock

if [ $# -eq 0 ]; then
  echo "usage: $0 sanity|units|integration [ARGS...]" >&2
  exit 2
fi

mkdir -p "$root/.build"
if [ -z "${PROXLB_TEST_LOCK_HELD:-}" ] && command -v flock >/dev/null 2>&1; then
  export PROXLB_TEST_LOCK_HELD=1
  if ! flock -n "$lock" true; then
    echo "waiting for another ansible-test run on $copy to finish" >&2
  fi
  exec flock "$lock" "$0" "$@"
fi

"$root/scripts/copy_tree.sh" "$copy"
if [ "$1" = integration ]; then
  "$venv/bin/python" "$root/scripts/write_integration_config.py" "$copy"
fi
cd "$copy"
PATH="$venv/bin:$PATH" exec "$venv/bin/ansible-test" "$@"
