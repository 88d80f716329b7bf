#!/bin/sh
# Runs every fuzz target (or those named) for a bounded time and fails if any finds a
# crash, panic, leak, timeout, out-of-memory or an allocation over the malloc limit.
#
#   fuzz/run.sh [seconds-per-target] [target...]     each target for that long (default 60)
#   FUZZ_RUNS=N fuzz/run.sh [seconds] [target...]    each target for N executions, or at
#                                                    most that many seconds if not 0
#
# Targets are the [[bin]]s of fuzz/Cargo.toml (`cargo fuzz list`), so a new target runs
# without touching this script. Each starts from its corpus (fuzz/corpus/<target>,
# git-ignored, kept between runs) and the seeds committed under fuzz/seeds/<target>.
# Crashes are saved under fuzz/artifacts/<target>/; the full log of each run is
# <target dir>/fuzz/<target>.log, and one summary line per target is printed (and
# appended to <target dir>/fuzz/figures.tsv): executions, wall seconds, exec/s, corpus
# files, peak RSS.
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address); on a stable toolchain
# RUSTC_BOOTSTRAP=1 lets rustc accept them (this is how it runs on rustc 1.95 stable).
set -eu
cd "$(dirname "$0")"
secs=${1:-60}
[ $# -gt 0 ] && shift
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz missing: installing it (cargo install cargo-fuzz --locked)" >&2
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
targets=${*:-$(cargo fuzz list)}
target_dir=${CARGO_TARGET_DIR:-target}/fuzz
# Temporary files of the targets (a directory per input for collect and events, disk
# images for the block devices) go to a directory of this run, on tmpfs when there is
# one, removed when the run ends.
tmp_parent=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && tmp_parent=/dev/shm
TMPDIR=$(mktemp -d "$tmp_parent/vmtest-fuzz.XXXXXX")
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
cargo fuzz build --target-dir "$target_dir"
if [ -n "${FUZZ_RUNS:-}" ] && [ "$secs" -eq 0 ]; then
    bound="-runs=$FUZZ_RUNS"
    hard_stop=86400
elif [ -n "${FUZZ_RUNS:-}" ]; then
    bound="-runs=$FUZZ_RUNS -max_total_time=$secs"
    hard_stop=$((secs + 120))
else
    bound="-max_total_time=$secs"
    hard_stop=$((secs + 120))
fi
for t in $targets; do
    mkdir -p "corpus/$t"
    seeds=""
    [ -d "seeds/$t" ] && seeds="seeds/$t"
    echo "== fuzzing $t ($bound)"
    log="$target_dir/$t.log"
    status=0
    start=$(date +%s)
    # Hard stop well after libFuzzer's own budget, in case a run wedges. No single
    # allocation may pass 256 MiB and no process 2 GiB: a target that allocates on the
    # input's say-so fails here.
    # shellcheck disable=SC2086
    timeout "$hard_stop" cargo fuzz run --target-dir "$target_dir" "$t" "corpus/$t" $seeds -- \
        $bound -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    wall=$(($(date +%s) - start))
    grep -E "^(#[0-9]+[[:space:]]+DONE|==[0-9]+==|SUMMARY)" "$log" || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    corpus=$(find "corpus/$t" -type f | wc -l)
    line=$(printf '%s\texecs=%s\twall_s=%s\texec_per_s=%s\tcorpus=%s\tpeak_rss_mb=%s\texit=%s' \
        "$t" "${execs:-?}" "$wall" "${rate:-?}" "$corpus" "${rss:-?}" "$status")
    echo "$line"
    echo "$(date -u +%FT%TZ)	$line" >>"$target_dir/figures.tsv"
    if [ "$status" -ne 0 ]; then
        grep -E -A3 "panicked|ERROR|SUMMARY" "$log" | cut -c1-400 | head -30 >&2
        echo "fuzz target $t failed (exit $status); full log: $log" >&2
        exit 1
    fi
    if [ -n "$(ls "artifacts/$t" 2>/dev/null)" ]; then
        echo "fuzz target $t found a problem: see fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "all fuzz targets ran ($bound each) without findings"
