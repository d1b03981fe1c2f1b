#!/usr/bin/env bash
# Fails when a tracked C file differs from what clang-format makes of it under
# .clang-format (the house style), naming the files. Fix with:
#   clang-format -i $(git ls-files '*.c' '*.h')
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format is not installed (scripts/install-deps.sh)" >&2; exit 1; }
bad=0
for f in $(git ls-files '*.c' '*.h'); do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "check-format: $f is not in the house style (clang-format -i $f)" >&2
    bad=$((bad + 1))
  fi
done
n=$(git ls-files '*.c' '*.h' | wc -l)
echo "check-format: $((n - bad)) of $n C files in the house style ($(clang-format --version | head -1))"
[ "$bad" = 0 ]
