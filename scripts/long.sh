#!/usr/bin/env bash
# Everything the default `cargo test --workspace` leaves out to stay within its 3 minutes on two
# cores, as one command: the whole test suite with the long rehearsals (`#[ignore = "long: ..."]`:
# whole-plan fault rehearsals through the executor that a shorter one in the default run
# samples), the crash sweep killing the executor after every record of work instead of every 90,
# then the fuzzers (scripts/fuzz.sh) for FUZZ_SECONDS per target.
#
#   scripts/long.sh [FUZZ_SECONDS]     # default 60 s per fuzz target; 0 skips fuzzing
#
# Like the default suite it needs etcd, HAProxy, sshd and Chromium (.ci/run installs them) and
# runs under CI=true, so a missing one fails rather than skips. About 25 min on two cores, the
# sweep most of it (17 min on 2026-12-02, docs/lab.md "The kill sweep").
set -euo pipefail

fuzz_seconds="${1:-60}"
case "$fuzz_seconds" in
  '' | *[!0-9]*) echo "usage: scripts/long.sh [FUZZ_SECONDS]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
export CI=true
PLAN_KILL_SWEEP=every cargo test --workspace -- --include-ignored
if [ "$fuzz_seconds" -gt 0 ]; then
  scripts/fuzz.sh "$fuzz_seconds"
fi
