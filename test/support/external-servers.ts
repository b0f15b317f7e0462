// Real brokers for the integration tests (#26): Redis (BullMQ, the Redis transport) and NATS, from
// Debian's `redis-server` and `nats-server` packages that `.ci/run` installs. Each test file starts
// its own server on a free port (brokers.mjs, shared with the bench suites), and stops it in
// `afterAll`. No mocks of a queue or a broker.
//
// Where the binary is missing, the suite is skipped with a loud message, except under CI (`CI` set),
// where a missing broker fails the run: CI must test every integration.
import { hasServer, serverBinary, type BrokerKind } from './brokers.mjs';

export {
  freePort,
  startNats,
  startRedis,
  type BrokerKind,
  type ExternalServer,
} from './brokers.mjs';

/**
 * `describe` when the broker is installed; otherwise `describe.skip` with a warning, or, under CI,
 * a suite with one failing test that says what to install.
 */
export function describeWithServer(kind: BrokerKind, name: string, body: () => void): void {
  if (hasServer(kind)) {
    describe(name, body);
    return;
  }
  const hint = `${serverBinary(kind)} is not installed (Debian: apt-get install ${serverBinary(kind)})`;
  if (process.env.CI) {
    describe(name, () => {
      it(`needs ${serverBinary(kind)}`, () => {
        throw new Error(`${hint}; CI must run every integration's tests.`);
      });
    });
    return;
  }
  console.warn(`SKIPPED "${name}": ${hint}.`);
  describe.skip(name, body);
}
