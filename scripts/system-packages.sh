#!/usr/bin/env bash
# Installs the Debian packages the test suite uses when they are missing (PgBouncer for
# the suites that run through it). Needs root and apt-get; otherwise says what to install.
set -euo pipefail
missing=()
command -v pgbouncer >/dev/null 2>&1 || missing+=(pgbouncer)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "missing Debian packages for the tests: ${missing[*]} (apt-get install ${missing[*]})" >&2
fi
