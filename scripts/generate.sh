#!/usr/bin/env bash
# Usage: PY=python scripts/generate.sh OUTDIR — compiles protos/ into OUTDIR.
set -euo pipefail
out=$1
rm -rf "$out/orgs"
mkdir -p "$out"
# protoc finds the mypy plugins next to the interpreter. Only orgs/v1 is compiled: the
# vendored google/api protos are imports, provided at run time by googleapis-common-protos.
# Quiet unless it fails: the mypy plugins report every file they write (`make run` and
# `make test` run this on every start).
if ! output=$(PATH="$(dirname "${PY:-python}"):$PATH" "${PY:-python}" -m grpc_tools.protoc \
  -I protos --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  protos/orgs/v1/*.proto 2>&1); then
  printf '%s\n' "$output" >&2
  exit 1
fi
# Regular packages (not namespace packages), typed, so installs and mypy find them.
for pkg in "$out/orgs" "$out/orgs/v1"; do
  : > "$pkg/__init__.py"
  : > "$pkg/py.typed"
done
