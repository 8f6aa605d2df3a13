#!/usr/bin/env bash
# Brings up a local control plane (etcd + kube-apiserver on 127.0.0.1, no kubelet), installs
# raygate's CRDs with plain `kubectl apply`, starts `raygate webhook` with a fresh self-signed
# CA registered in the webhook configurations' caBundle, and `raygate controller`, applies KubeRay's
# ray-cluster.sample.yaml, and prints the stored (defaulted) object and a rejected invalid
# example. Keeps running until Ctrl-C.
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
webhook_pid=""
controller_pid=""
trap 'kill $controller_pid $webhook_pid "$cp_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
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
  crd/rayclusters.ray.io crd/rayjobs.ray.io crd/rayservices.ray.io crd/raypolicies.raygate.io

echo "== starting raygate webhook on https://127.0.0.1:9443 (admin http://127.0.0.1:8081)"
"$repo/target/debug/raygate" certs self-signed --dir "$work/certs" --ip 127.0.0.1 --dns localhost
"$repo/target/debug/raygate" webhook --listen 127.0.0.1:9443 --admin-listen 127.0.0.1:8081 \
  --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" >"$work/webhook.log" 2>&1 &
webhook_pid=$!
for _ in $(seq 1 100); do
  curl -fsS http://127.0.0.1:8081/readyz >/dev/null 2>&1 && break
  kill -0 "$webhook_pid" 2>/dev/null || { cat "$work/webhook.log" >&2; exit 1; }
  sleep 0.1
done
"$repo/target/debug/raygate" webhook-config --url https://127.0.0.1:9443 \
  --ca-bundle-file "$work/certs/ca.crt" | kubectl apply -f -

echo "== starting raygate controller (admin http://127.0.0.1:8082)"
"$repo/target/debug/raygate" controller --admin-listen 127.0.0.1:8082 >"$work/controller.log" 2>&1 &
controller_pid=$!

sample="$repo/../shared/kuberay/samples/ray-cluster.sample.yaml"
echo "== raygate check $sample"
"$repo/target/debug/raygate" check "$sample" || true
echo "== kubectl apply -f $sample"
kubectl apply -f "$sample"
echo "== kubectl get raycluster raycluster-kuberay -o yaml"
kubectl get raycluster raycluster-kuberay -o yaml

echo "== the controller's Pods and Service (no kubelet here: pods stay Pending)"
for _ in $(seq 1 50); do
  [[ "$(kubectl get pods -l ray.io/cluster=raycluster-kuberay -o name | wc -l)" -ge 2 ]] && break
  sleep 0.2
done
kubectl get pods,services -l ray.io/cluster=raycluster-kuberay

echo "== an invalid RayCluster (minReplicas > maxReplicas) is rejected at apply time:"
kubectl apply -f "$repo/tests/data/invalid-raycluster.yaml" || true

cat <<MSG

The control plane, raygate's webhook and controller are up (loopback only; logs:
$work/webhook.log, $work/controller.log).
In another terminal:
  $kubeconfig_line
  export PATH=$bin:\$PATH
  kubectl get rayclusters
Press Ctrl-C to stop.
MSG
wait "$cp_pid"
