#!/usr/bin/env bash
# Regenerates the trace corpus by running each crashing program for real and capturing what it
# writes, between ordinary log lines. Needs python3, java, node, rustc, go and ruby (Debian:
# golang-go, ruby). The outputs are committed; the tests read them and do not run this script.
set -uo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# capture NAME COMMAND...: ordinary lines before and after the program's own output.
capture() {
  local name=$1; shift
  {
    echo "2026-01-01T11:59:59Z INFO  supervisor: starting $name"
    "$@" 2>&1
    echo "2026-01-01T12:59:59Z INFO  supervisor: $name exited"
  } > "$name.log"
}

capture python_divide python3 programs/crash_divide.py
capture python_chained python3 programs/crash_chained.py
capture python_logged python3 programs/logged_exception.py
# The same bug from another input at another time: one fingerprint with python_divide.
sleep 1; capture python_divide_again python3 programs/crash_divide.py 5 6 7
# Two different bugs on one line of code: two fingerprints.
capture python_ratio_value python3 programs/crash_ratio.py x 1
capture python_ratio_zero python3 programs/crash_ratio.py 1 0
javac -d "$work" programs/Crash.java programs/Worker.java && capture java_caused_by java -cp "$work" Crash
capture java_worker_thread java -cp "$work" Worker
capture node_uncaught node programs/crash.js
rustc -g -o "$work/crash_rs" programs/crash.rs 2>/dev/null
capture rust_panic env RUST_BACKTRACE=0 "$work/crash_rs"
capture rust_backtrace env RUST_BACKTRACE=1 "$work/crash_rs"
capture rust_panic_again env RUST_BACKTRACE=0 "$work/crash_rs"
if command -v go >/dev/null; then
  (cd "$work" && cp "$OLDPWD/programs/crash.go" . && go mod init crash >/dev/null 2>&1 && go build -o crash_go .)
  capture go_panic "$work/crash_go"
fi
if command -v ruby >/dev/null; then
  capture ruby_nomethod ruby programs/crash.rb
fi
ls -l ./*.log
