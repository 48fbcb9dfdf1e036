#!/usr/bin/env bash
# Usage: BUF=path/to/buf scripts/buf-breaking.sh — run from the repository root.
# Fails when protos/ breaks the latest released contract: the latest `v*` tag reachable
# from HEAD, or, in a clone that carries no tags, the newest image in protos/released/
# (`make release-contract VERSION=vX.Y.Z` writes it when a release is tagged).
set -euo pipefail
buf=${BUF:-buf}

if tag=$(git describe --tags --abbrev=0 --match 'v*' 2>/dev/null); then
  # The common dir holds the tags, also in a linked worktree (where .git is a file).
  against="$(git rev-parse --git-common-dir)#format=git,tag=$tag,subdir=protos"
  release=$tag
else
  shopt -s nullglob
  released=(protos/released/v*.json)
  if [ ${#released[@]} -eq 0 ]; then
    echo "buf-breaking: no v* tag reachable from HEAD and no released contract in" \
      "protos/released/" >&2
    exit 1
  fi
  against=$(printf '%s\n' "${released[@]}" | sort -V | tail -n 1)
  release="$(basename "$against" .json) (protos/released/)"
fi
"$buf" breaking protos --against "$against"
echo "buf-breaking: protos/ is compatible with $release"
