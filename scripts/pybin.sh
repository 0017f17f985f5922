#!/usr/bin/env bash
# Make interpreters of the requested Python versions findable by ansible-test.
#
#   scripts/pybin.sh DIR VERSION...
#
# For each VERSION (e.g. 3.9) that exists on this machine, links DIR/pythonVERSION to a
# working interpreter and prints VERSION. pyenv shims answer "command not found" for versions
# that are not selected, so pyenv installations are linked directly.
set -euo pipefail
dir=${1:?usage: $0 DIR VERSION...}
shift
mkdir -p "$dir"
pyenv_root=$( (pyenv root) 2>/dev/null || true)
for version in "$@"; do
  found=
  candidates=()
  if [ -n "$pyenv_root" ]; then
    for p in "$pyenv_root"/versions/"$version".*/bin/python"$version"; do
      candidates+=("$p")
    done
  fi
  if p=$(command -v "python$version" 2>/dev/null); then
    candidates+=("$p")
  fi
  for p in "${candidates[@]}"; do
    if [ -x "$p" ] && "$p" -c 'import ensurepip, venv' >/dev/null 2>&1; then
      found=$p
    fi
  done
  if [ -n "$found" ]; then
    ln -sfn "$found" "$dir/python$version"
    echo "$version"
  fi
done
