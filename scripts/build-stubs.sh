#!/usr/bin/env bash
# Usage: PY=python scripts/build-stubs.sh OUTDIR — builds the orgservice-stubs wheel into
# OUTDIR. setuptools only packages files inside the project directory, so clients/python/
# and generated/orgs are staged together in a temporary directory first.
set -euo pipefail
py=${PY:-python3}
out=$(realpath -m "${1:?usage: build-stubs.sh OUTDIR}")
root=$(cd "$(dirname "$0")/.." && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

cp -r "$root/clients/python/." "$stage/"
cp -r "$root/generated/orgs" "$stage/orgs"
find "$stage" -name __pycache__ -prune -exec rm -rf {} +
# One version for both distributions: the main project's.
"$py" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
  "$root/pyproject.toml" > "$stage/VERSION"

mkdir -p "$out"
"$py" -m pip wheel --quiet --no-deps --wheel-dir "$out" "$stage"
