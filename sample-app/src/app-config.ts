import { randomBytes } from 'node:crypto';

/** Settings read from the environment once, at start-up, and injected where needed. */
export class AppConfig {
  constructor(
    /** `PORT`; `0` picks a free port. Default: `3000`. */
    readonly port: number,
    /** `HOST`, the interface to listen on. Default: `127.0.0.1` (this machine only). */
    readonly host: string,
    /** `ADMIN_TOKEN`, the bearer token of the `/admin` API. Default: a random one per start. */
    readonly adminToken: string,
    /** `true` when `adminToken` was generated rather than read from `ADMIN_TOKEN`. */
    readonly adminTokenGenerated: boolean,
    /**
     * `SESSION_SECRET`, the key that signs user session tokens. Default: a random one per start
     * (sessions then end with the process).
     */
    readonly sessionSecret: string = randomBytes(32).toString('base64url'),
    /**
     * `TENANT_TIER`, where new tenants live: `schema` (a schema each) or `pooled` (rows in shared
     * tables, held to each tenant by row-level security). The app's code is the same for both.
     * Default: `schema`.
     */
    readonly tenantTier: 'schema' | 'pooled' = 'schema',
    /** `POOLED_ROLE`, the role pooled tenants' statements run as. Default: `tenancy_pooled`. */
    readonly pooledRole: string = 'tenancy_pooled',
  ) {}

  static fromEnv(env: NodeJS.ProcessEnv = process.env): AppConfig {
    const port = Number(env.PORT ?? 3000);
    if (!Number.isInteger(port) || port < 0 || port > 65_535) {
      throw new Error(`PORT must be an integer from 0 to 65535 (0 picks a free port).`);
    }
    const token = env.ADMIN_TOKEN?.trim();
    if (token !== undefined && token.length > 0 && token.length < 16) {
      throw new Error('ADMIN_TOKEN must be at least 16 characters long.');
    }
    const secret = env.SESSION_SECRET?.trim();
    if (secret !== undefined && secret.length > 0 && secret.length < 32) {
      throw new Error('SESSION_SECRET must be at least 32 characters long.');
    }
    const tier = env.TENANT_TIER?.trim() || 'schema';
    if (tier !== 'schema' && tier !== 'pooled') {
      throw new Error(`TENANT_TIER must be schema or pooled, received ${JSON.stringify(tier)}.`);
    }
    return new AppConfig(
      port,
      env.HOST || '127.0.0.1',
      token || randomBytes(24).toString('base64url'),
      !token,
      secret || randomBytes(32).toString('base64url'),
      tier,
      env.POOLED_ROLE?.trim() || 'tenancy_pooled',
    );
  }
}
