#!/usr/bin/env bash
# Runs every cargo-fuzz target of filter/fuzz for FUZZ_SECONDS each (default 60) and prints the
# executions per target from libFuzzer's final stats. Stable Rust: no sanitizer (`-s none`),
# with debug assertions (overflow checks) on. Each target starts from its committed seeds in
# filter/fuzz/corpus/TARGET and keeps what it finds in filter/fuzz/target/fuzz-corpus/TARGET.
# A crash leaves its input in filter/fuzz/artifacts/TARGET/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/../filter/fuzz"

seconds=${FUZZ_SECONDS:-60}
read -r -a targets <<<"${FUZZ_TARGETS:-table_decode route_request manifests}"
flags=(-s none -a -O)

started=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "fuzz build: $(($(date +%s) - started)) s"

failed=()
summary=()
for target in "${targets[@]}"; do
    mkdir -p "target/fuzz-corpus/$target" "corpus/$target"
    log="target/fuzz-$target.log"
    echo "fuzzing $target for ${seconds} s"
    status=ok
    # -timeout: one input taking 10 s is a finding too (a regex or a parser gone quadratic).
    if ! cargo fuzz run "${flags[@]}" "$target" "target/fuzz-corpus/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        status=FAILED
        failed+=("$target")
        grep -E "panicked|ERROR|SUMMARY|Test unit written|artifact" "$log" | head -20 || true
    fi
    execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
    rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log" | tail -1)
    summary+=("$(printf '%-14s %4s s %12s executions %8s/s  %s' "$target" "$seconds" "${execs:-?}" "${rate:-?}" "$status")")
done

echo
echo "fuzzing summary (log per target in filter/fuzz/target/fuzz-TARGET.log):"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "fuzzing found crashes in: ${failed[*]}" >&2
    exit 1
fi
