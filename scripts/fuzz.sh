#!/usr/bin/env bash
# Runs the `review` fuzz target for a bounded time (default 60 s): any bytes POSTed to the
# admission routes must decode to a clear error or a verdict that holds the review invariants.
# A crash input is copied to fuzz/regressions/review/, where the normal test suite replays it.
#
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/target/tools"
cd "$root"

if [[ ! -x "$tools/bin/cargo-fuzz" ]]; then
    echo "fuzz: installing cargo-fuzz into $tools"
    cargo install cargo-fuzz --locked --version 0.13.2 --root "$tools"
fi

# libFuzzer's sanitizers need nightly; with only stable, fuzz with coverage and no sanitizer.
toolchain=()
sanitizer=(--sanitizer none)
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
    sanitizer=(--sanitizer address)
fi

corpus="$root/target/fuzz-corpus/review"
mkdir -p "$corpus"
cp -n fuzz/seeds/review/*.json "$corpus"/

artifacts="$root/target/fuzz-artifacts/review/"
mkdir -p "$artifacts"
status=0
PATH="$tools/bin:$PATH" cargo "${toolchain[@]}" fuzz run "${sanitizer[@]}" \
    --fuzz-dir fuzz --target-dir "$root/target/fuzz" review "$corpus" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$artifacts" -print_final_stats=1 || status=$?

if [[ $status -ne 0 ]]; then
    for crash in "$artifacts"*; do
        [[ -f "$crash" ]] || continue
        cp "$crash" fuzz/regressions/review/
        echo "fuzz: kept $(basename "$crash") in fuzz/regressions/review/ (commit it with the fix)"
    done
    echo "fuzz: the review target failed (exit $status)" >&2
    exit "$status"
fi
echo "fuzz: ${seconds}s without a crash"
