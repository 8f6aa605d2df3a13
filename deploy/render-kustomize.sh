#!/usr/bin/env bash
# Renders the kustomize base from the Helm chart (default values, namespace raygate-system), so
# both install exactly the same objects. The deploy test fails when the checked-in copy differs:
# run this after changing the chart.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
helm="${RAYGATE_HELM_BIN:-$repo/target/tools/bin/helm}"
{
  echo "# Rendered from deploy/helm/raygate by deploy/render-kustomize.sh; do not edit by hand."
  "$helm" template raygate "$repo/deploy/helm/raygate" --namespace raygate-system \
    --kube-version 1.37.2 --include-crds --no-hooks
} > "$repo/deploy/kustomize/raygate.yaml"
echo "wrote deploy/kustomize/raygate.yaml"
