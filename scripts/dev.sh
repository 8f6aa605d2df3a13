#!/usr/bin/env bash
# Brings up a local control plane (etcd + kube-apiserver on 127.0.0.1, no kubelet), installs
# raygate's CRDs with plain `kubectl apply`, starts `raygate webhook` with a fresh self-signed
# CA registered in the webhook configurations' caBundle, and `raygate controller`, applies KubeRay's
# ray-cluster.sample.yaml, and prints the stored (defaulted) object and a rejected invalid
# example. Keeps running until Ctrl-C.
#
# Prebuilt binaries skip the matching build step (the e2e test passes them all):
#   RAYGATE_CONTROLPLANE_BIN       dir with etcd, kube-apiserver, kubectl (tests/controlplane/build.sh)
#   RAYGATE_BIN                    the raygate binary (cargo build --bin raygate)
#   RAYGATE_CONTROLPLANE_LAUNCHER  the raygate-controlplane binary (cargo build -p raygate-e2e)
# Ports on 127.0.0.1 (etcd and kube-apiserver always take free ones):
#   RAYGATE_DEV_WEBHOOK_PORT (9443), RAYGATE_DEV_WEBHOOK_ADMIN_PORT (8081),
#   RAYGATE_DEV_CONTROLLER_ADMIN_PORT (8082)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if [[ -z "${RAYGATE_CONTROLPLANE_BIN:-}" ]]; then
  bash tests/controlplane/build.sh
  export RAYGATE_CONTROLPLANE_BIN="$repo/target/controlplane/bin"
fi
bin="$RAYGATE_CONTROLPLANE_BIN"
if [[ -z "${RAYGATE_BIN:-}" ]]; then
  cargo build --quiet --bin raygate
  RAYGATE_BIN="$repo/target/debug/raygate"
fi
raygate="$RAYGATE_BIN"
if [[ -z "${RAYGATE_CONTROLPLANE_LAUNCHER:-}" ]]; then
  cargo build --quiet -p raygate-e2e --bin raygate-controlplane
  RAYGATE_CONTROLPLANE_LAUNCHER="$repo/target/debug/raygate-controlplane"
fi
webhook_port="${RAYGATE_DEV_WEBHOOK_PORT:-9443}"
webhook_admin_port="${RAYGATE_DEV_WEBHOOK_ADMIN_PORT:-8081}"
controller_admin_port="${RAYGATE_DEV_CONTROLLER_ADMIN_PORT:-8082}"

work="$(mktemp -d)"
"$RAYGATE_CONTROLPLANE_LAUNCHER" >"$work/controlplane.out" 2>&1 &
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
grep -E '^(control plane ready|etcd:|logs:)' "$work/controlplane.out" || true
eval "$kubeconfig_line"
kubectl() { "$bin/kubectl" "$@"; }

echo "== installing raygate's CRDs (plain kubectl apply)"
"$raygate" crd | kubectl apply -f -
# Retried: `kubectl wait` fails at once ("accessor error: <nil>") on a CRD that has no
# conditions yet, which a just-applied one may not.
crds_established=""
for _ in $(seq 1 12); do
  kubectl wait --for=condition=Established --timeout=5s crd/rayclusters.ray.io \
    crd/rayjobs.ray.io crd/rayservices.ray.io crd/raypolicies.raygate.io >/dev/null 2>&1 &&
    { crds_established=1; break; }
  sleep 1
done
[[ -n "$crds_established" ]] || { echo "raygate's CRDs did not become established" >&2; exit 1; }

echo "== starting raygate webhook on https://127.0.0.1:$webhook_port (admin http://127.0.0.1:$webhook_admin_port)"
"$raygate" certs self-signed --dir "$work/certs" --ip 127.0.0.1 --dns localhost
"$raygate" webhook --listen "127.0.0.1:$webhook_port" --admin-listen "127.0.0.1:$webhook_admin_port" \
  --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" >"$work/webhook.log" 2>&1 &
webhook_pid=$!
webhook_ready=""
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$webhook_admin_port/readyz" >/dev/null 2>&1 && { webhook_ready=1; break; }
  kill -0 "$webhook_pid" 2>/dev/null || { cat "$work/webhook.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$webhook_ready" ]] || {
  cat "$work/webhook.log" >&2; echo "raygate webhook not ready after 30 s" >&2; exit 1; }
"$raygate" webhook-config --url "https://127.0.0.1:$webhook_port" \
  --ca-bundle-file "$work/certs/ca.crt" | kubectl apply -f -

echo "== starting raygate controller (admin http://127.0.0.1:$controller_admin_port)"
"$raygate" controller --admin-listen "127.0.0.1:$controller_admin_port" >"$work/controller.log" 2>&1 &
controller_pid=$!

sample="$repo/../shared/kuberay/samples/ray-cluster.sample.yaml"
echo "== raygate check $sample"
"$raygate" check "$sample" || true
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
