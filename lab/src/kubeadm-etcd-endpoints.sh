#!/bin/sh
# The etcd endpoints kubeadm's etcd client talks to, on stdout (comma-separated); exit 1 when etcd
# does not answer. kubeadm finds the client URLs on the etcd Pods' annotations, then syncs them with
# the membership (kubernetes cmd/kubeadm/app/util/etcd/etcd.go, NewFromCluster): the client URLs
# of the started members that are not learners (etcd client/v3/client.go, Sync). The lab's
# annotations are every master's client URL (one not running refuses the connection at once).
# kubeadm retries the sync with a backoff (etcdBackoff); the lab tries a few times.
discovery=$(cat @ROOT@/etcd-endpoints)
attempt=1
while :; do
  if list=$(ETCDCTL_API=3 etcdctl --endpoints="$discovery" --dial-timeout=500ms --command-timeout=2s member list 2>&1); then
    synced=$(echo "$list" | awk -F', ' '$2 == "started" && $6 == "false" { print $5 }' | paste -sd, -)
    [ -n "$synced" ] && { echo "$synced"; exit 0; }
  fi
  [ $attempt -ge 5 ] && { echo "error syncing endpoints with etcd: $list" >&2; exit 1; }
  attempt=$((attempt + 1))
  /bin/sleep 0.2
done
