#!/usr/bin/env bash
# Runs every test of raygate: unit, property and CLI tests, and the end-to-end tests against a
# real kube-apiserver + etcd (built from the published Go modules on first use, then cached
# under target/controlplane/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash tests/controlplane/build.sh
export RAYGATE_CONTROLPLANE_BIN="$PWD/target/controlplane/bin"
# helm, for the chart tests (built from its Go module, cached under target/tools/).
bash tests/tools/build-helm.sh
export RAYGATE_HELM_BIN="$PWD/target/tools/bin/helm"
# cert-manager's controller and cainjector (from the github.com/cert-manager/cert-manager module)
# and its CRDs, for the cert-manager mode tests (cached under target/cert-manager/).
bash tests/certmanager/build.sh
export RAYGATE_CERT_MANAGER_BIN="$PWD/target/cert-manager/bin"
export RAYGATE_CERT_MANAGER_CRDS="$PWD/target/cert-manager/crds"
# The Gateway API's CRDs (from the sigs.k8s.io/gateway-api module), for the RayService
# incremental upgrade tests (cached under target/gateway-api/).
bash tests/gatewayapi/fetch-crds.sh
export RAYGATE_GATEWAY_API_CRDS="$PWD/target/gateway-api/crds"
# Ray from PyPI, for the tests against a real Ray head (installed once under target/ray-venv/).
bash tests/tools/install-ray.sh >/dev/null
export RAYGATE_RAY_BIN="$PWD/target/ray-venv/bin/ray"
# The end-to-end tests run `raygate webhook` as its own process.
cargo build --bin raygate
export RAYGATE_BIN="$PWD/target/debug/raygate"
cargo test --workspace --all-targets --no-fail-fast "$@"
