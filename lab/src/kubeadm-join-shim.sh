#!/bin/sh
# kubeadm join --control-plane on a lab host: what kubeadm does to etcd, for real.
fail() { echo "$*" >&2; echo "failed: $*" >> "$PLAN_FIXTURE_HOST_DIR/@JOIN_LOG@"; exit 1; }
note() { echo "$*"; echo "$*" >> "$PLAN_FIXTURE_HOST_DIR/@JOIN_LOG@"; }
token=""; key=""; control_plane=no; prev=""
for arg in "$@"; do
  case "$prev" in --token) token="$arg" ;; --certificate-key) key="$arg" ;; esac
  [ "$arg" = --control-plane ] && control_plane=yes
  prev="$arg"
done
[ $control_plane = yes ] || { echo "kubeadm (lab shim): a worker join is not rehearsed" >&2; exit 64; }
[ -e /etc/kubernetes/kubelet.conf ] && fail "[preflight] /etc/kubernetes/kubelet.conf already exists"
# A join that got as far as the member add left its manifests: preflight refuses them until reset.
[ -e /etc/kubernetes/manifests/etcd.yaml ] && fail "[preflight] /etc/kubernetes/manifests/etcd.yaml already exists"
endpoint=$(sed -n 's/^controlPlaneEndpoint: //p' @ROOT@/kubeadm-config.yaml)
[ -n "$endpoint" ] || fail "unable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address"
# An unknown or expired token has no JWS signature in cluster-info (the TokenCleaner deletes an
# expired token's Secret, the BootstrapSigner drops its signature): kubeadm's discovery polls for
# it until its timeout (5 min by default; the shim does not wait) and fails with this text
# (kubernetes cmd/kubeadm/app/discovery/token/token.go, getClusterInfo).
no_signature="error execution phase preflight: couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID \"${token%%.*}\""
grep -qx -- "$token" @ROOT@/kubeadm-tokens 2>/dev/null || fail "$no_signature"
# The TTLs, on the lab's clock (the system clock plus a clock jump's offset).
now=$(( $(date +%s) + $(cat @ROOT@/@CLOCK_OFFSET@ 2>/dev/null || echo 0) ))
created=$(awk -v t="$token" '$1 == t { print $2 }' @ROOT@/kubeadm-token-times 2>/dev/null)
[ -n "$created" ] && [ $((now - created)) -gt @TOKEN_TTL_S@ ] && fail "$no_signature"
[ -n "$key" ] && [ "$key" = "$(cat @ROOT@/kubeadm-certs.key 2>/dev/null)" ] || fail "error downloading certs: secret kubeadm-certs not found or the key does not decrypt it"
uploaded=$(cat @ROOT@/kubeadm-certs.uploaded 2>/dev/null)
# The Secret is owned by a token with the certificates' TTL: once it expires the Secret is gone
# (kubernetes cmd/kubeadm/app/phases/copycerts/copycerts.go, getSecret's NotFound text).
[ -n "$uploaded" ] && [ $((now - uploaded)) -gt @CERTS_TTL_S@ ] && fail "error execution phase control-plane-prepare/download-certs: error downloading certs: error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run \`kubeadm init phase upload-certs --upload-certs\` on a control plane to generate a new one"
member=$PLAN_FIXTURE_HOST_DIR/@MEMBER_DIR@
[ -r $member/peer-url ] || fail "kubeadm (lab shim): no etcd member prepared for $PLAN_FIXTURE_HOST_NAME"
# kubelet-start runs before etcd-join (cmd/kubeadm/app/cmd/join.go): without
# ControlPlaneKubeletLocalMode it waits there for the TLS bootstrap, so kubelet.conf exists
# before the member is added; with it, kubelet-wait-bootstrap writes it after etcd-join (below).
kubelet_conf() {
  printf 'apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: TEFCLUNB\n    server: https://%s\n  name: kubernetes\nkind: Config\n' "@KUBELET_SERVER@" > /etc/kubernetes/kubelet.conf
}
[ @KUBELET_LOCAL_MODE@ = on ] || kubelet_conf
# kubeadm's etcd client: the members' endpoints, synced (NewFromCluster); without them it fails.
endpoints=$(@ROOT@/kubeadm-etcd-endpoints 2>&1) || fail "error execution phase control-plane-join/etcd: $endpoints"
ctl() { ETCDCTL_API=3 etcdctl --endpoints="$endpoints" --dial-timeout=500ms --command-timeout=2s "$@"; }
# kubeadm retries the add: etcd 3.4 answers "unhealthy cluster" while a member joined less than 5 s ago.
attempt=1
# A fault the rehearsal strikes between two of kubeadm's etcd actions: the host named in the
# marker crashes (the lab kills it) before the join goes on.
strike() {
  marker=@ROOT@/@STRIKE_DIR@/at-$PLAN_FIXTURE_HOST_NAME-$1
  [ -e "$marker" ] || return 0
  victim=$(cat "$marker"); rm -f "$marker"
  note "the fault strikes $victim after $1"
  touch @ROOT@/@STRIKE_DIR@/struck-$victim
  until [ -e @ROOT@/@STRIKE_DIR@/done-$victim ]; do /bin/sleep 0.05; done
}
until added=$(ctl member add "$PLAN_FIXTURE_HOST_NAME" --peer-urls="$(cat $member/peer-url)" @LEARNER_FLAG@ 2>&1); do
  case "$added" in *"unhealthy cluster"*) ;; *) fail "etcd member add: $added" ;; esac
  [ $attempt -ge @MEMBER_ADD_ATTEMPTS_MAX@ ] && fail "etcd member add: $added"
  attempt=$((attempt + 1))
  /bin/sleep @RETRY_S@
