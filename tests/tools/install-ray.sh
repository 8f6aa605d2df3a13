#!/usr/bin/env bash
# Installs Ray from PyPI into a virtualenv at <repo>/target/ray-venv, for the tests that talk to a
# real Ray head (the dashboard's Jobs and Serve APIs). Skipped when that version is already
# installed. Prints the path of the `ray` binary.
set -euo pipefail

version="2.60.0"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$repo/target/ray-venv"
mkdir -p "$repo/target"
exec 9>"$repo/target/.ray-venv.lock"
flock 9

# `ray --version` prints "ray, version 2.60.0".
if [[ -x "$venv/bin/ray" ]] && "$venv/bin/ray" --version 2>/dev/null | grep -qx "ray, version $version"; then
  echo "install-ray.sh: ray $version up to date in $venv" >&2
else
  echo "install-ray.sh: installing ray[default,serve]==$version from PyPI into $venv (a few hundred MB)" >&2
  "${RAYGATE_PYTHON:-python3}" -m venv --clear "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip >&2
  "$venv/bin/pip" install --quiet "ray[default,serve]==$version" >&2
  "$venv/bin/ray" --version >&2
fi

# The hook that keeps Serve's gRPC servers on loopback when RAYGATE_RAY_LOOPBACK_ONLY=1
# (see raygate_loopback.py); refreshed on every run so edits take effect.
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
cp "$repo/tests/tools/raygate_loopback.py" "$site/raygate_loopback.py"
echo "import raygate_loopback" > "$site/raygate_loopback.pth"

echo "$venv/bin/ray"
