#!/usr/bin/env bash
# Regenerates the README's Reliability table from the suite's own output: runs the fault and
# hostile-input tests (tests/reliability.rs, pipeline.rs, fleet.rs, remediation_engine.rs,
# fuzz.rs), takes the `reliability: {json}` row each prints once its assertions have passed,
# and writes them between the README's reliability markers.
#
#   tests/reliability_report.sh            # fuzzing 3 s per target
#   TAILFIX_FUZZ_SECONDS=600 tests/reliability_report.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
cargo test --test reliability --test pipeline --test fleet --test remediation_engine --test fuzz -- --nocapture 2>/dev/null \
    | grep '^reliability: ' > "$out" || true
python3 - "$out" README.md <<'PY'
import json, sys
rows = [json.loads(line.split(": ", 1)[1]) for line in open(sys.argv[1])]
if not rows:
    sys.exit("no reliability rows: did the tests run?")
table = ["| fault or input | tried | lost uncounted | duplicates | crashes | agent peak RSS |",
         "| --- | ---: | ---: | ---: | ---: | ---: |"]
for row in rows:
    peak = f"{row['peak_rss_mib']} MiB" if row["peak_rss_mib"] is not None else "–"
    table.append(f"| {row['fault']} | {row['tries']:,} | {row['lost']} | {row['duplicates']:,} | {row['crashes']} | {peak} |")
readme = open(sys.argv[2]).read()
start, end = "<!-- reliability:start -->", "<!-- reliability:end -->"
before, rest = readme.split(start, 1)
_, after = rest.split(end, 1)
open(sys.argv[2], "w").write(before + start + "\n" + "\n".join(table) + "\n" + end + after)
print(f"{len(rows)} rows written to {sys.argv[2]}")
PY
