#!/usr/bin/env bash
# Fuzzes the inputs an operator hand-edits (scenario files, plan files) for a bounded time per
# target, with cargo-fuzz (libFuzzer). Not part of `cargo test`: run it by hand or from a
# scheduled job.
#
#   scripts/fuzz.sh [SECONDS]     # default 60 s per target
#
# Targets (fuzz/fuzz_targets/): scenario (YAML bytes through parse_scenario, the planner and a
# fault-free twin run), scenario_fields (field-level edits of the homelab scenario, through the
# same path plus one fault), plan_file (the --plan loader: YAML -> Plan -> from_edited).
#
# cargo-fuzz passes `-Z` flags (sanitizers, coverage) that only a nightly rustc accepts. This
# machine has one stable toolchain, so the script sets RUSTC_BOOTSTRAP=1, which lets stable rustc
# accept them; it builds and runs the same way as nightly here. A crash leaves its input in
# fuzz/artifacts/<target>/; copy it to tests/fuzz_regressions/ (tests/bad_input.rs runs every file
# there through the binary and expects exit 2) and fix the panic at its source.
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

# Build first, so a compile error is not mistaken for a crash.
if ! cargo fuzz build; then
  echo "fuzz.sh: the fuzz targets do not build" >&2
  exit 2
fi

status=0
for target in scenario scenario_fields plan_file; do
  corpus="corpus/$target"
  mkdir -p "$corpus"
  echo "== fuzz target $target: ${seconds}s (seeds: fuzz/seeds/$target)" >&2
  # -max_len: plan files are ~40 KB; the loader refuses more than 1 MiB anyway.
  # -timeout: one input taking more than 10 s is a hang, reported as a crash.
  if ! cargo fuzz run "$target" "$corpus" "seeds/$target" -- \
      -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -dict=yaml.dict -print_final_stats=1; then
    # libFuzzer leaves the input of a crash, hang or leak in the artifact folder; no file there
    # means the run itself failed (bad flag, dictionary), which is not a finding about plan.
    if [ -n "$(ls -A "artifacts/$target" 2>/dev/null)" ]; then
      echo "fuzz.sh: target $target crashed; input in fuzz/artifacts/$target/" >&2
    else
      echo "fuzz.sh: target $target did not run to its end (see above)" >&2
    fi
    status=1
  fi
done
exit "$status"
