#!/usr/bin/env bash
# benches/compare/disk-buffer.sh: S1 (1M RFC 5424 messages over TCP -> file) through tailfix with
# its sink's memory buffer and with a disk buffer, interleaved in one invocation, and the ratio of
# the two throughputs (disk / memory). Usage:
#
#   benches/compare/disk-buffer.sh [ROUNDS] [extra run.sh options, e.g. --quick]
#
# Each round runs memory then disk (run.sh S1 --runs 1 --tools tailfix); the medians are printed.
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=${1:-3}
shift || true
WORK=${COMPARE_WORK:-$HERE/../../target/compare}
declare -A RATES=([memory]="" [disk]="")
for ((round = 1; round <= ROUNDS; round++)); do
    for buffer in memory disk; do
        "$HERE/run.sh" S1 --runs 1 --tools tailfix --no-install --no-ceiling \
            --tailfix-buffer "$buffer" "$@" >/dev/null
        rate=$(awk -F'\t' '$1 == "S1" && $2 == "tailfix" && $4 > 0 { print $5 / $4 }' "$WORK/results.tsv" | tail -1)
        echo "round $round: $buffer buffer: $(printf '%.0f' "$rate") msg/s"
        RATES[$buffer]+="$rate "
    done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
memory=$(median "${RATES[memory]}") disk=$(median "${RATES[disk]}")
awk -v m="$memory" -v d="$disk" 'BEGIN { printf "median: memory %.0f msg/s, disk %.0f msg/s, disk/memory %.2f\n", m, d, d / m }'
