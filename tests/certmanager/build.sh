#!/usr/bin/env bash
# Builds a real cert-manager for raygate's end-to-end tests: the controller and the cainjector,
# from the published github.com/cert-manager/cert-manager module (version pinned in ./go.mod),
# into <repo>/target/cert-manager/bin/. The module's CRDs (deploy/crds/*.yaml) are copied next to
# them, into <repo>/target/cert-manager/crds/, straight from the downloaded module.
#
# Skipped when the binaries and CRDs exist and the stamp (a hash of this script, go.mod, go.sum,
# the two main.go files and the Go version) matches. RAYGATE_CERT_MANAGER_FORCE=1 rebuilds.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$repo/target/cert-manager"
bin="$out/bin"
crds="$out/crds"
stamp="$out/stamp"

fail() {
  echo "" >&2
  echo "certmanager/build.sh: FAILED: $*" >&2
  exit 1
}
trap 'fail "command failed at line $LINENO (exit $?)"' ERR

command -v go >/dev/null || fail "the go toolchain is not on PATH"
mkdir -p "$bin"
exec 9>"$out/.lock"
flock 9

inputs=(
  "$here/build.sh" "$here/go.mod" "$here/go.sum"
  "$here/cmd/cert-manager-controller/main.go" "$here/cmd/cert-manager-cainjector/main.go"
)
hash="$( { go version; for f in "${inputs[@]}"; do echo "== ${f#"$here"/}"; cat "$f"; done; } | sha256sum | cut -d' ' -f1)"

binaries=(cert-manager-controller cert-manager-cainjector)
all_present=1
for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || all_present=0; done
[[ -f "$crds/cert-manager.io_certificates.yaml" ]] || all_present=0
if [[ "${RAYGATE_CERT_MANAGER_FORCE:-0}" != 1 && $all_present == 1 && -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
  echo "certmanager/build.sh: up to date in $out (stamp $hash), nothing to do"
  exit 0
fi
rm -f "$stamp"

version="$(cd "$here" && go list -m -f '{{.Version}}' github.com/cert-manager/cert-manager)"
echo "certmanager/build.sh: building cert-manager $version (controller, cainjector) into $bin (go: $(go version))"

# The CRDs ship in the module zip under deploy/crds/, as plain CustomResourceDefinitions.
module_dir="$(cd "$here" && go mod download -json "github.com/cert-manager/cert-manager@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -d "$module_dir/deploy/crds" ]] || fail "no deploy/crds in the downloaded module ($module_dir)"
rm -rf "$crds.new"
mkdir -p "$crds.new"
cp "$module_dir"/deploy/crds/*.yaml "$crds.new/"
chmod u+w "$crds.new"/*.yaml
rm -rf "$crds"
mv "$crds.new" "$crds"

export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"
ldflags="-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$version"
for b in "${binaries[@]}"; do
  start=$(date +%s)
  echo "certmanager/build.sh: building $b ..."
  (cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$bin/.$b.new" "./cmd/$b") \
    || fail "go build of $b failed (see the compiler output above)"
  mv -f "$bin/.$b.new" "$bin/$b"
  echo "certmanager/build.sh: built $bin/$b in $(( $(date +%s) - start ))s"
done

echo "$version" >"$out/version"
echo "$hash" >"$stamp"
echo "certmanager/build.sh: done; stamp $hash written to $stamp"
