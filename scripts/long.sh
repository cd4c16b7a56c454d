#!/usr/bin/env bash
# Everything the default `cargo test --workspace` leaves out to stay within its 3 minutes on two
# cores, as one command: the whole test suite with the long rehearsals (`#[ignore = "long: ..."]`:
# whole-plan fault rehearsals through the executor that a shorter one in the default run
# samples), then the crash sweep killing the executor after every record of work instead of every
# 90 (alone, its figures printed), then the fuzzers (scripts/fuzz.sh) for FUZZ_SECONDS per target.
#
#   scripts/long.sh [FUZZ_SECONDS]     # default 60 s per fuzz target; 0 skips fuzzing
#
# Like the default suite it needs etcd, HAProxy, sshd and Chromium (.ci/run installs them) and
# runs under CI=true, so a missing one fails rather than skips. About 25 min on two cores, the
# sweep most of it (17 min on 2026-12-02, docs/lab.md "The kill sweep").
set -uo pipefail

fuzz_seconds="${1:-60}"
case "$fuzz_seconds" in
  '' | *[!0-9]*) echo "usage: scripts/long.sh [FUZZ_SECONDS]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.." || exit 2
export CI=true
# Each part runs even when one before it failed; the script fails at the end if any did, and
# says which.
failed=()
cargo test --workspace -- --include-ignored --skip crash_sweep:: || failed+=("the suite with the long rehearsals")
# The sweep alone, its output shown: it prints its figures (kills, resumes, records per kill).
PLAN_KILL_SWEEP=every cargo test --test loopback crash_sweep:: -- --nocapture || failed+=("the kill sweep at every record")
if [ "$fuzz_seconds" -gt 0 ]; then
  scripts/fuzz.sh "$fuzz_seconds" || failed+=("the fuzzers")
fi
if [ ${#failed[@]} -gt 0 ]; then
  printf 'scripts/long.sh: failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "scripts/long.sh: everything passed"
