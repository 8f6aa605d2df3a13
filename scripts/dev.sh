#!/usr/bin/env bash
# Brings up a local control plane (etcd + kube-apiserver on 127.0.0.1, no kubelet), installs
# raygate's CRDs with plain `kubectl apply`, applies KubeRay's ray-cluster.sample.yaml and
# prints what was stored. Keeps running until Ctrl-C.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

bash tests/controlplane/build.sh
cargo build --quiet --bin raygate
cargo build --quiet -p raygate-e2e --bin raygate-controlplane
bin="$repo/target/controlplane/bin"
export RAYGATE_CONTROLPLANE_BIN="$bin"

work="$(mktemp -d)"
"$repo/target/debug/raygate-controlplane" >"$work/controlplane.out" 2>&1 &
cp_pid=$!
trap 'kill "$cp_pid" 2>/dev/null; wait "$cp_pid" 2>/dev/null; rm -rf "$work"' EXIT
trap 'exit 0' INT TERM

for _ in $(seq 1 120); do
  grep -q '^export KUBECONFIG=' "$work/controlplane.out" && break
  kill -0 "$cp_pid" 2>/dev/null || { cat "$work/controlplane.out" >&2; exit 1; }
  sleep 0.5
done
kubeconfig_line="$(grep '^export KUBECONFIG=' "$work/controlplane.out")" || {
  cat "$work/controlplane.out" >&2; echo "control plane did not start" >&2; exit 1; }
eval "$kubeconfig_line"
kubectl() { "$bin/kubectl" "$@"; }

echo "== installing raygate's CRDs (plain kubectl apply)"
"$repo/target/debug/raygate" crd | kubectl apply -f -
kubectl wait --for=condition=Established --timeout=60s \
  crd/rayclusters.ray.io crd/rayjobs.ray.io crd/rayservices.ray.io

sample="$repo/../shared/kuberay/samples/ray-cluster.sample.yaml"
echo "== raygate check $sample"
"$repo/target/debug/raygate" check "$sample" || true
echo "== kubectl apply -f $sample"
kubectl apply -f "$sample"
echo "== kubectl get raycluster raycluster-kuberay -o yaml"
kubectl get raycluster raycluster-kuberay -o yaml

cat <<MSG

The control plane is up (loopback only). In another terminal:
  $kubeconfig_line
  export PATH=$bin:\$PATH
  kubectl get rayclusters
Press Ctrl-C to stop.
MSG
wait "$cp_pid"
