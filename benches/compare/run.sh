#!/usr/bin/env bash
# benches/compare/run.sh: tailfix against rsyslog and syslog-ng on this machine, same inputs, same
# run. See README.md beside this file. Usage:
#
#   benches/compare/run.sh [SCENARIO...] [--runs N] [--quick] [--tools LIST] [--peer-format F]
#                          [--tailfix-encoding E] [--no-install] [--no-ceiling]
#
#   SCENARIO   S1 S2 S3 S4 idle (default: all)
#   --runs N   runs per scenario and tool; the table shows the median of each figure (default 3)
#   --quick    smoke test: small inputs, 1 run (S1 100k msgs, S2 2 s, S3 64 MiB, idle 5 s)
#   --tools    comma-separated subset of tailfix,rsyslog,syslog-ng (default: all three)
#   --peer-format native|json   peers write their default file format (default) or JSON
#   --tailfix-encoding json|text   tailfix's file sink encoding (default json, the product default)
#   --tailfix-buffer memory|disk   tailfix's sink buffer (default memory; disk: a disk buffer under
#                  the run's data_dir, fsync as its default says)
#   --s2-rate R    UDP datagrams/s offered in S2 (default 100000)
#   --no-install   do not install peers (skip any that are missing)
#   --no-ceiling   skip measuring the sender into a trivial reader
#   --append       keep earlier results (results.tsv, notes) and add these runs: the table then
#                  covers every scenario in results.tsv (to finish an interrupted full run)
#   --max-other C  redo a run if other processes on the machine (other engineers' compiles) took
#                  more than C cores meanwhile (default 0.5); --retries N times at most (default 3);
#                  before each run, wait up to --quiet-wait S seconds (default 300) for such quiet
#
# Environment: COMPARE_WORK (scratch folder, default target/compare: holds the 1 GiB input, the
# unpacked syslog-ng and each run's output), TAILFIX_BIN (default target/release/tailfix; built
# with cargo if missing), COMPARE_PORT (default 47514; +1 and +84 are used too).
set -Eeuo pipefail

ARGS="$*"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=${COMPARE_WORK:-$REPO/target/compare}
TAILFIX=${TAILFIX_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/tailfix}
SENDER=$WORK/sender
SNG_ROOT=$WORK/peers/syslog-ng # syslog-ng unpacked here (it conflicts with the rsyslog package)
RESULTS=$WORK/results.tsv
NOTES=$WORK/notes.txt
HZ=$(getconf CLK_TCK)

# High loopback ports, nowhere near 514 or tailfix's defaults (5170/5514/9598, used by `idle`).
# COMPARE_PORT moves all three, so two harnesses (two worktrees) can run at once.
PORT=${COMPARE_PORT:-47514} # the receiver under test (TCP or UDP)
SINK_PORT=$((PORT + 1))
API_PORT=$((PORT + 84)) # tailfix's HTTP API (health check)

# ---- options -------------------------------------------------------------------------------------
SCENARIOS=()
RUNS=3
RUNS_SET=0
QUICK=0
TOOLS=tailfix,rsyslog,syslog-ng
PEER_FORMAT=native
ENCODING=json
BUFFER=memory
INSTALL=1
CEILING=1
APPEND=0
MAX_OTHER=0.5 # a run during which other work took more cores than this is done again ...
RETRIES=3     # ... up to this many times (then the last attempt is kept, and flagged)
QUIET_WAIT=300 # before each run, wait up to this long for the machine to be that quiet
while (($#)); do
    case $1 in
    S1 | S2 | S3 | S4 | idle) SCENARIOS+=("$1") ;;
    --runs) RUNS=$2 RUNS_SET=1; shift ;;
    --quick) QUICK=1 ;;
    --tools) TOOLS=$2; shift ;;
    --peer-format) PEER_FORMAT=$2; shift ;;
    --tailfix-encoding) ENCODING=$2; shift ;;
    --tailfix-buffer) BUFFER=$2; shift ;;
    --no-install) INSTALL=0 ;;
    --no-ceiling) CEILING=0 ;;
    --append) APPEND=1 ;;
    --max-other) MAX_OTHER=$2; shift ;;
    --retries) RETRIES=$2; shift ;;
    --quiet-wait) QUIET_WAIT=$2; shift ;;
    --s2-rate) S2_RATE_SET=$2; shift ;;
    -h | --help) sed -n '2,/^set /p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
