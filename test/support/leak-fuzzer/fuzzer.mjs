// The leak fuzzer (#26): a seeded random interleaving of operations over many tenants, across
// channels (HTTP, TenantService.run, TenantAdmission, long-lived sessions, and the integrations'
// channels when present), while a lifecycle actor suspends, resumes, drops and re-creates tenants
// mid-flight, on the serving instance or on a second one. Tenants live in either tier, schema or
// pooled, chosen by the seed (again at each re-creation). Every operation writes a row stamped
// with the tenant the harness intends and reads its marker back; PostgreSQL's `tableoid` says
// which schema each statement reached, and a pooled row's tenant column and the marker's owner
// whose rows they were. See docs/production.md (the leak fuzzer).
import { NestFactory } from '@nestjs/core';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createRandom } from '../../../bench/lib/random.mjs';
import { FuzzWork, Ledger, MARKER, MIGRATIONS, PAUSE_KINDS, fuzzModule } from './app.mjs';
import { builtInChannels } from './channels.mjs';
import {
  REFUSALS,
  Timeline,
  ZERO_COUNTERS,
  emptyCounters,
  homeOf,
  judge,
  refusalOf,
} from './oracle.mjs';
import { sweep } from './sweep.mjs';

const REGISTRY = 'fuzz_registry';
const PREFIX = 'fz_';
const GHOSTS = ['ghost0', 'ghost1'];
const MALFORMED = 'Not A Tenant!';
/** The pooled tier's schema (`tenancy.pooled: true`: its default). */
const POOLED = 'tenancy_pooled';

/** Defaults of {@link runLeakFuzzer}'s options. */
const FUZZ_DEFAULTS = Object.freeze({
  operations: 3_000,
  tenants: 12,
  concurrency: 16,
  maxStalenessMs: 500,
  lifecycleEvery: 60,
  poolMax: 10,
  pooledShare: 0.5,
});

/** The seed of `FUZZ_SEED`, or a fresh one. */
export function fuzzSeed(env = process.env) {
  const given = env.FUZZ_SEED;
  if (given !== undefined && given !== '') {
    const seed = Number(given);
    if (!Number.isInteger(seed) || seed < 0)
      throw new Error(`FUZZ_SEED=${given} is not an integer`);
    return seed;
  }
  return Math.floor(Math.random() * 2 ** 31);
}

/**
 * Runs the fuzzer against a fresh database at `url` and returns its report; never throws for a
 * fault it finds (they are in `report.failures`, each naming the seed).
 */
