#!/usr/bin/env bash
# Builds helm from its published Go module (helm.sh/helm/v3) into <repo>/target/tools/bin/helm,
# for the chart tests (`helm lint`, `helm template`). Skipped when that version is already built.
set -euo pipefail

version="v3.22.0"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$repo/target/tools/bin"
mkdir -p "$bin"
exec 9>"$bin/.helm.lock"
flock 9

if [[ -x "$bin/helm" && "$(cat "$bin/helm.version" 2>/dev/null)" == "$version $(go env GOVERSION)" ]]; then
  echo "build-helm.sh: helm $version up to date in $bin"
  exit 0
fi
echo "build-helm.sh: building helm $version from the Go module proxy (first run takes minutes)"
GOBIN="$bin" GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@$version"
echo "$version $(go env GOVERSION)" > "$bin/helm.version"
"$bin/helm" version --short
