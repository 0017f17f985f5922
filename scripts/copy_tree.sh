#!/usr/bin/env bash
# Copy the collection's files (tracked and untracked, minus ignored ones) into DEST.
# ansible-test needs the collection to physically sit at .../ansible_collections/NS/NAME.
#
#   scripts/copy_tree.sh DEST
set -euo pipefail
dest=${1:?usage: $0 DEST}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rm -rf "$dest"
mkdir -p "$dest"
cd "$root"
# Files deleted from the work tree but still in the index are skipped, and so is .ansible/ even
# where .gitignore does not cover it: ansible-lint keeps a copy of the collection there, which
# ansible-test would otherwise check as part of this one.
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do
      case $f in .ansible/*) continue ;; esac
      if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
    done \
  | tar --null -T - -cf - \
  | tar -C "$dest" -xf -
# ansible-test lists content with git when it finds a .git directory above the working
# directory; without one of its own the copy would be listed through the enclosing repository,
# which ignores .build/. An empty repository makes ansible-test see exactly the copied files
# (git ls-files --others --exclude-standard honours the copied .gitignore).
git -C "$dest" init -q
