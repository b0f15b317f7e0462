export {
  TenantIoAdapter,
  type TenantSocketOptions,
  type TenantRefusalData,
} from './tenant-io.adapter.js';
export {
  fromHandshakeAuth,
  fromHandshakeHeader,
  fromHandshakeQuery,
  type HandshakeTenantResolver,
  type TenantSocket,
} from './handshake-resolvers.js';
export { HandshakeContext } from './handshake-context.js';
