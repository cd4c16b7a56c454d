#!/bin/sh
# kubeadm on a lab host: the equivalent real action of each subcommand the plan runs.
# A join's arguments hold the token and the certificate key: not logged.
case "$1" in join) echo "join" ;; *) echo "$*" ;; esac >> "$PLAN_FIXTURE_HOST_DIR/kubeadm.log"
# The lab's clock: the system clock plus the offset a clock jump adds (the TTLs run on it).
now() { echo $(( $(date +%s) + $(cat @ROOT@/@CLOCK_OFFSET@ 2>/dev/null || echo 0) )); }
config=""
prev=""
for arg in "$@"; do [ "$prev" = --config ] && config="$arg"; prev="$arg"; done
if [ -n "$config" ] && [ ! -r "$config" ]; then
  echo "unable to read config from \"$config\"" >&2; exit 1
fi
case "$*" in
  "version"*) echo "kubeadm version: &version.Info{GitVersion:\"$(cat @ROOT@/kubernetes-version)\"}" ;;
  "config print init-defaults"*) cat @ROOT@/kubeadm-config.yaml ;;
  "init phase upload-config kubeadm"*) cp "$config" @ROOT@/kubeadm-config.yaml ;;
  "init phase certs apiserver"*)
    pki=/etc/kubernetes/pki
    if [ -e $pki/apiserver.crt ] && [ -e $pki/apiserver.key ]; then
      echo '[certs] Using the existing "apiserver" certificate and key'; exit 0
    fi
    sans="DNS:$PLAN_FIXTURE_HOST_NAME,DNS:kubernetes,IP:$PLAN_FIXTURE_HOST_ADDRESS"
    if [ -n "$config" ]; then
      for san in $(awk '/certSANs:/{f=1;next} f&&/^ *- /{print $2;next} {f=0}' "$config"); do
        case "$san" in *[!0-9.]*) sans="$sans,DNS:$san" ;; *) sans="$sans,IP:$san" ;; esac
      done
    fi
    work=$(mktemp -d) || exit 1
    mkdir -p $pki
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=kube-apiserver -keyout $pki/apiserver.key -out $work/csr 2>$work/err || { cat $work/err >&2; exit 1; }
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$sans" > $work/ext
    serial=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
    openssl x509 -req -in $work/csr -CA @ROOT@/ca.crt -CAkey @ROOT@/ca.key -set_serial 0x7$serial -days 2 -extfile $work/ext -out $pki/apiserver.crt 2>$work/err || { cat $work/err >&2; exit 1; }
    chmod 600 $pki/apiserver.key
    rm -rf $work
    echo "[certs] apiserver serving cert is signed for $sans" ;;
  "init phase upload-certs"*)
    # The kubeadm-certs Secret is a lab file: the key that decrypts it, as kubeadm prints it last.
    key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s\n' "$key" > @ROOT@/kubeadm-certs.key
    now > @ROOT@/kubeadm-certs.uploaded
    echo '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace'
    echo '[upload-certs] Using certificate key:'
    echo "$key" ;;
  "token create"*)
    # getJoinCommand prints the server of the kubeconfig kubeadm loads: $KUBECONFIG,
    # ~/.kube/config, then /etc/kubernetes/admin.conf (docs/facts.md).
    endpoint=""
    for file in "${KUBECONFIG:-}" "$HOME/.kube/config" /etc/kubernetes/admin.conf; do
      [ -n "$file" ] && [ -r "$file" ] || continue
      endpoint=$(sed -n 's|^ *server: https://||p' "$file" | head -1); break
    done
    [ -n "$endpoint" ] || { echo "kubeadm token create: no kubeconfig to print a join command from" >&2; exit 1; }
    token="$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n').$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    description="<none>"; prev=""
    for arg in "$@"; do [ "$prev" = --description ] && description="$arg"; prev="$arg"; done
    echo "$token" >> @ROOT@/kubeadm-tokens
    echo "$token $(now)" >> @ROOT@/kubeadm-token-times
    echo "$token $description" >> @ROOT@/kubeadm-token-descriptions
    hash=$(openssl x509 -in @ROOT@/ca.crt -noout -pubkey | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)
    echo "kubeadm join $endpoint --token $token --discovery-token-ca-cert-hash sha256:$hash" ;;
  "token list"*)
    # kubeadm's columns (cmd/kubeadm/app/cmd/token.go): TOKEN TTL EXPIRES USAGES DESCRIPTION EXTRA GROUPS.
    echo "TOKEN                     TTL   EXPIRES   USAGES                   DESCRIPTION   EXTRA GROUPS"
    while read -r token description; do
      grep -qx -- "$token" @ROOT@/kubeadm-tokens 2>/dev/null || continue
      echo "$token   23h   -   authentication,signing   $description   system:bootstrappers:kubeadm:default-node-token"
    done < @ROOT@/kubeadm-token-descriptions 2>/dev/null ;;
  "token delete"*)
    shift 2
    for token in "$@"; do
      grep -vx -- "$token" @ROOT@/kubeadm-tokens > @ROOT@/kubeadm-tokens.next 2>/dev/null
      mv @ROOT@/kubeadm-tokens.next @ROOT@/kubeadm-tokens
      echo "bootstrap token \"${token%%.*}\" deleted"
    done ;;
  "join "*) exec @ROOT@/kubeadm-join-control-plane "$@" ;;
  "reset"*)
    # kubeadm reset (cmd/kubeadm/app/cmd/phases/reset): remove-etcd-member removes this node's
    # member from a stacked etcd (a warning, not a failure, when etcd refuses) and empties its
    # data directory; cleanup-node stops the static pods and deletes the manifests, the
    # kubeconfigs and the pki directory. The Node object stays.
    member=$PLAN_FIXTURE_HOST_DIR/@MEMBER_DIR@
    if [ -r $member/peer-url ]; then
      peer=$(cat $member/peer-url)
      # kubeadm's etcd client talks to the members it synced (cmd/kubeadm/app/util/etcd/etcd.go,
      # NewFromCluster); where it cannot, the removal fails with the same warning.
      warn() { echo "[reset] Failed to remove etcd member: $1, please manually remove this etcd member using etcdctl" >&2; }
      ctl() { ETCDCTL_API=3 etcdctl --endpoints="$endpoints" --dial-timeout=500ms --command-timeout=2s "$@"; }
      if ! endpoints=$(@ROOT@/kubeadm-etcd-endpoints 2>&1); then
        warn "$endpoints"
      elif ! list=$(ctl member list 2>&1); then
        warn "$list"
      else
        id=$(echo "$list" | awk -F', ' -v peer="$peer" '$4 == peer { print $1 }')
        if [ -z "$id" ]; then
          echo "[reset] No etcd member with peer URL $peer: $list"
        elif removed=$(ctl member remove "$id" 2>&1); then
          echo "[reset] Removed etcd member $id"
        else
          warn "$removed"
        fi
      fi
      if [ -r $member/pid ]; then
        pid=$(cat $member/pid)
        kill "$pid" 2>/dev/null
        # The static pod is gone once etcd has exited (its ports free for a join again).
        n=0; while kill -0 "$pid" 2>/dev/null && [ $n -lt 100 ]; do /bin/sleep 0.1; n=$((n + 1)); done
      fi
      rm -f $member/pid
      rm -rf $member/data
      echo "[reset] Deleted contents of the etcd data directory"
    fi
    rm -rf /etc/kubernetes/manifests /etc/kubernetes/pki
    rm -f /etc/kubernetes/kubelet.conf /etc/kubernetes/bootstrap-kubelet.conf /etc/kubernetes/admin.conf \
      /etc/kubernetes/super-admin.conf /etc/kubernetes/controller-manager.conf /etc/kubernetes/scheduler.conf
    echo "[reset] Deleted files and directories under /etc/kubernetes" ;;
  *) echo "kubeadm (lab shim): not rehearsed: $*" >&2; exit 64 ;;
esac
