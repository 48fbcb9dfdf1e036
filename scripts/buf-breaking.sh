#!/usr/bin/env bash
# Usage: BUF=path/to/buf scripts/buf-breaking.sh — run from the repository root.
# Fails when protos/ breaks the contract released as the latest `v*` tag.
set -euo pipefail
buf=${BUF:-buf}

latest_release() { git describe --tags --abbrev=0 --match 'v*' 2>/dev/null; }

if ! tag=$(latest_release); then
  # A fresh clone may carry no tags: fetch them once before giving up.
  GIT_TERMINAL_PROMPT=0 git fetch --quiet --tags origin 2>/dev/null || true
  tag=$(latest_release) || {
    echo "buf-breaking: no v* release tag reachable from HEAD, even after fetching tags" \
      "from origin; tag the released contract (git tag v1.0.0 <commit>) or fetch it" >&2
    exit 1
  }
fi

# The common dir holds the tags, also in a linked worktree (where .git is a file).
git_dir=$(git rev-parse --git-common-dir)
"$buf" breaking protos --against "$git_dir#format=git,tag=$tag,subdir=protos"
echo "buf-breaking: protos/ is compatible with $tag"