done
[ $attempt -gt 1 ] && note "etcdctl member add: etcd said 'unhealthy cluster' $((attempt - 1)) time(s) (a member joined less than 5 s ago)"
# etcdctl pads the hex id to 16 columns with spaces ("Member  5aafdb8b62e4a35 added").
id=$(echo "$added" | sed -n 's/^Member  *\([0-9a-f]*\) added.*/\1/p')
initial=$(echo "$added" | sed -n 's/^ETCD_INITIAL_CLUSTER="\(.*\)"$/\1/p')
[ -n "$id" ] && [ -n "$initial" ] || fail "etcd member add: unreadable answer: $added"
note "etcdctl member add (@LEARNER_WORD@): member $id added; etcd started with --initial-cluster=$initial"
# kubeadm writes the etcd manifest right after the add (CreateStackedEtcdStaticPodManifestFile).
mkdir -p /etc/kubernetes/manifests
printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd-%s\n' "$PLAN_FIXTURE_HOST_NAME" > /etc/kubernetes/manifests/etcd.yaml
strike add
# The kubelet would start kubeadm's etcd static pod; on the lab the shim starts it, in this host.
start_etcd() {
  setsid /usr/bin/etcd $(cat $member/args) --initial-cluster="$initial" --initial-cluster-state=existing >> $member/etcd.log 2>&1 < /dev/null &
  echo $! > $member/pid
}
start_etcd
strike start
# And the kubelet starts it again when it exits while its manifest is there (etcd exits at once
# when no member answers its first request for the cluster, as on a loaded machine): at once the
# first time, then after a back-off of 10 s doubled at each exit (pkg/kubelet/kuberuntime
# doBackOff: no back-off entry before the first exit; pkg/kubelet/kubelet.go backOffPeriod 10 s,
# MaxContainerBackOff 300 s). An etcd stopped on purpose (`kubeadm reset` removes the manifest
# and the pid file) is left stopped.
backoff=0; exited_at=""
etcd_kept_running() {
  [ -e /etc/kubernetes/manifests/etcd.yaml ] && [ -r $member/pid ] || return 0
  kill -0 "$(cat $member/pid 2>/dev/null)" 2>/dev/null && return 0
  [ -n "$exited_at" ] || exited_at=$(date +%s)
  [ $(( $(date +%s) - exited_at )) -ge $backoff ] || return 0
  note "kubelet on $PLAN_FIXTURE_HOST_NAME: etcd exited; started again, its back-off ${backoff} s ($(tail -n 1 $member/etcd.log 2>/dev/null | cut -c1-300))"
  backoff=$(( backoff == 0 ? 10 : backoff * 2 )); exited_at=""
  start_etcd
}
# kubeadm polls etcd until its EtcdAPICall timeout (2 min by default), then fails the join
# (cmd/kubeadm/app/util/etcd/etcd.go MemberPromote: wait.PollUntilContextTimeout with
# constants.EtcdAPICallRetryInterval and EtcdAPICallTimeout): a deadline, not a count of tries,
# since a try without quorum takes etcdctl's whole command timeout.
deadline=$(( $(date +%s) + @ETCD_WAIT_S@ ))
# Where the wait runs out, what the new member's etcd said last goes into the lab's actions: a
# join that failed on a loaded machine is then read from the report, not guessed at.
etcd_said() {
  kill -0 "$(cat $member/pid 2>/dev/null)" 2>/dev/null && state=running || state="not running"
  note "etcd on $PLAN_FIXTURE_HOST_NAME ($state), its log's last lines: $(tail -n 4 $member/etcd.log 2>/dev/null | tr '\n' ' ' | cut -c1-900)"
}
if [ @LEARNER_MODE@ = on ]; then
  # kubeadm retries the promotion: etcd refuses a learner that has not caught up with the leader.
  attempt=1
  until out=$(ctl member promote "$id" 2>&1); do
    [ "$(date +%s)" -ge $deadline ] && { etcd_said; fail "error execution phase control-plane-join/etcd: etcd member promote $id: $out"; }
    etcd_kept_running
    attempt=$((attempt + 1))
    /bin/sleep @RETRY_S@
  done
  note "etcdctl member promote $id: promoted after $attempt attempt(s)"
  strike promote
else
  # Without learners kubeadm waits for the new voter to be available.
  attempt=1
  own=$(sed -n 's/^--listen-client-urls=//p' $member/args)
  until ETCDCTL_API=3 etcdctl --endpoints="$own" --dial-timeout=500ms --command-timeout=2s endpoint health > /dev/null 2>&1; do
    [ "$(date +%s)" -ge $deadline ] && { etcd_said; fail "error execution phase control-plane-join/etcd: etcd member $id: not healthy"; }
    etcd_kept_running
    attempt=$((attempt + 1))
    /bin/sleep @RETRY_S@
  done
  note "etcd member $id (voter) healthy after $attempt look(s)"
fi
mkdir -p /etc/kubernetes/manifests
kubeadm init phase certs apiserver --config @ROOT@/kubeadm-config.yaml || exit 1
[ @KUBELET_LOCAL_MODE@ = on ] && kubelet_conf
printf 'apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: TEFCLUNB\n    server: https://%s\n  name: kubernetes\nkind: Config\n' "$endpoint" > /etc/kubernetes/admin.conf
printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver-%s\nspec:\n  containers:\n  - command:\n    - kube-apiserver\n' "$PLAN_FIXTURE_HOST_NAME" > /etc/kubernetes/manifests/kube-apiserver.yaml
echo "This node has joined the cluster and a new control plane instance was created"
