#!/usr/bin/env bash
# Usage: BUF=path/to/buf scripts/buf-breaking.sh — run from the repository root.
# Fails when protos/ breaks the latest released contract: the newest buf image in
# protos/released/ (written by `make release-contract VERSION=vX.Y.Z` when cutting a
# release). Images are committed, so the check needs no tags and works in any clone.
set -euo pipefail
buf=${BUF:-buf}

shopt -s nullglob
released=(protos/released/v*.json)
if [ ${#released[@]} -eq 0 ]; then
  echo "buf-breaking: no released contract in protos/released/" >&2
  exit 1
fi
latest=$(printf '%s\n' "${released[@]}" | sort -V | tail -n 1)
"$buf" breaking protos --against "$latest"
echo "buf-breaking: protos/ is compatible with $(basename "$latest" .json)"
