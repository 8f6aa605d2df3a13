#!/usr/bin/env bash
# Fetches the Gateway API's standard CRDs (Gateway, HTTPRoute, ...) for raygate's end-to-end
# tests of the RayService incremental upgrade: they ship in the published
# sigs.k8s.io/gateway-api Go module (the version KubeRay builds against), under
# config/crd/standard/. Copied into <repo>/target/gateway-api/crds/; skipped when present.
set -euo pipefail

version="v1.4.1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$repo/target/gateway-api"
crds="$out/crds"

fail() {
  echo "gatewayapi/fetch-crds.sh: FAILED: $*" >&2
  exit 1
}
command -v go >/dev/null || fail "the go toolchain is not on PATH"
mkdir -p "$out"
if [[ -f "$crds/VERSION" && "$(cat "$crds/VERSION")" == "$version" ]]; then
  exit 0
fi
# Outside any module: go mod download fetches the module zip into the module cache.
module_dir="$(cd "$out" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/gateway-api@$version" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -d "$module_dir/config/crd/standard" ]] || fail "no config/crd/standard in $module_dir"
rm -rf "$crds.new"
mkdir -p "$crds.new"
cp "$module_dir"/config/crd/standard/*.yaml "$crds.new/"
chmod u+w "$crds.new"/*.yaml
echo "$version" > "$crds.new/VERSION"
rm -rf "$crds"
mv "$crds.new" "$crds"
echo "gatewayapi/fetch-crds.sh: Gateway API $version CRDs in $crds"