((${#SCENARIOS[@]})) || SCENARIOS=(S1 S2 S3 S4 idle)

S1_MSGS=1000000      # ~200-byte RFC 5424 messages over one TCP connection
S2_RATE=100000       # UDP datagrams/s offered ...
S2_SECONDS=10        # ... for this long
S3_BYTES=$((1 << 30)) # the tailed file
IDLE_SECONDS=30
CEILING_MSGS=10000000
RCVBUF=8388608 # UDP receive buffer asked for by every tool (tailfix's default)
S2_RATE=${S2_RATE_SET:-$S2_RATE}
if ((QUICK)); then
    S1_MSGS=100000 S2_SECONDS=2 S3_BYTES=$((64 << 20)) IDLE_SECONDS=5 CEILING_MSGS=2000000
    ((RUNS_SET)) || RUNS=1
fi

log() { printf '[compare %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
has_tool() { [[ ",$TOOLS," == *",$1,"* ]]; }

# ---- setup -----------------------------------------------------------------------------------------

# Peers come from Debian. rsyslog and syslog-ng-core conflict (both provide system-log-daemon), so
# rsyslog is installed with apt-get and syslog-ng-core is unpacked into $SNG_ROOT with its library
# dependencies installed. Neither is ever started as a service: both run below as plain foreground
# processes with their own configs, pid files and work dirs.
install_peers() {
    export DEBIAN_FRONTEND=noninteractive
    local added_policy=0
    # policy-rc.d exit 101 = "do not start services": apt-get must not start a system rsyslogd.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        added_policy=1
    fi
    if has_tool rsyslog && ! command -v rsyslogd >/dev/null; then
        log "installing rsyslog with apt-get"
        apt-get update -qq || true
        apt-get install -y -qq --no-install-recommends rsyslog >/dev/null
    fi
    if has_tool syslog-ng && [[ ! -x $SNG_ROOT/usr/sbin/syslog-ng ]]; then
        log "unpacking syslog-ng-core into $SNG_ROOT"
        mkdir -p "$WORK/peers" && rm -f "$WORK"/peers/syslog-ng-core_*.deb
        (cd "$WORK/peers" && apt-get download -qq syslog-ng-core 2>/dev/null ||
            { apt-get update -qq && apt-get download -qq syslog-ng-core; })
        local deb deps
        deb=$(ls "$WORK"/peers/syslog-ng-core_*.deb)
        dpkg-deb -x "$deb" "$SNG_ROOT"
        # Its Depends, first alternative of each, without versions: the shared libraries it needs.
        deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' | grep -v '^$')
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $deps >/dev/null
    fi
    if ((added_policy)); then rm -f /usr/sbin/policy-rc.d; fi
}

build() {
    mkdir -p "$WORK"
    gcc -O2 -Wall -o "$SENDER" "$HERE/sender.c"
    if has_tool tailfix && [[ ! -x $TAILFIX ]]; then
        log "building tailfix (release)"
        (cd "$REPO" && cargo build --release --quiet)
    fi
}

peer_versions() {
    if command -v rsyslogd >/dev/null; then
        echo "rsyslog $(rsyslogd -v | sed -n '1s/^rsyslogd *\([^ ]*\).*/\1/p')"
    fi
    if [[ -x $SNG_ROOT/usr/sbin/syslog-ng ]]; then
        echo "syslog-ng $(sng --version | sed -n 's/^Revision: //p')"
    fi
}

sng() { LD_LIBRARY_PATH=$SNG_ROOT/usr/lib/syslog-ng "$SNG_ROOT/usr/sbin/syslog-ng" "$@"; }

# ---- measuring -------------------------------------------------------------------------------------

# user+sys CPU seconds of a process so far (/proc/PID/stat fields 14 and 15, after the comm).
cpu_of() { awk -v hz="$HZ" '{ sub(/^.*\) /, ""); split($0, f, " "); printf "%.3f", (f[12] + f[13]) / hz }' "/proc/$1/stat"; }
# Peak resident set (VmHWM) in KiB.
hwm_of() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
# "BUSY:TIME": CPU seconds that processes on the whole machine have used so far (user nice system
# steal; not irq/softirq, which here is mostly the loopback traffic the benchmark itself makes),
# and the wall-clock time of that reading.
busy_seconds() { awk -v hz="$HZ" -v now="$(date +%s.%N)" '/^cpu / { printf "%.3f:%s", ($2 + $3 + $4 + $9) / hz, now }' /proc/stat; }
# kv KEY "k=v k=v ...": the value of KEY in one of sender's report lines.
kv() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }
# 1234567.8 -> 1,234,568 (no locale needed).
commas() { printf '%.0f' "$1" | sed ':a; s/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/; ta'; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

# ---- starting and stopping a receiver --------------------------------------------------------------

TOOL_PID=
RUN=$WORK/run # one fresh folder per run: config, output, state, logs

# render TEMPLATE: the config with its @NAMES@ filled in, written into $RUN.
render() {
    local text rs_template rs_templates sng_template
    text=$(<"$1")
    rs_template=RSYSLOG_FileFormat rs_templates= sng_template=
    if [[ $PEER_FORMAT == json ]]; then
        # The fields tailfix puts in its JSON, from each peer's own RFC 5424 parse.
        rs_template=bench_json
        rs_templates='template(name="bench_json" type="list" option.jsonf="on") {
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="host" name="hostname" format="jsonf")
  property(outname="app_name" name="app-name" format="jsonf")
  property(outname="proc_id" name="procid" format="jsonf")
  property(outname="msg_id" name="msgid" format="jsonf")
  property(outname="structured_data" name="structured-data" format="jsonf")
  property(outname="severity" name="syslogseverity-text" format="jsonf")
  property(outname="message" name="msg" format="jsonf")
}'
        sng_template='template("$(format-json --scope rfc5424 --scope nv-pairs --exclude DATE --key ISODATE)\n")'
    fi
    text=${text//@WORK@/$RUN}
    text=${text//@OUT@/$RUN/out.log}
    text=${text//@IN@/$WORK/input.log}
    text=${text//@PORT@/$PORT}
    text=${text//@API_PORT@/$API_PORT}
    text=${text//@RCVBUF@/$RCVBUF}
    text=${text//@ENCODING@/$ENCODING}
    text=${text//@RSYSLOG_TEMPLATES@/$rs_templates}
    text=${text//@RSYSLOG_TEMPLATE@/$rs_template}
    text=${text//@SYSLOG_NG_TEMPLATE@/$sng_template}
    printf '%s\n' "$text" >"$RUN/$(basename "$1")"
    echo "$RUN/$(basename "$1")"
}

port_listening() { # port_listening tcp|udp PORT
    local flag=-Htln
    [[ $1 == udp ]] && flag=-Huln
    [[ -n $(ss "$flag" "sport = :$2" 2>/dev/null) ]]
}

# start TOOL SCENARIO [tcp|udp|none]: starts the receiver in the background and waits until it
# listens (tailfix: until /health says 200, which it does once every source listens).
start() {
    local tool=$1 scenario=$2 proto=${3:-none} cfg
    rm -rf "$RUN" && mkdir -p "$RUN"
    # A port still held (another harness, a stray receiver) would measure the wrong process.
    if port_listening tcp "$API_PORT" || { [[ $proto != none ]] && port_listening "$proto" "$PORT"; }; then
        log "port $PORT or $API_PORT is in use: another harness running? (COMPARE_PORT moves them)"
        return 1
    fi
    case $tool in
    tailfix)
        cfg=$(render "$HERE/conf/tailfix-$scenario.toml")
        # [sinks.out] is the last table of every tailfix config here.
        [[ $BUFFER == disk ]] && echo 'buffer = { type = "disk", max_size = "16GiB" }' >>"$cfg"
        "$TAILFIX" run -c "$cfg" >"$RUN/tool.log" 2>&1 &
        TOOL_PID=$!
        ;;
    rsyslog)
        cfg=$(render "$HERE/conf/rsyslog-${scenario/S4/S3}.conf")
        rsyslogd -n -f "$cfg" -i "$RUN/rsyslogd.pid" >"$RUN/tool.log" 2>&1 &
        TOOL_PID=$!
        ;;
    syslog-ng)
        cfg=$(render "$HERE/conf/syslog-ng-${scenario/S4/S3}.conf")
        # -F: foreground, no supervisor process, so $! is the process doing the work.
        LD_LIBRARY_PATH=$SNG_ROOT/usr/lib/syslog-ng "$SNG_ROOT/usr/sbin/syslog-ng" -F --no-caps \
            --module-path="$SNG_ROOT/usr/lib/syslog-ng/3.38" -f "$cfg" -R "$RUN/syslog-ng.persist" \
            -p "$RUN/syslog-ng.pid" -c "$RUN/syslog-ng.ctl" >"$RUN/tool.log" 2>&1 &
        TOOL_PID=$!
        ;;
    esac
    local i
    for ((i = 0; i < 300; i++)); do
        kill -0 "$TOOL_PID" 2>/dev/null || { log "$tool exited at start:"; cat "$RUN/tool.log" >&2; return 1; }
        if [[ $tool == tailfix ]]; then
            [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$API_PORT/health") == 200 ]] && return 0
        elif [[ $proto == none ]] || port_listening "$proto" "$PORT"; then
            return 0
        fi
        sleep 0.05
    done
    log "$tool did not become ready"; cat "$RUN/tool.log" >&2
    return 1
}

stop() {
    [[ -n $TOOL_PID ]] || return 0
    kill -TERM "$TOOL_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 300; i++)); do kill -0 "$TOOL_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$TOOL_PID" 2>/dev/null || true
    wait "$TOOL_PID" 2>/dev/null || true
    TOOL_PID=
}
COUNT_PID=
cleanup() {
    if [[ -n $COUNT_PID ]]; then kill "$COUNT_PID" 2>/dev/null || true; fi
    stop
    true # the EXIT trap's status would become the script's
}
trap cleanup EXIT
# set -e stops on any failed command; say which, rather than dying silently.
trap 'log "stopped: \"$BASH_COMMAND\" failed (line $LINENO)"' ERR
trap 'exit 130' INT TERM

# record SCENARIO TOOL RUN SECONDS MSGS BYTES CPU RSS_KIB RECEIVED OTHER_CORES
# The main loop appends LAST_RECORD to results.tsv once it accepts the run (see --max-other).
record() {
    LAST_RECORD=$(printf '%s\t' "$@" | sed 's/\t$//')
    log "$(printf '%-5s %-9s run %s: %s s, %s msgs, %s bytes, cpu %s s, rss %s KiB, received %s, other load %s cores' "$@")"
}

# Cores' worth of CPU that neither the receiver nor our helpers used during a run: how much the
# other engineers' compiles (and kernel writeback) competed with this run.
# Averaged over the window between the two readings (receiver_cpu must cover the same window).
# Clamped at 0: tick-granular process accounting can make it slightly negative.
other_cores() { # busy0 busy1 receiver_cpu helpers_cpu
    awk -v a="$1" -v b="$2" -v r="$3" -v h="$4" 'BEGIN {
        split(a, x, ":"); split(b, y, ":")
        v = ((y[1] - x[1]) - r - h) / (y[2] - x[2]); printf "%.3f", v < 0 ? 0 : v }'
}

# Before a run: wait (up to QUIET_WAIT s) until other work takes at most MAX_OTHER cores, sampled
# over 2 s while none of ours runs. Cheaper than timing a run only to throw it away.
wait_quiet() {
    local waited=0 a b other
    while :; do
        a=$(busy_seconds); sleep 2; b=$(busy_seconds)
        other=$(other_cores "$a" "$b" 0 0)
        awk -v o="$other" -v m="$MAX_OTHER" 'BEGIN { exit !(o > m) }' || return 0
        ((waited == 0)) && log "machine busy (other work: $other cores); waiting up to $QUIET_WAIT s"
        ((waited >= QUIET_WAIT)) && { log "still busy ($other cores): running anyway"; return 0; }
        sleep 8; waited=$((waited + 10))
    done
}

# ---- scenarios -------------------------------------------------------------------------------------

# The sender's own ceiling: COUNT lines into a reader that only discards.
measure_ceiling() {
    "$SENDER" sink "$SINK_PORT" >"$WORK/sink.out" &
    local sink_pid=$! out
    for ((i = 0; i < 100; i++)); do port_listening tcp "$SINK_PORT" && break; sleep 0.02; done
    out=$("$SENDER" tcp 127.0.0.1 "$SINK_PORT" "$CEILING_MSGS")
    wait "$sink_pid"
    SENDER_RATE=$(kv msg_per_s "$out")
    log "sender ceiling: $SENDER_RATE msg/s into a trivial reader"
    echo "sender ceiling: $(commas "$SENDER_RATE") msg/s ($(calc "$SENDER_RATE * 200 / 1048576" | cut -d. -f1) MiB/s) of 200-byte lines into a trivial reader ($CEILING_MSGS lines, one TCP connection)" >>"$NOTES"
}

run_s1() { # tool run
    start "$1" S1 tcp
    local cpu0 busy0 count_pid send count cpu1 busy1 rss t0 t1 lines secs
    cpu0=$(cpu_of "$TOOL_PID") busy0=$(busy_seconds)
    # The counter follows the output file from the start; done when it holds every line.
    "$SENDER" count "$RUN/out.log" "$S1_MSGS" 10 300 >"$RUN/count.out" &
    count_pid=$! COUNT_PID=$!
    send=$("$SENDER" tcp 127.0.0.1 "$PORT" "$S1_MSGS")
    wait "$count_pid"
    COUNT_PID=
    count=$(<"$RUN/count.out")
    cpu1=$(cpu_of "$TOOL_PID") busy1=$(busy_seconds) rss=$(hwm_of "$TOOL_PID")
    stop
    t0=$(kv start "$send") t1=$(kv end "$count") lines=$(kv lines "$count")
    secs=$(calc "$t1 - $t0")
    [[ $lines -ge $S1_MSGS ]] || log "WARNING: $1 wrote $lines of $S1_MSGS lines ($(kv reason "$count"))"
    record S1 "$1" "$2" "$secs" "$lines" "$(calc "$lines * 200")" "$(calc "$cpu1 - $cpu0")" "$rss" \
        "$(calc "$lines / $S1_MSGS")" \
        "$(other_cores "$busy0" "$busy1" "$(calc "$cpu1 - $cpu0")" "$(calc "$(kv cpu "$send") + $(kv cpu "$count")")")"
}

run_s2() { # tool run
    start "$1" S2 udp
    local cpu0 busy0 count_pid send count cpu1 busy1 rss lines sent rb
    # The receive buffer the kernel actually granted (SO_RCVBUF is capped at net.core.rmem_max
    # unless the tool uses SO_RCVBUFFORCE as root).
    # (|| true: ss can come back empty when a concurrent test churns sockets during its dump.)
    rb=$(ss -Huamn "sport = :$PORT" | grep -o 'rb[0-9]*' | head -1) || true
    grep -q "^S2 $1: UDP" "$NOTES" || echo "S2 $1: UDP receive buffer granted ${rb#rb} bytes (asked $RCVBUF)" >>"$NOTES"
    cpu0=$(cpu_of "$TOOL_PID") busy0=$(busy_seconds)
    # Done when every datagram is written or the output has been still for 3 s (the rest was lost).
    "$SENDER" count "$RUN/out.log" "$((S2_RATE * S2_SECONDS))" 3 $((S2_SECONDS + 120)) >"$RUN/count.out" &
    count_pid=$! COUNT_PID=$!
    send=$("$SENDER" udp 127.0.0.1 "$PORT" "$S2_RATE" "$S2_SECONDS")
    wait "$count_pid"
    COUNT_PID=
    count=$(<"$RUN/count.out")
    cpu1=$(cpu_of "$TOOL_PID") busy1=$(busy_seconds) rss=$(hwm_of "$TOOL_PID")
    stop
    lines=$(kv lines "$count") sent=$(kv sent "$send")
    record S2 "$1" "$2" "$S2_SECONDS" "$lines" "$(calc "$lines * 199")" "$(calc "$cpu1 - $cpu0")" "$rss" \
        "$(calc "$lines / $sent")" \
        "$(other_cores "$busy0" "$busy1" "$(calc "$cpu1 - $cpu0")" "$(calc "$(kv cpu "$send") + $(kv cpu "$count")")")"
}

# The input of S3/S4, made once (and again if the size asked for changes).
make_input() {
    if [[ ! -s $WORK/input.meta ]] || [[ $(kv want "$(<"$WORK/input.meta")") != "$S3_BYTES" ]]; then
        log "generating $WORK/input.log ($((S3_BYTES >> 20)) MiB)"
        echo "want=$S3_BYTES $("$SENDER" gen "$WORK/input.log" "$S3_BYTES")" >"$WORK/input.meta"
        # Written back now, not by the kernel's flusher during the first runs.
        sync "$WORK/input.log"
    fi
    INPUT_META=$(<"$WORK/input.meta")
    # Same starting point for every tool: the input is in the page cache (24 GiB RAM here).
    cat "$WORK/input.log" >/dev/null
}

run_s3() { # tool run scenario(S3|S4)
    local scenario=${3:-S3} want busy0 t0 count cpu1 busy1 rss lines t1 secs in_lines in_bytes
    in_lines=$(kv lines "$INPUT_META") in_bytes=$(kv bytes "$INPUT_META")
    want=$in_lines
    # S4's filters keep the ERROR lines (every 10th, and the last line is one).
    [[ $scenario == S4 ]] && want=$(kv error_lines "$INPUT_META")
    busy0=$(busy_seconds)
    t0=$(date +%s.%N)
    # The clock runs from the start of the process: reading from the beginning is its startup.
    start "$1" "$scenario" none
    # syslog-ng polls files every follow-freq (1 s), so "no growth for 10 s" means finished.
    "$SENDER" count "$RUN/out.log" "$want" 10 900 >"$RUN/count.out"
    count=$(<"$RUN/count.out")
    cpu1=$(cpu_of "$TOOL_PID") busy1=$(busy_seconds) rss=$(hwm_of "$TOOL_PID")
    stop
    lines=$(kv lines "$count") t1=$(kv end "$count")
    secs=$(calc "$t1 - $t0")
    [[ $lines -ge $want ]] || log "WARNING: $1 wrote $lines of $want lines ($(kv reason "$count"))"
    # msg/s and MiB/s are of the input read (complete runs read all of it).
    record "$scenario" "$1" "$2" "$secs" "$in_lines" "$in_bytes" "$cpu1" "$rss" "$(calc "$lines / $want")" \
        "$(other_cores "$busy0" "$busy1" "$cpu1" "$(kv cpu "$count")")"
}

run_idle() { # run
    local p busy0 cpu0 cpu1 busy1 rss dir
    for p in tcp:5170 udp:5514 tcp:9598; do
        if port_listening "${p%%:*}" "${p#*:}"; then
            log "idle: port ${p#*:} is taken (another tailfix?), skipping"
            echo "idle: skipped, port ${p#*:} was in use" >>"$NOTES"
            return 0
        fi
    done
    dir=$(mktemp -d)
    rm -rf "$RUN" && mkdir -p "$RUN"
    # The default config as shipped, run from a scratch cwd (its data_dir is ./data).
    (cd "$dir" && exec env -u TAILFIX_DATA_DIR "$TAILFIX" run -c "$REPO/conf/tailfix.toml") >"$RUN/tool.log" 2>&1 &
    TOOL_PID=$!
    for ((i = 0; i < 300; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9598/health) == 200 ]] && break
        sleep 0.05
    done
    cpu0=$(cpu_of "$TOOL_PID") busy0=$(busy_seconds)
    sleep "$IDLE_SECONDS"
    cpu1=$(cpu_of "$TOOL_PID") busy1=$(busy_seconds) rss=$(hwm_of "$TOOL_PID")
    echo "idle run $1: VmRSS at the end $(awk '/^VmRSS/ { print $2 }' "/proc/$TOOL_PID/status") KiB" >>"$NOTES"
    stop
    rm -rf "$dir"
    record idle tailfix "$1" "$IDLE_SECONDS" 0 0 "$(calc "$cpu1 - $cpu0")" "$rss" - \
        "$(other_cores "$busy0" "$busy1" "$(calc "$cpu1 - $cpu0")" 0)"
}

# ---- the table -------------------------------------------------------------------------------------

# median SCENARIO TOOL COLUMN: median over runs of one column of results.tsv (1-based).
median() {
    awk -F'\t' -v s="$1" -v t="$2" -v c="$3" '$1 == s && $2 == t { print $c }' "$RESULTS" |
        sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# figures SCENARIO TOOL: "msgps mibps cpu cpu_per_m rss_mib received other" (medians per figure).
figures() {
    local secs msgs bytes cpu rss rec other
    secs=$(median "$1" "$2" 4) msgs=$(median "$1" "$2" 5) bytes=$(median "$1" "$2" 6)
    cpu=$(median "$1" "$2" 7) rss=$(median "$1" "$2" 8) rec=$(median "$1" "$2" 9) other=$(median "$1" "$2" 10)
    [[ -n $secs ]] || return 1
    # Rates as the median of each run's rate (not median lines over median seconds).
    local rate mib
    rate=$(awk -F'\t' -v s="$1" -v t="$2" '$1 == s && $2 == t && $4 > 0 { print $5 / $4 }' "$RESULTS" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    mib=$(awk -F'\t' -v s="$1" -v t="$2" '$1 == s && $2 == t && $4 > 0 { print $6 / $4 / 1048576 }' "$RESULTS" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    local per_m=-
    [[ $msgs != 0 ]] && per_m=$(calc "$cpu / ($msgs / 1000000)")
    echo "$rate $mib $cpu $per_m $(calc "$rss / 1024") ${rec} $other"
}

table() {
    local s t f best best_tool best_f peer_scenario
    echo
    echo "| scenario | tool | msg/s | MiB/s | CPU s | CPU s / M msgs | peak RSS MiB | received | other load (cores) | tailfix vs best peer |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    for s in "${SCENARIOS[@]}"; do
        # S4's peers are S3's runs (peers have no fingerprint/filter stage to add).
        peer_scenario=$s
        [[ $s == S4 ]] && peer_scenario=S3
        best= best_tool= best_f=
        for t in rsyslog syslog-ng; do
            f=$(figures "$peer_scenario" "$t") || continue
            read -r rate _ _ _ _ rec _ <<<"$f"
            local key=$rate
            [[ $s == S2 ]] && key=$rec
            if [[ -z $best ]] || awk "BEGIN { exit !($key > $best) }"; then best=$key best_tool=$t best_f=$f; fi
        done
        for t in tailfix rsyslog syslog-ng; do
            f=$(figures "$( [[ $t != tailfix ]] && echo "$peer_scenario" || echo "$s")" "$t") || continue
            read -r rate mib cpu per_m rss rec other <<<"$f"
            local ratio=""
            if [[ $t == tailfix && -n $best_f && $s != idle ]]; then
                local brate bper_m brss brec
                read -r brate _ _ bper_m brss brec _ <<<"$best_f"
                if [[ $s == S2 ]]; then
                    ratio=$(awk -v a="$rec" -v b="$brec" -v c="$per_m" -v d="$bper_m" -v n="$best_tool" \
                        'BEGIN { printf "received ×%.3f, CPU/M ×%.2f vs %s", a / b, c / d, n }')
                else
                    ratio=$(awk -v a="$rate" -v b="$brate" -v c="$per_m" -v d="$bper_m" -v r="$rss" -v e="$brss" -v n="$best_tool" \
                        'BEGIN { printf "msg/s ×%.2f, CPU/M ×%.2f, RSS ×%.2f vs %s", a / b, c / d, r / e, n }')
                fi
            fi
            local label=$t
            [[ $s == S4 && $t != tailfix ]] && label="$t (S3 config)"
            if [[ $s == idle ]]; then
                printf '| %s | %s | - | - | %.2f | - | %.1f | - | %.2f | %s |\n' "$s (${IDLE_SECONDS} s)" "$label" "$cpu" "$rss" "$other" "$ratio"
            else
                local rec_text
                rec_text=$(awk -v r="$rec" 'BEGIN { printf "%.2f %%", r * 100 }')
                printf "| %s | %s | %s | %.1f | %.2f | %.2f | %.1f | %s | %.2f | %s |\n" \
                    "$s" "$label" "$(commas "$rate")" "$mib" "$cpu" "$per_m" "$rss" "$rec_text" "$other" "$ratio"
            fi
        done
    done
    echo
}

# ---- main ------------------------------------------------------------------------------------------

mkdir -p "$WORK"
((INSTALL)) && install_peers
build
has_tool rsyslog && ! command -v rsyslogd >/dev/null && { log "rsyslog missing: skipped"; TOOLS=${TOOLS//rsyslog/}; }
has_tool syslog-ng && [[ ! -x $SNG_ROOT/usr/sbin/syslog-ng ]] && { log "syslog-ng missing: skipped"; TOOLS=${TOOLS//syslog-ng/}; }
if ((APPEND)); then
    touch "$RESULTS" "$NOTES"
    echo "appended: $ARGS ($(date -u '+%H:%M UTC'))" >>"$NOTES"
else
    : >"$RESULTS"
    : >"$NOTES"
fi
grep -q '^machine:' "$NOTES" || echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -r)" >>"$NOTES"
grep -q '^tailfix:' "$NOTES" || echo "tailfix: $TAILFIX ($(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?')), sink encoding $ENCODING, buffer $BUFFER; peers' output format: $PEER_FORMAT" >>"$NOTES"
grep -q '^peer:' "$NOTES" || peer_versions | sed 's/^/peer: /' >>"$NOTES"
echo "load before: $(uptime)" >>"$NOTES"
log "$(tail -1 "$NOTES")"

if ((CEILING)); then wait_quiet; measure_ceiling; fi
for s in "${SCENARIOS[@]}"; do
    case $s in S3 | S4) make_input ;; esac
    for ((r = 1; r <= RUNS; r++)); do
        for t in tailfix rsyslog syslog-ng; do
            has_tool "$t" || continue
            # Peers have nothing to add for S4 (their S3 runs stand in) and no idle figure.
            [[ $s == S4 || $s == idle ]] && [[ $t != tailfix ]] && continue
            for ((attempt = 0; attempt <= RETRIES; attempt++)); do
                # The previous output goes now (unlinking 2 GiB takes a while: not on S3's clock),
                # and dirty pages of earlier runs go to disk now, not while this run is timed.
                rm -rf "$RUN"
                sync
                wait_quiet
                LAST_RECORD=
                case $s in
                S1) run_s1 "$t" "$r" ;;
                S2) run_s2 "$t" "$r" ;;
                S3 | S4) run_s3 "$t" "$r" "$s" ;;
                idle) run_idle "$r" ;;
                esac
                [[ -n $LAST_RECORD ]] || break
                other=$(cut -f10 <<<"$LAST_RECORD")
                awk -v o="$other" -v m="$MAX_OTHER" 'BEGIN { exit !(o > m) }' || break
                if ((attempt < RETRIES)); then
                    log "other work took $other cores during that run (> $MAX_OTHER): again"
                    sleep 5
                else
                    echo "$s $t run $r: other work took $other cores even after $RETRIES retries" >>"$NOTES"
                fi
            done
            [[ -n $LAST_RECORD ]] && echo "$LAST_RECORD" >>"$RESULTS"
        done
    done
done
echo "load after: $(uptime)" >>"$NOTES"
rm -rf "$RUN" # the last run's output (up to 2 GiB for S3)

# With --append the table covers every scenario that has results.
if ((APPEND)); then
    SCENARIOS=()
    for s in S1 S2 S3 S4 idle; do cut -f1 "$RESULTS" | grep -qx "$s" && SCENARIOS+=("$s"); done
fi
{
    echo "## tailfix vs peers ($(date -u '+%Y-%m-%d %H:%M UTC'), median of $RUNS run(s)$( ((QUICK)) && echo ', QUICK mode'))"
    table
    sed 's/^/* /' "$NOTES"
} | tee "$WORK/report.md"
