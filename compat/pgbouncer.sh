#!/usr/bin/env bash
# Compatibility check: nestjs-pg-tenancy behind PgBouncer (pool_mode = transaction).
#
#   bash compat/pgbouncer.sh
#
# Needs `pgbouncer` on PATH (Debian: apt-get install -y pgbouncer) and installed node_modules
# (npm ci). Installs nothing itself: without pgbouncer it prints SKIP and exits 0. Builds the
# library (npm run build) only when dist/ is missing. See compat/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pgbouncer >/dev/null 2>&1; then
  echo "SKIP  PgBouncer compatibility check: pgbouncer is not on PATH (install it with: apt-get install -y pgbouncer)"
  exit 0
fi

if [[ ! -f dist/index.js || ! -f dist/testing/index.js ]]; then
  echo "dist/ is missing: running npm run build"
  npm run build
fi

exec node compat/pgbouncer-check.mjs
