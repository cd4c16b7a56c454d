#!/usr/bin/env bash
# Compares what two `plan` binaries report: `plan check --format json` (and its exit code) for
# every scenario in scenarios/ and the embedded one at depths 1 and 2, with `deep` also at depth 3
# on the homelab, kube-vip-bare, loopback and haproxy-libvirt, and the `plan report` page of the
# embedded scenario at depths 1 and 2. A change to the exploration must leave them byte for byte
# as they were, but for fields it explains (the transitions applied, say). Exit 0: all the same.
#
#   scripts/compare-check.sh BEFORE_BIN AFTER_BIN OUT_DIR [deep]
#
# BEFORE_BIN is main's binary built in a target directory of its own, e.g.
#   git worktree add --detach ../base main && (cd ../base && CARGO_TARGET_DIR=$PWD/target cargo build --release)
set -u
before=$1 after=$2 out=$3 deep=${4:-}
scenarios=$(cd "$(dirname "$0")/../scenarios" && pwd)
mkdir -p "$out/before" "$out/after"
cases=()
for depth in 1 2; do
  cases+=("embedded:$depth")
  for file in "$scenarios"/*.yaml; do cases+=("$(basename "$file" .yaml):$depth"); done
done
if [ "$deep" = deep ]; then
  for scenario in embedded kube-vip-bare loopback haproxy-libvirt; do cases+=("$scenario:3"); done
fi
differ=0
for case in "${cases[@]}"; do
  scenario=${case%%:*} depth=${case##*:}
  args=(check --depth "$depth" --format json)
  [ "$scenario" != embedded ] && args+=(--scenario "$scenarios/$scenario.yaml")
  name="$scenario.depth$depth"
  for side in before after; do
    bin=$before; [ "$side" = after ] && bin=$after
    "$bin" "${args[@]}" >"$out/$side/$name.json" 2>/dev/null
    echo $? >"$out/$side/$name.exit"
  done
  if cmp -s "$out/before/$name.json" "$out/after/$name.json" && cmp -s "$out/before/$name.exit" "$out/after/$name.exit"; then
    echo "same     $scenario, depth $depth (exit $(cat "$out/after/$name.exit"))"
  else
    echo "DIFFERS  $scenario, depth $depth"
    differ=1
    diff <(python3 -m json.tool "$out/before/$name.json") <(python3 -m json.tool "$out/after/$name.json") | head -20
  fi
done
for depth in 1 2; do
  for side in before after; do
    bin=$before; [ "$side" = after ] && bin=$after
    "$bin" report --depth "$depth" --html "$out/$side/report.depth$depth.html" >/dev/null 2>&1
  done
  if cmp -s "$out/before/report.depth$depth.html" "$out/after/report.depth$depth.html"; then
    echo "same     report of the embedded scenario, depth $depth"
  else
    echo "DIFFERS  report of the embedded scenario, depth $depth"
    differ=1
  fi
done
exit $differ
