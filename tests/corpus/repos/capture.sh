#!/usr/bin/env bash
# Runs each repository's program (case.json "run") in its repo/ directory and keeps what it
# printed when it crashed as crash.log. The crash logs are committed; run this again after
# changing a program. Needs python3, node, ruby and go.
set -uo pipefail
cd "$(dirname "$0")"
for case in */case.json; do
  dir=$(dirname "$case")
  mapfile -t run < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["run"]))' "$case")
  (cd "$dir/repo" && "${run[@]}") >"$dir/crash.log" 2>&1
  status=$?
  if [ "$status" = 0 ]; then
    echo "$dir: did not crash" >&2
    exit 1
  fi
  echo "$dir: exit $status, $(wc -l <"$dir/crash.log") lines"
done
