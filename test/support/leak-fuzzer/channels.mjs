// The leak fuzzer's built-in channels: the ways work reaches a tenant in the core library. Each
// is `{ name, weight, unscoped?, module?, configure?(app), start?(ctx), send(op), stop?() }`;
// `send` settles when the work has finished: it resolves when the work ran, and rejects with what
// refused it (an error the library threw, or `{ name, message, status }` when it came over a wire).
// The integrations' channels live beside this file, one per integration (`channels/*.mjs`).

/** HTTP requests through the global `TenantInterceptor` (`x-tenant-id`). */
function httpChannel() {
  let base;
  return {
    name: 'http',
    weight: 3,
    async start({ url }) {
      base = url;
    },
    async send(op) {
      const headers = { 'x-fuzz-pause': String(op.pause) };
      if (op.tenant !== undefined) headers['x-tenant-id'] = op.tenant;
      if (op.intended !== null) headers['x-fuzz-intended'] = op.intended;
      const response = await fetch(`${base}/fuzz/${op.id}`, { method: 'POST', headers });
      const body = await response.json().catch(() => ({}));
      if (response.status === 200) return;
      throw {
        name: typeof body.error === 'string' ? body.error : `HTTP ${response.status}`,
        message: Array.isArray(body.message) ? body.message.join('; ') : String(body.message),
        status: response.status,
      };
    },
  };
}

/** `TenantService.run(id, fn)`: the background-jobs recipe. */
function serviceRunChannel() {
  let tenants, work;
  return {
    name: 'service-run',
    weight: 2,
    async start(ctx) {
      tenants = ctx.app.get(ctx.lib.TenantService);
      work = ctx.work;
    },
    send: (op) =>
      tenants.run(op.tenant, () => work.perform(op.id, op.intended, 'service-run', op.pause)),
  };
}

/** `TenantAdmission.admit` then `run`, once per unit of work: what a queue's job gets. */
function admissionChannel() {
  let admission, work;
  return {
    name: 'admission',
    weight: 2,
    async start(ctx) {
      admission = ctx.app.get(ctx.lib.TenantAdmission);
      work = ctx.work;
    },
    async send(op) {
      const scope = await admission.admit(op.tenant, { source: `fuzz operation ${op.id}` });
      await admission.run(scope, () => work.perform(op.id, op.intended, 'admission', op.pause));
    },
  };
}

/**
 * Long-lived work admitted once, then many messages: what a socket gets. Each message first asks
 * `TenantAdmission.check` with the session's scope (so a tenant dropped and created again in the
 * other tier since is a refusal, not work sent to its old home); a refusal ends the session (the
 * next message opens a new one). An operation carries `admittedAt`, when its session was opened.
 */
function sessionChannel() {
  let admission, work;
  const sessions = new Map();
  const open = (op) => {
    const key = String(op.tenant);
    let session = sessions.get(key);
    if (!session) {
      session = admission.admit(op.tenant, { source: `fuzz session of ${key}` });
      session.admittedAt = performance.now();
      sessions.set(key, session);
      session.catch(() => sessions.get(key) === session && sessions.delete(key));
    }
    op.admittedAt = session.admittedAt;
    return { key, session };
  };
  return {
    name: 'session',
    weight: 2,
    async start(ctx) {
      admission = ctx.app.get(ctx.lib.TenantAdmission);
      work = ctx.work;
    },
    async send(op) {
      const { key, session } = open(op);
      const scope = await session;
      const refused = await admission.check(scope.tenantId, scope);
      if (refused) {
        if (sessions.get(key) === session) sessions.delete(key);
        throw refused;
      }
      await admission.run(scope, () => work.perform(op.id, op.intended, 'session', op.pause));
    },
  };
}

/**
 * Work that runs outside any tenant (a tenant-free job that reaches for the tenant's database by
 * mistake, right after other work in the same flow): it must fail with
 * `TenantContextMissingError`, never borrow a tenant.
 */
function unscopedChannel() {
  let work;
  return {
    name: 'unscoped',
    weight: 0.5,
    unscoped: true,
    async start(ctx) {
      work = ctx.work;
    },
    send: (op) => work.perform(op.id, null, 'unscoped', op.pause),
  };
}

/** The channels of the core library, in the order they are reported. */
export const builtInChannels = () => [
  httpChannel(),
  serviceRunChannel(),
  admissionChannel(),
  sessionChannel(),
  unscopedChannel(),
];
