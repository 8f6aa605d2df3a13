#!/usr/bin/env bash
# Build the real control plane used by raygate's end-to-end tests and `dev`:
# kube-apiserver and kubectl (from k8s.io/kubernetes, module ./apiserver) and
# etcd (from go.etcd.io/etcd/server/v3, module ./etcd), into <repo>/target/controlplane/bin/.
#
# The build is skipped when all binaries exist and the stamp (a hash of this
# script, the go.mod/go.sum/main.go inputs and the Go version) matches.
# Set RAYGATE_CONTROLPLANE_FORCE=1 to rebuild anyway.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$repo/target/controlplane"
bin="$out/bin"
stamp="$out/stamp"

fail() {
  echo "" >&2
  echo "controlplane/build.sh: FAILED: $*" >&2
  exit 1
}
trap 'fail "command failed at line $LINENO (exit $?)"' ERR

command -v go >/dev/null || fail "the go toolchain is not on PATH"
mkdir -p "$bin"

# One build at a time (parallel test runs may call this script together).
exec 9>"$out/.lock"
flock 9

inputs=(
  "$here/build.sh"
  "$here/apiserver/go.mod" "$here/apiserver/go.sum"
  "$here/apiserver/cmd/kube-apiserver/main.go" "$here/apiserver/cmd/kubectl/main.go"
  "$here/etcd/go.mod" "$here/etcd/go.sum" "$here/etcd/cmd/etcd/main.go"
)
hash="$( { go version; for f in "${inputs[@]}"; do echo "== ${f#"$here"/}"; cat "$f"; done; } | sha256sum | cut -d' ' -f1)"

binaries=(kube-apiserver kubectl etcd)
all_present=1
for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || all_present=0; done
if [[ "${RAYGATE_CONTROLPLANE_FORCE:-0}" != 1 && $all_present == 1 && -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
  echo "controlplane/build.sh: up to date in $bin (stamp $hash), nothing to do"
  exit 0
fi
rm -f "$stamp"

# The Kubernetes version the binaries report (kubectl version, /version).
kube_version="$(cd "$here/apiserver" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
[[ "$kube_version" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || fail "unexpected k8s.io/kubernetes version '$kube_version'"
kube_major="${BASH_REMATCH[1]}"
kube_minor="${BASH_REMATCH[2]}"
build_date="$(date -u +'%Y-%m-%dT%H:%M:%SZ')"
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X '$pkg.gitVersion=$kube_version'"
  kube_ldflags+=" -X '$pkg.gitMajor=$kube_major'"
  kube_ldflags+=" -X '$pkg.gitMinor=$kube_minor'"
  kube_ldflags+=" -X '$pkg.gitTreeState=clean'"
  kube_ldflags+=" -X '$pkg.buildDate=$build_date'"
done

export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"

build() { # build <module dir> <package> <name> <ldflags>
  local dir="$1" pkg="$2" name="$3" ldflags="$4" start end
  echo "controlplane/build.sh: building $name from $dir ($pkg) ..."
  start=$(date +%s)
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$bin/.$name.new" "$pkg") \
    || fail "go build of $name failed (see the compiler output above)"
  mv -f "$bin/.$name.new" "$bin/$name"
  end=$(date +%s)
  echo "controlplane/build.sh: built $bin/$name in $((end - start))s"
}

echo "controlplane/build.sh: building kube-apiserver, kubectl ($kube_version) and etcd into $bin (go: $(go version))"
build "$here/etcd" ./cmd/etcd etcd "-s -w"
build "$here/apiserver" ./cmd/kube-apiserver kube-apiserver "$kube_ldflags"
build "$here/apiserver" ./cmd/kubectl kubectl "$kube_ldflags"

echo "$hash" >"$stamp"
echo "controlplane/build.sh: done; stamp $hash written to $stamp"
