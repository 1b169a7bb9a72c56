#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for a bounded time each, one after the
# other, one process and one core at a time, and reports crashes. Not run
# by CI (CI replays the committed seeds through `cargo test` instead, see
# tests/fuzz_corpus.rs).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     # default: 60 s, every target
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`); runs on the stable
# toolchain through RUSTC_BOOTSTRAP=1 (libFuzzer and AddressSanitizer need
# nightly flags). Each target reads its committed seeds (fuzz/seeds/<t>,
# never written) and grows a working corpus in fuzz/corpus/<t> (git-ignored);
# a crash leaves its input in fuzz/artifacts/<t>/. Exit status: 0 when no
# target crashed, 1 when one did, 2 when the tools are missing or the build
# fails.
set -u

secs=${1:-60}
shift || true
cd "$(dirname "$0")/../fuzz" || exit 2
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing; install it with: cargo install cargo-fuzz" >&2
    exit 2
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

nice -n 10 cargo fuzz build || exit 2

crashed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t/last-run.log"
    echo "== $t: ${secs}s"
    nice -n 10 cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1
    status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ $status -ne 0 ]; then
        crashed+=("$t")
        summary+=("$t: CRASH (exit $status), ${execs:-?} executions; see fuzz/$log and fuzz/artifacts/$t/")
        grep -E "panicked|ERROR: AddressSanitizer|ERROR: libFuzzer|Test unit written" "$log" | head -5
    else
        summary+=("$t: ok, ${execs:-?} executions, corpus $(find "corpus/$t" -type f | wc -l) files")
    fi
done

echo
printf '%s\n' "${summary[@]}"
if [ ${#crashed[@]} -gt 0 ]; then
    echo "crashed: ${crashed[*]}"
    echo "reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-..."
    exit 1
fi
