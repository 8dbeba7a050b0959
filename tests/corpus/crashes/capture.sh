#!/usr/bin/env bash
# Regenerates raw/: runs each crashing program in programs/ for real, twice, and keeps exactly
# what it wrote to stderr when it crashed (nothing else: the programs write nothing before).
#
#   run 1: deployed to /tmp/deployA/app, cart 4711 and one set of bad values
#   run 2: deployed to /srv/releaseB/app, cart 90210, other bad values, and every source file
#          shifted down by SHIFT comment lines (so every line number differs)
# Each run is a new process (another pid, another Rust thread id).
#
# Needs python3 (Debian's /usr/bin/python3), java/javac, node, rustc, go, ruby, mcs/mono
# (Debian: golang-go ruby mono-mcs mono-runtime). The outputs are committed; the tests read
# raw/ and expected.toml and never run this script.
set -uo pipefail
cd "$(dirname "$0")"
here=$PWD
SHIFT=4
RUN1=/tmp/deployA/app
RUN2=/srv/releaseB/app
mkdir -p raw

# deploy LANG RUN: copies programs/LANG to the run's directory; run 2's sources get SHIFT
# comment lines on top.
deploy() {
  local lang=$1 run=$2 dir comment
  dir=$([ "$run" = 1 ] && echo "$RUN1" || echo "$RUN2")
  rm -rf "$dir" && mkdir -p "$dir"
  cp -r "programs/$lang/." "$dir/"
  if [ "$run" = 2 ]; then
    find "$dir" -type f \( -name '*.py' -o -name '*.rb' -o -name '*.java' -o -name '*.js' \
      -o -name '*.rs' -o -name '*.go' -o -name '*.cs' \) | while read -r file; do
      case $file in *.py|*.rb) comment='#' ;; *) comment='//' ;; esac
      { for _ in $(seq "$SHIFT"); do echo "$comment release B: deployed by the pipeline"; done
        cat "$file"; } > "$file.new" && mv "$file.new" "$file"
    done
  fi
  echo "$dir"
}

# capture NAME COMMAND...: the command's stderr into raw/NAME.txt.
capture() {
  local name=$1; shift
  "$@" 2> "$here/raw/$name.txt" > /dev/null
  echo "$name: exit $?, $(wc -l < "$here/raw/$name.txt") lines"
}

# value LANG BUG RUN: the bad input of that run.
value() {
  case "$1/$2/$3" in
    python/a/1) echo '[{"sku": "A-1", "qty": 2},]' ;;
    python/a/2) echo '[{"sku": "B-22", "qty": 10}, {"sku": "C-3", "qty": 1},]' ;;
    python/b/1) echo '2026-13-45' ;;
    python/b/2) echo '2027-00-12' ;;
    node/a/1) echo '{"sku": "A-1", qty: 2}' ;;
    node/a/2) echo '[{"sku": "B-22", "qty": 10}, {sku: "C-3"}]' ;;
    ruby/b/1) echo '{"A-1": 9.5,}' ;;
    ruby/b/2) echo '{"B-22": 12.0, "C-3": }' ;;
    rust/b/1|go/a/1) echo 7 ;;
    rust/b/2|go/a/2) echo 11 ;;
    go/b/1) echo 3 ;;
    go/b/2) echo 1 ;;
    */a/1) echo '12x' ;;
    */a/2) echo '7 pcs' ;;
    */b/1) echo 'Z-9' ;;
    */b/2) echo 'Q-123' ;;
  esac
}

for run in 1 2; do
  id=$([ "$run" = 1 ] && echo 4711 || echo 90210)

  dir=$(deploy python "$run")
  for bug in a b; do for variant in single chained; do
    capture "python_${bug}_${variant}_$run" /usr/bin/python3 "$dir/main.py" "$bug" "$variant" "$id" "$(value python $bug $run)"
  done; done

  dir=$(deploy java "$run")
  javac -d "$dir/classes" "$dir"/com/shop/*.java
  for bug in a b; do for variant in single chained; do
    capture "java_${bug}_${variant}_$run" java -cp "$dir/classes" com.shop.Main "$bug" "$variant" "$id" "$(value java $bug $run)"
  done; done

  dir=$(deploy node "$run")
  for bug in a b; do for variant in single chained; do
    capture "node_${bug}_${variant}_$run" node "$dir/main.js" "$bug" "$variant" "$id" "$(value node $bug $run)"
  done; done

  # Rust: "single" is the panic as printed by default, "backtrace" the same with RUST_BACKTRACE=1.
  dir=$(deploy rust "$run")
  rustc --edition 2021 --crate-name shop -g -o "$dir/shop" "$dir/src/main.rs"
  for bug in a b; do
    capture "rust_${bug}_single_$run" env RUST_BACKTRACE=0 "$dir/shop" "$bug" "$id" "$(value rust $bug $run)"
    capture "rust_${bug}_backtrace_$run" env RUST_BACKTRACE=1 "$dir/shop" "$bug" "$id" "$(value rust $bug $run)"
  done

  dir=$(deploy go "$run")
  (cd "$dir" && go mod init shop >/dev/null 2>&1 && go build -o shop .)
  for bug in a b; do for variant in single chained; do
    capture "go_${bug}_${variant}_$run" "$dir/shop" "$bug" "$variant" "$id" "$(value go $bug $run)"
  done; done

  dir=$(deploy ruby "$run")
  for bug in a b; do for variant in single chained; do
    capture "ruby_${bug}_${variant}_$run" ruby "$dir/main.rb" "$bug" "$variant" "$id" "$(value ruby $bug $run)"
  done; done

  # Mono prints an unhandled exception twice: after "Unhandled Exception:" and after
  # "[ERROR] FATAL UNHANDLED EXCEPTION:" (expected.toml: traces = 2).
  dir=$(deploy csharp "$run")
  mcs -debug -out:"$dir/shop.exe" "$dir"/*.cs
  for bug in a b; do for variant in single chained; do
    capture "csharp_${bug}_${variant}_$run" mono --debug "$dir/shop.exe" "$bug" "$variant" "$id" "$(value csharp $bug $run)"
  done; done
done
rm -rf "$RUN1" "$RUN2"
