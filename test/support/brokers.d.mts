// Types of the brokers started for tests and bench suites (plain JavaScript).
export type BrokerKind = 'redis' | 'nats';

/** A broker started for one test file or bench suite. */
export interface ExternalServer {
  readonly host: string;
  readonly port: number;
  /** `redis://127.0.0.1:<port>` or `nats://127.0.0.1:<port>`. */
  readonly url: string;
  stop(): Promise<void>;
}

export function serverBinary(kind: BrokerKind): string;
export function hasServer(kind: BrokerKind): boolean;
export function freePort(): Promise<number>;
export function startRedis(): Promise<ExternalServer>;
export function startNats(): Promise<ExternalServer>;
