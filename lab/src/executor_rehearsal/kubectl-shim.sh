#!/bin/sh
# kubectl on the lab. The API server must answer for real; the objects are the lab's.
cluster=@ROOT@/@CLUSTER_DIR@
echo "$*" >> @ROOT@/kubectl.log
# Shell builtins only until the request: a call used to start a dozen processes.
# The words are the arguments but `--server=…`; the verb is the first word that is neither a
# global flag nor its value (`kubectl -n kube-system get cm kubeadm-config`).
server=""; namespace=""; prev=""; words=""; verb=""; value=""
for arg; do
  case "$arg" in --server=*) server="${arg#--server=}" ;; *) words="$words$arg " ;; esac
  [ "$prev" = --server ] && server="$arg"
  [ "$prev" = -n ] && namespace="$arg"
  prev="$arg"
  if [ -z "$verb" ]; then
    if [ -n "$value" ]; then value=""
    else case "$arg" in -n|--namespace|-s|--server|--context|--kubeconfig) value=1 ;; -*) ;; *) verb="$arg" ;; esac
    fi
  fi
done
kubeconfig="${KUBECONFIG%%:*}"; [ -n "$kubeconfig" ] || kubeconfig="$HOME/.kube/config"
if [ -z "$server" ] && [ -r "$kubeconfig" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line#"${line%%[! ]*}"}"
    case "$line" in server:*) server="${line#server:}"; server="${server#"${server%%[! ]*}"}"; break ;; esac
  done < "$kubeconfig"
fi
case "$words" in
  # Local configuration only: nothing is dialled.
  "config view --minify -o jsonpath={.clusters[0].cluster.server} ")
    [ -n "$server" ] || { echo "error: current-context must exist in order to minify" >&2; exit 1; }
    printf '%s' "$server"; exit 0 ;;
esac
[ -n "$server" ] || { echo "kubectl (lab): no --server and no server in $kubeconfig" >&2; exit 1; }
# A 503 is an apiserver whose etcd is between leaders: a real request waits for the election,
# so the shim asks again (curl retries 503). A reset connection or an EOF (curl 35, 52, 56: a
# backend going down behind the VIP) is retried for a read, as client-go does for a GET
# (rest/request.go: IsConnectionReset or IsProbableEOF, Retry-After 1 s, at most 10 times);
# a refused connection, or any failure of a write, fails at once.
case "$verb" in get|wait|logs) tries=10 ;; *) tries=1 ;; esac
until err=$(curl -sS -o /dev/null -f --max-time 3 --retry 5 --retry-delay 1 --cacert @ROOT@/ca.crt "$server/readyz" 2>&1); do
  code=$?
  tries=$((tries - 1))
  case "$code" in 35|52|56) [ $tries -gt 0 ] && { /bin/sleep 1; continue; } ;; esac
  echo "Unable to connect to the server: $err" >&2; exit 1
done
# The node's status in the lab's node states, in $status_of (no subshell).
node_status() {
  status_of=""
  [ -r $cluster/nodes ] || return 0
  while read -r n st rest; do [ "$n" = "$1" ] && { status_of="$st"; break; }; done < $cluster/nodes
}
# Whether the pod runs, in the lab's pod states.
pod_running() {
  [ -r $cluster/pods ] || return 1
  while read -r ns p st rest; do [ "$p" = "$1" ] && [ "$st" = Running ] && return 0; done < $cluster/pods
  return 1
}
case "$words" in
  *"get cm kubeadm-config"*) cat @ROOT@/kubeadm-config.yaml ;;
  # kube-proxy's ConfigMap (its kubeconfig names the server kubeadm rendered at init).
  *"get configmap kube-proxy -o yaml"*) cat $cluster/@KUBE_PROXY_CONFIGMAP@ ;;
  *"get configmap kube-proxy -o jsonpath"*) sed -n 's/^ *\(server: .*\)/\1/p' $cluster/@KUBE_PROXY_CONFIGMAP@ ;;
  "apply -f - ")
    applied=$(cat)
    case "$applied" in
      *"name: kube-proxy"*) printf '%s\n' "$applied" > $cluster/@KUBE_PROXY_CONFIGMAP@; echo "configmap/kube-proxy configured" ;;
      *) echo "kubectl (lab shim): not rehearsed: apply of $(echo "$applied" | sed -n 's/^kind: //p')" >&2; exit 64 ;;
    esac ;;
  *"rollout restart daemonset/kube-proxy"*) echo "daemonset.apps/kube-proxy restarted" ;;
  *"rollout status daemonset/kube-proxy"*) echo 'daemon set "kube-proxy" successfully rolled out' ;;
  *"get nodes"*)
    selector=""; case "$words" in *control-plane=*) selector=control-plane ;; esac
    case "$words" in *"--no-headers"*|*"-o name"*) ;; *) echo "NAME STATUS ROLES VERSION" ;; esac
    cordoned=" "
    [ -r $cluster/cordoned ] && while IFS= read -r c; do cordoned="$cordoned$c "; done < $cluster/cordoned
    read -r version < @ROOT@/kubernetes-version
    while read -r name status roles; do
      [ -z "$selector" ] || [ "$roles" = control-plane ] || continue
      case "$cordoned" in *" $name "*) status="$status,SchedulingDisabled" ;; esac
      case "$words" in *"-o name"*) echo "node/$name" ;; *) echo "$name $status $roles $version" ;; esac
    done < $cluster/nodes ;;
  *"wait "*"node/"*)
    node="${words##*node/}"; node="${node%% *}"
    # The operator waits for the node: a reboot under way ends (the kubelet stand-in's).
    : > $cluster/@WAITING_FOR@$node
    i=0
    while node_status "$node"; [ "$status_of" != Ready ]; do
      i=$((i + 1)); [ $i -ge 150 ] && { echo "error: timed out waiting for the condition on nodes/$node" >&2; exit 1; }
      /bin/sleep 0.2
    done
    echo "node/$node condition met" ;;
  *"wait "*"pod/"*)
    pod="${words##*pod/}"; pod="${pod%% *}"
    i=0
    until pod_running "$pod"; do
      i=$((i + 1)); [ $i -ge 150 ] && { echo "error: timed out waiting for the condition on pods/$pod" >&2; exit 1; }
      /bin/sleep 0.2
    done
    echo "pod/$pod condition met" ;;
  *"get pods"*)
    if [ -n "$namespace" ] && grep -q "^$namespace " $cluster/pods 2>/dev/null; then
      echo "NAME READY STATUS"; awk -v ns="$namespace" '$1 == ns { print $2, "1/1", $3 }' $cluster/pods
    elif [ -z "$namespace" ]; then
      awk '{ print $1, $2, "1/1", $3 }' $cluster/pods
    else
      echo "No resources found in $namespace namespace."
    fi ;;
  "drain "*|"cordon "*)
    node="${words#* }"; node="${node%% *}"; echo "$node" >> $cluster/cordoned; echo "node/$node cordoned" ;;
  "uncordon "*)
    node="${words#* }"; node="${node%% *}"; grep -vx "$node" $cluster/cordoned > $cluster/cordoned.new 2>/dev/null; mv $cluster/cordoned.new $cluster/cordoned; echo "node/$node uncordoned" ;;
  *"create job --from=cronjob/"*)
    job="${words% }"; job="${job##* }"
    echo "$job" >> $cluster/jobs
    echo "job.batch/$job created" ;;
  *"logs "*) echo "(lab: no pod logs)" ;;
  *) echo "kubectl (lab shim): not rehearsed: $words" >&2; exit 64 ;;
esac
