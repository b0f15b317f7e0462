#!/usr/bin/env bash
# Debian's PostgreSQL 15, plain (no Citus): the suites that compare tenant schemas with pg_dump.
#
#   bash compat/postgres15.sh
#
# pg_dump refuses a server newer than itself, and the embedded server of the test suite is
# newer than any pg_dump Debian ships, so `pg_dump --schema-only` comparisons can only run
# against a server of pg_dump's own version. This starts one (initdb in a temporary directory,
# on a free loopback port, trust auth; stopped and removed at exit, also on failure and Ctrl-C)
# and runs against it, with PG_DUMP_REQUIRED=1 so that a pg_dump that cannot run fails instead
# of skipping:
#   - tenant-template.spec: a tenant copied from the template, and one from a spare, against
#     one built by replay;
#   - equivalence.spec: every provisioning path against replay, pg_dump included.
# Without /usr/lib/postgresql/15/bin it prints SKIP and exits 0, unless POSTGRES15_STRICT=1
# (set by .ci/run), where it fails. About 40 s on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
bin=/usr/lib/postgresql/15/bin

if [[ ! -x $bin/initdb || ! -x $bin/pg_dump ]]; then
  if [[ "${POSTGRES15_STRICT:-}" = 1 ]]; then
    echo "FAIL  PostgreSQL 15 check: $bin has no initdb or pg_dump (apt-get install postgresql-15)"
    exit 1
  fi
  echo "SKIP  PostgreSQL 15 check: $bin has no initdb or pg_dump (apt-get install postgresql-15)"
  exit 0
fi
if [[ ! -f dist/testing/index.js ]]; then
  echo "dist/ is missing: running npm run build"
  npm run build
fi

# As root, the server runs as the `postgres` system user (initdb refuses root).
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
port=$(node -e '
const s = require("node:net").createServer();
s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')
dir=$(mktemp -d)
chmod 755 "$dir"
[ "$(id -u)" = 0 ] && chown postgres "$dir"
down() {
  as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap down EXIT
trap 'exit 130' INT TERM
as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 200
fsync = off
CONF
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
url="postgres://postgres@127.0.0.1:$port/postgres"
echo "INFO  PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on port $port"

suites=(
  test/integration/tenancy/provisioning/tenant-template.spec.ts
  test/integration/tenancy/equivalence.spec.ts
)
for suite in "${suites[@]}"; do
  [[ -f $suite ]] || { echo "FAIL  $suite does not exist: update the list in compat/postgres15.sh"; exit 1; }
done
status=0
if ! DATABASE_URL=$url PG_DUMP_REQUIRED=1 node --experimental-vm-modules \
  --no-warnings=ExperimentalWarning node_modules/jest/bin/jest.js --maxWorkers=2 "${suites[@]}"; then
  echo "FAIL  Jest suites on PostgreSQL 15"
  status=1
fi
echo "INFO  PostgreSQL 15 check took $((SECONDS - started)) s"
exit $status
