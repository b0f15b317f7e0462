/**
 * What a socket.io connection shows at its handshake: the HTTP headers and query string of its
 * first request, the `auth` payload the client passed to `io(url, { auth })`, and `data`, which
 * your own `server.use()` middleware may have filled (a verified user, say) before the tenant is
 * resolved. A structural view of socket.io's `Socket`, so this module needs no import of it.
 */
export interface TenantSocket {
  /** The socket's id (socket.io's). */
  readonly id: string;
  /** The handshake the client connected with. */
  readonly handshake: {
    /** The headers of the connection's first HTTP request, names in lower case. */
    readonly headers: Record<string, string | string[] | undefined>;
    /** Its query string, parsed. */
    readonly query: Record<string, unknown>;
    /** The payload the client passed as `auth`; `{}` when none. */
    readonly auth: Record<string, unknown>;
  };
  /** Server-side data attached to the socket by your middleware (never sent by the client). */
  readonly data: unknown;
  /** The namespace the socket connected to. */
  readonly nsp: {
    /** Its name: `'/'`, `'/chat'`. */
    readonly name: string;
  };
}

/**
 * Finds the tenant id of a socket.io connection at its handshake; `undefined` when it names none
 * (the connection is then refused with `TenantRequiredError`). Called once per connection, and
 * may be async (verifying a token, say). What it returns is checked as a request's tenant is:
 * the id pattern, `tenancy.authorize`, then the registry.
 *
 * @example (socket) => (socket.data as { user?: { tenantId?: string } }).user?.tenantId
 */
export type HandshakeTenantResolver = (
  socket: TenantSocket,
) => string | undefined | null | Promise<string | undefined | null>;

function single(value: unknown): string | undefined {
  if (Array.isArray(value)) return single(value[0]);
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function described(resolver: HandshakeTenantResolver, hint: string): HandshakeTenantResolver {
  return Object.assign(resolver, { description: hint });
}

/** Reads the tenant id from a header of the handshake. @example fromHandshakeHeader('x-tenant-id') */
export function fromHandshakeHeader(name: string): HandshakeTenantResolver {
  const header = name.toLowerCase();
  return described(
    (socket) => single(socket.handshake.headers[header]),
    `send the "${header}" header with the handshake`,
  );
}

/** Reads the tenant id from the handshake's query string: `io(url, { query: { tenant } })`. */
export function fromHandshakeQuery(name: string): HandshakeTenantResolver {
  return described(
    (socket) => single(socket.handshake.query[name]),
    `pass the "${name}" query parameter with the handshake`,
  );
}

/**
 * Reads the tenant id from the client's `auth` payload: `io(url, { auth: { tenantId } })`. The
 * payload is the client's word: let `tenancy.authorize` check it against a verified identity.
 */
export function fromHandshakeAuth(key: string): HandshakeTenantResolver {
  return described(
    (socket) => single(socket.handshake.auth[key]),
    `pass "${key}" in the handshake's auth payload`,
  );
}

/** The hint given when a connection names no tenant. */
export function describeHandshakeResolver(resolver: HandshakeTenantResolver): string {
  return (
    (resolver as { description?: string }).description ?? 'the connection must identify a tenant'
  );
}
