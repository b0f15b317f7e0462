// The benchmark suites, in the order `run.mjs` runs them. To add one, create a module in this
// folder whose default export is
//
//   { name, description, async run(ctx) → { failures: string[], notes?: string[], data?: object,
//       tables?: { title, columns, rows }[], chart?: { title, unit, series, groups },
//       references?: { unit, label, value }[], skipped?: string } }
//
// and list it here. `ctx` gives: quick (boolean), serverUrl, postgresVersion,
// log(message), createDatabase(prefix) (a fresh database, dropped at the end of the run) and
// defer(fn) (cleanup run at the end, also on failure). A suite asserts correctness only: put
// anything that must hold into `failures` (the run then exits 1), never timing thresholds.
import affinity from './affinity.mjs';
import bulkLoad from './bulk-load.mjs';
import fairShare from './fair-share.mjs';
import fleetWaves from './fleet-waves.mjs';
import http from './http.mjs';
import kysely from './kysely.mjs';
import leakFuzzer from './leak-fuzzer.mjs';
import manyTenants from './many-tenants.mjs';
import migrations from './migrations.mjs';
import pgbench from './pgbench.mjs';
import pointLookups from './point-lookups.mjs';
import preparedStatements from './prepared-statements.mjs';
import connectionMemory from './connection-memory.mjs';
import template from './template.mjs';
import tiers from './tiers.mjs';
import readReplicas from './read-replicas.mjs';
import tierMove from './tier-move.mjs';

export const suites = [
  pointLookups,
  kysely,
  preparedStatements,
  connectionMemory,
  affinity,
  pgbench,
  http,
  migrations,
  template,
  manyTenants,
  tiers,
  readReplicas,
  bulkLoad,
  fairShare,
  fleetWaves,
  leakFuzzer,
  tierMove,
];
