#!/bin/sh
# Runs every fuzz target for a bounded time (default 60 s each) and fails if any finds a
# crash, leak or timeout. Usage: fuzz/run.sh [seconds-per-target] [target...]
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address); on a stable toolchain
# RUSTC_BOOTSTRAP=1 lets rustc accept them. Crashes are saved under fuzz/artifacts/<target>/.
set -eu
cd "$(dirname "$0")"
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-"virtio_blk virtio_net virtio_mmio usernet_filter"}
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz missing: installing it (cargo install cargo-fuzz --locked)" >&2
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
target_dir=${CARGO_TARGET_DIR:-target}/fuzz
cargo fuzz build --target-dir "$target_dir"
for t in $targets; do
    mkdir -p "corpus/$t"
    echo "== fuzzing $t for ${secs}s"
    # Hard stop well after libFuzzer's own budget, in case a run wedges.
    log="$target_dir/$t.log"
    status=0
    timeout $((secs + 120)) cargo fuzz run --target-dir "$target_dir" "$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    grep -E "^(#[0-9]+[[:space:]]+DONE|==[0-9]+==|SUMMARY|stat::number_of_executed_units)" "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -40 "$log" >&2
        echo "fuzz target $t failed (exit $status); full log: $log" >&2
        exit 1
    fi
    if [ -n "$(ls "artifacts/$t" 2>/dev/null)" ]; then
        echo "fuzz target $t found a problem: see fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "all fuzz targets ran ${secs}s each without findings"