export async function runLeakFuzzer(options) {
  const o = { ...FUZZ_DEFAULTS, channels: builtInChannels(), log: () => undefined, ...options };
  const { lib, seed, operations, maxStalenessMs: boundMs } = o;
  const ids = Array.from({ length: o.tenants }, (_, i) => `t${String(i).padStart(3, '0')}`);
  const schemaOf = (id) => `${PREFIX}${id}`;
  const tenantOfSchema = (schema) =>
    schema?.startsWith(PREFIX) ? schema.slice(PREFIX.length) : undefined;
  // Which tier each tenant is created in: its own seeded stream, so that adding a channel does not
  // change the tiers. The first two tenants are one of each (with the pooled tier on).
  const tiers = createRandom((seed ^ 0x7135ed) >>> 0);
  const pickTier = (index) =>
    (index === 0 ? 1 : index === 1 ? 0 : tiers.next()) < o.pooledShare ? 'pooled' : 'schema';
  const pooledSchema = o.pooledShare > 0 ? POOLED : undefined;
  const where = { schemaOf, tenantOfSchema, pooledSchema };
  const isTyped = (error, refusal) =>
    error instanceof lib.TenantError ||
    error instanceof lib.TenantContextMissingError ||
    (!(error instanceof Error) &&
      refusal.name in REFUSALS &&
      (refusal.status === undefined || refusal.status === REFUSALS[refusal.name]));

  const channels = [];
  const skipped = [];
  for (const channel of await Promise.all(o.channels)) {
    if (channel.skipped) skipped.push({ name: channel.name, reason: channel.skipped });
    else channels.push(channel);
  }
  const scoped = channels.filter((c) => !c.unscoped);
  const ledger = new Ledger();
  const timeline = new Timeline();
  const counters = emptyCounters();
  // `pooled`: operations whose write reached a pooled tenant's rows.
  const byChannel = Object.fromEntries(
    channels.map((c) => [c.name, { served: 0, refused: 0, pooled: 0 }]),
  );
  const refusals = {};
  const lifecycle = { suspend: 0, resume: 0, drop: 0, create: 0, viaServing: 0, viaOther: 0 };
  // Per tier: tenants created in it (at the start and again), and operations whose write reached
  // a tenant of it.
  const tierStats = { schema: { created: 0, wrote: 0 }, pooled: { created: 0, wrote: 0 } };
  const failures = [];
  const examples = [];
  const loggedErrors = { count: 0, samples: [] };
  // Per operation, where it reported writing (for the sweep): the index + 1 of the tenant whose
  // schema it was, or ids.length + that for the tenant's rows in the pooled schema.
  const wroteTo = new Int32Array(operations);
  const fail = (message) => failures.push(`${message} (seed ${seed})`);

  const migrations = await mkdtemp(join(tmpdir(), 'pgt-fuzz-'));
  const admin = new pg.Pool({ connectionString: o.url, max: 2 });
  admin.on('error', () => undefined);
  const apps = [];
  const started = [];
  try {
    for (const [name, text] of Object.entries(MIGRATIONS))
      await writeFile(join(migrations, name), text);
    const database = (serving) => ({
      connection: o.url,
      pool: { max: o.poolMax },
      tenancy: {
        migrations,
        schemaPrefix: PREFIX,
        registrySchema: REGISTRY,
        resolver: lib.fromHeader('x-tenant-id'),
        maxStalenessMs: boundMs,
        negativeCacheMs: boundMs,
        interceptor: serving,
        pooled: pooledSchema !== undefined,
      },
    });
    // What the apps log as errors is counted and sampled, not printed: a refused operation may be
    // logged by Nest (a GraphQL refusal through its exceptions handler), thousands of times a run.
    // The samples skip the typed refusals: what else was logged says what an untyped refusal was.
    const logger = {
      log: () => undefined,
      warn: () => undefined,
      debug: () => undefined,
      verbose: () => undefined,
      error: (message) => {
        loggedErrors.count++;
        const text = String(message);
        if (loggedErrors.samples.length < 3 && !/^(Tenant|InvalidTenantId)\w*Error\b/.test(text))
          loggedErrors.samples.push(text.slice(0, 300));
      },
    };
    const extra = channels.map((c) => c.module ?? {});
    const serving = await NestFactory.create(
      fuzzModule({ lib, database: database(true), serving: true, ledger, extra }),
      { logger },
    );
    apps.push(serving);
    for (const channel of channels) await channel.configure?.(serving, { lib, ledger, seed });
    await serving.listen(0, '127.0.0.1');
    const other = await NestFactory.createApplicationContext(
      fuzzModule({ lib, database: database(false), serving: false }),
      { logger },
    );
    apps.push(other);
    const { port } = serving.getHttpServer().address();
    const url = `http://127.0.0.1:${port}`;
    const work = serving.get(FuzzWork);
    const instances = [serving.get(lib.TenantService), other.get(lib.TenantService)];

    // A tenant and its marker: the marker row names its owner (a pooled one gets the tenant
    // column from the library's scope, which the reads and the sweep then check).
    const createTenant = async (instance, id, tier) => {
      await instance.create(id, { tier });
      await (await instance.db(id)).execute(MARKER, [id]);
      tierStats[tier].created++;
    };
    const tierOf = new Map();
    for (const [index, id] of ids.entries()) {
      tierOf.set(id, pickTier(index));
      await createTenant(instances[1], id, tierOf.get(id));
    }
    for (const id of [...ids, ...GHOSTS])
      timeline.begin(id, ids.includes(id) ? 'active' : 'unknown', tierOf.get(id));
    const names = await admin.query(`SELECT id, schema_name, tier FROM ${REGISTRY}.tenants`);
    for (const row of names.rows)
      if (row.schema_name !== schemaOf(row.id) || row.tier !== tierOf.get(row.id))
        fail(`tenant ${row.id} lives in ${row.schema_name} (${row.tier})`);

    for (const channel of channels) {
      await channel.start?.({ app: serving, url, work, ledger, lib, seed });
      started.push(channel);
    }
    o.log(
      `seed ${seed}: ${operations} operations over ${ids.length} tenants, channels ${channels.map((c) => c.name).join(', ')}` +
        (skipped.length ? `; skipped ${skipped.map((s) => s.name).join(', ')}` : ''),
    );

    // Which channel, which tenant, which pause: each worker draws from its own seeded stream, so a
    // seed fixes every worker's sequence of choices (the timing of the interleaving is the machine's).
    const totalWeight = channels.reduce((sum, c) => sum + (c.weight ?? 1), 0);
    const pickChannel = (rand) => {
      let roll = rand.next() * totalWeight;
      for (const c of channels) if ((roll -= c.weight ?? 1) < 0) return c;
      return scoped[0];
    };
    const makeOp = (id, rand, channel) => {
      const pause = rand.int(PAUSE_KINDS);
      if (channel.unscoped)
        return { id, kind: 'unscoped', tenant: undefined, intended: null, pause };
      const roll = rand.next();
      if (roll < 0.03) return { id, kind: 'missing', tenant: undefined, intended: null, pause };
      if (roll < 0.05) return { id, kind: 'malformed', tenant: MALFORMED, intended: null, pause };
      const tenant = roll < 0.08 ? GHOSTS[rand.int(GHOSTS.length)] : ids[rand.int(ids.length)];
      return { id, kind: 'tenant', tenant, intended: tenant, pause };
    };

    let issued = 0;
    let wake;
    // An operation is judged once the timeline is final over its flight: while a lifecycle call
    // runs (since `changing`), a change may have committed that the timeline does not show yet.
    let changing;
    let pending = [];
    const judgeOp = ({ op, channel, outcome, trace }) => {
      const faults = judge(op, trace, outcome, { timeline, boundMs, isTyped, ...where });
      for (const [counter, detail] of faults) {
        counters[counter]++;
        // Counted here: the sweep does not count the row again.
        if (counter === 'crossTenantWrites' || counter === 'ranWithoutTenant') wroteTo[op.id] = -1;
        // Up to three examples of each kind of fault, so a rare kind is not hidden by a common one.
        if (examples.filter((e) => e.counter === counter).length < 3)
          examples.push({
            counter,
            detail,
            channel: channel.name,
            op,
            trace,
            states: timeline.of(op.tenant),
          });
      }
    };
    const judgePending = () => {
      const waiting = [];
      for (const settled of pending)
        if (changing === undefined || settled.op.endedAt < changing) judgeOp(settled);
        else waiting.push(settled);
      pending = waiting;
    };
    const settle = (op, channel, outcome) => {
      counters.operations++;
      const trace = ledger.take(op.id);
      const home = trace?.wrote === undefined ? null : homeOf(trace.wrote, where);
      const stats = byChannel[channel.name];
      if (home !== null && op.intended !== null && home.tenant === op.intended) {
        wroteTo[op.id] = ids.indexOf(op.intended) + 1 + (home.tier === 'pooled' ? ids.length : 0);
        tierStats[home.tier].wrote++;
        if (home.tier === 'pooled') stats.pooled++;
      }
      if (outcome.ok) {
        counters.served++;
        stats.served++;
      } else {
        counters.refused++;
        stats.refused++;
        const { name } = refusalOf(outcome.error);
        refusals[name] = (refusals[name] ?? 0) + 1;
      }
      const settled = { op, channel, outcome, trace };
      if (changing === undefined) judgeOp(settled);
      else pending.push(settled);
    };
    const worker = async (index) => {
      const rand = createRandom((seed + Math.imul(index + 1, 0x9e3779b1)) >>> 0);
      while (issued < operations) {
        const id = issued++;
        if (wake && issued >= wake.at) wake.resolve();
        const channel = pickChannel(rand);
        const op = makeOp(id, rand, channel);
        op.startedAt = performance.now();
        let outcome;
        try {
          await channel.send(op);
          outcome = { ok: true };
        } catch (error) {
          outcome = { ok: false, error };
        }
        op.endedAt = performance.now();
        settle(op, channel, outcome);
      }
    };

    // The lifecycle actor: one change every `lifecycleEvery` operations issued, from its own stream.
    let running = true;
    const actor = async () => {
      const rand = createRandom((seed ^ 0x5eed1e55) >>> 0);
      let next = o.lifecycleEvery;
      while (running) {
        if (issued < next) {
          await new Promise((resolve) => (wake = { at: next, resolve }));
          wake = undefined;
          if (!running) return;
        }
        next += o.lifecycleEvery;
        // About a quarter of the tenants out of service at a time: take one out, or bring one back.
        const out = ids.filter((id) => timeline.current(id) !== 'active');
        const takeOut = out.length < ids.length / 4;
        const candidates = takeOut ? ids.filter((id) => !out.includes(id)) : out;
        const id = candidates[rand.int(candidates.length)];
        const state = timeline.current(id);
        const action =
          state === 'unknown'
            ? 'create'
            : state === 'active'
              ? rand.next() < 0.7
                ? 'suspend'
                : 'drop'
              : rand.next() < 0.8
                ? 'resume'
                : 'drop';
        const viaServing = rand.next() < 0.25;
        lifecycle[action]++;
        lifecycle[viaServing ? 'viaServing' : 'viaOther']++;
        // A re-created tenant may change tier.
        const tier = action === 'create' ? pickTier(-1) : undefined;
        const startedAt = performance.now();
        changing = startedAt;
        const instance = instances[viaServing ? 0 : 1];
        try {
          if (tier !== undefined) await createTenant(instance, id, tier);
          else await instance[action](id);
        } catch (err) {
          fail(`lifecycle ${action}(${id}) failed: ${err?.stack ?? err}`);
        }
        const endedAt = performance.now();
        const row = await admin.query(
          `SELECT status, tier FROM ${REGISTRY}.tenants WHERE id = $1`,
          [id],
        );
        const { status, tier: now } = row.rows[0] ?? {};
        const known = status === 'active' || status === 'suspended';
        timeline.change(
          id,
          known ? status : 'unknown',
          startedAt,
          endedAt,
          known ? now : undefined,
        );
        changing = undefined;
        judgePending();
      }
    };

    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const acting = actor().catch((err) => {
      changing = undefined;
      fail(`the lifecycle actor stopped: ${err?.stack ?? err}`);
    });
    await Promise.all(Array.from({ length: o.concurrency }, (_, i) => worker(i)));
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    running = false;
    wake?.resolve();
    await acting;
    judgePending();

    const found = await sweep(admin, REGISTRY, { ids, wroteTo, operations, pooledSchema });
    counters.unseenWrites += found.unseen;
    counters.crossTenantWrites += found.foreign;
    counters.crossTenantReads += found.foreignMarkers;
    examples.push(...found.examples);
    for (const counter of ZERO_COUNTERS)
      if (counters[counter] > 0) fail(`${counters[counter]} ${counter}`);
    if (failures.length)
      failures.push(...examples.map((e) => JSON.stringify(e)), ...loggedErrors.samples);
    return {
      seed,
      operations,
      tenants: ids.length,
      concurrency: o.concurrency,
      maxStalenessMs: boundMs,
      seconds,
      opsPerSecond: operations / seconds,
      // This process's CPU per operation (the app, the harness, HTTP both ways; not PostgreSQL's).
      cpuMicrosPerOp: (cpu.user + cpu.system) / operations,
      counters,
      byChannel,
      refusals,
      lifecycle,
      tiers: tierStats,
      rowsSwept: found.rows,
      loggedErrors,
      channels: channels.map((c) => c.name),
      skipped,
      failures,
    };
  } finally {
    for (const channel of started.reverse()) await channel.stop?.().catch(() => undefined);
    for (const app of apps.reverse()) await app.close();
    await admin.end();
    await rm(migrations, { recursive: true, force: true });
  }
}
