#!/usr/bin/env bash
# Sanity and unit tests on every supported ansible-core release line, each in its own virtual
# environment and its own copy of the collection.
#
#   scripts/test_matrix.sh [CORE_VERSION...]        default: 2.18 2.19 2.20 2.21
#
# Each release line runs on a controller Python it supports (table below; override one with
# MATRIX_PYTHON_<major>_<minor>, e.g. MATRIX_PYTHON_2_20=3.13). The interpreter is taken from
# PATH or pyenv (scripts/pybin.sh). The environment .build/venv-<version> gets the newest
# ansible-core of that line and everything else of scripts/requirements-dev.txt; it is built
# once and rebuilt when a requirements file changes. Tests run through scripts/ansible_test.sh
# on the copy .build/test-<version>/ansible_collections/proxlb/balancer.
#
# SANITY_ARGS and UNITS_ARGS are passed on as in `make sanity` and `make units`. Every release
# line runs even when an earlier one failed; a table of results closes the run, and the exit
# code is non-zero when any step failed. Logs: .build/matrix/<version>-{sanity,units}.log.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/.build
requirements=(scripts/requirements-dev.txt meta/ee-requirements.txt tests/unit/requirements.txt)

# ansible-core 2.18/2.19 support controller Python 3.11-3.13, 2.20/2.21 Python 3.12-3.14.
default_python() {
  case $1 in
    2.18) echo 3.12 ;;
    2.19) echo 3.11 ;;
    2.20) echo 3.12 ;;
    2.21) echo 3.13 ;;
    *) return 1 ;;
  esac
}

versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(2.18 2.19 2.20 2.21)

# requirements-dev.txt pins the default core line; the other lines swap that pin. Its -r
# includes are relative to scripts/, so the copy refers to them by absolute path.
write_requirements() {
  local core=$1 dest=$2
  {
    echo "ansible-core==$core.*"
    grep -v '^ansible-core' "$root/scripts/requirements-dev.txt" | sed "s#^-r \.\./#-r $root/#"
  } >"$dest"
}

make_venv() {
  local core=$1 python=$2 venv=$3
  local stamp=$venv/.installed
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$python" ]; then
    local stale=
    for f in "${requirements[@]}"; do
      if [ "$root/$f" -nt "$stamp" ]; then stale=1; fi
    done
    [ -n "$stale" ] || return 0
  else
    rm -rf "$venv"
    "$python" -m venv "$venv" || return 1
  fi
  write_requirements "$core" "$venv/requirements.txt" || return 1
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip || return 1
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$venv/requirements.txt" || return 1
  echo "$python" >"$stamp"
}

# Runs one ansible-test step with its output on the terminal and in LOG; prints ok or FAILED.
run_step() {
  local log=$1
  shift
  echo "== $*" >"$log"
  if "$@" 2>&1 | tee -a "$log" >&2; then
    echo ok
  else
    echo FAILED
  fi
}

mkdir -p "$build/matrix"
results=()
failed=0
for core in "${versions[@]}"; do
  var=MATRIX_PYTHON_${core//./_}
  py=${!var:-$(default_python "$core" || true)}
  if [ -z "$py" ]; then
    echo "test-matrix: no Python known for ansible-core $core; set $var" >&2
    results+=("$core - - venv-failed -")
    failed=1
    continue
  fi
  if ! "$root/scripts/pybin.sh" "$build/pybin" "$py" >/dev/null || [ ! -x "$build/pybin/python$py" ]; then
    echo "test-matrix: Python $py for ansible-core $core not found (PATH or pyenv)" >&2
    results+=("$core $py - venv-failed -")
    failed=1
    continue
  fi
  venv=$build/venv-$core
  echo "test-matrix: ansible-core $core on Python $py in $venv" >&2
  if ! make_venv "$core" "$(readlink -f "$build/pybin/python$py")" "$venv"; then
    results+=("$core $py - venv-failed -")
    failed=1
    continue
  fi
  installed=$("$venv/bin/python" -c 'import ansible; print(ansible.__version__)')
  export VENV=$venv TEST_COPY=$build/test-$core/ansible_collections/proxlb/balancer
  # shellcheck disable=SC2086  # SANITY_ARGS and UNITS_ARGS are deliberately word-split
  sanity=$(run_step "$build/matrix/$core-sanity.log" \
    "$root/scripts/ansible_test.sh" sanity --venv --python "$py" --color no ${SANITY_ARGS:-})
  # shellcheck disable=SC2086
  units=$(run_step "$build/matrix/$core-units.log" \
    "$root/scripts/ansible_test.sh" units --local --python "$py" --color no ${UNITS_ARGS:-})
  [ "$sanity" = ok ] && [ "$units" = ok ] || failed=1
  results+=("$core $py $installed $sanity $units")
done

echo
printf '%-6s %-7s %-12s %-8s %-8s\n' core python installed sanity units
for row in "${results[@]}"; do
  # shellcheck disable=SC2086  # one row, space-separated
  printf '%-6s %-7s %-12s %-8s %-8s\n' $row
done
exit "$failed"
