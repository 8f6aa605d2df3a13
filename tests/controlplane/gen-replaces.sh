#!/usr/bin/env bash
# Pin k8s.io/kubernetes in the apiserver module and point every k8s.io staging
# module that k8s.io/kubernetes replaces into its own tree at the published
# v0.<minor>.<patch> release of that module.
#
# Usage: tests/controlplane/gen-replaces.sh [v1.37.x]
#   Without an argument, the version currently required in apiserver/go.mod is kept.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod="$here/apiserver"

version="${1:-}"
if [[ -z "$version" ]]; then
  version="$(cd "$mod" && go mod edit -json | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Require") or []:
    if r["Path"] == "k8s.io/kubernetes":
        print(r["Version"])
')"
fi
if [[ ! "$version" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]]; then
  echo "gen-replaces.sh: need a release version like v1.37.2, got '${version}'" >&2
  exit 1
fi
staging_version="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"

echo "gen-replaces.sh: k8s.io/kubernetes ${version} -> staging modules at ${staging_version}"
kmod="$(go mod download -json "k8s.io/kubernetes@${version}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"

# Staging modules: the replace directives of k8s.io/kubernetes that point into ./staging/.
mapfile -t staging < <(go mod edit -json "$kmod" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    if r["New"]["Path"].startswith("./staging/"):
        print(r["Old"]["Path"])
')
if [[ ${#staging[@]} -eq 0 ]]; then
  echo "gen-replaces.sh: found no staging replaces in ${kmod}" >&2
  exit 1
fi

cd "$mod"
# Drop every existing k8s.io replace, then write the new ones.
mapfile -t old < <(go mod edit -json | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    if r["Old"]["Path"].startswith("k8s.io/"):
        print(r["Old"]["Path"])
')
args=(-require="k8s.io/kubernetes@${version}")
for p in "${old[@]}"; do args+=(-dropreplace="$p"); done
for p in "${staging[@]}"; do args+=(-replace="${p}=${p}@${staging_version}"); done
go mod edit "${args[@]}"
echo "gen-replaces.sh: wrote ${#staging[@]} replace lines into ${mod}/go.mod"
echo "gen-replaces.sh: now run: (cd ${mod} && go mod tidy)"
