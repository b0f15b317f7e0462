// nestjs-pg-tenancy/microservices: the tenant travels with @nestjs/microservices messages (TCP,
// Redis, NATS) in their headers or metadata; handlers run in it. Guide: docs/microservices.md.
export {
  connectTenantMicroservice,
  registerTenantMessages,
  type TenantMessagesOptions,
} from './tenant-messages.js';
export {
  TenantClient,
  type TenantClientOptions,
  type TenantMessageOptions,
} from './tenant-client.js';
export { TENANT_MESSAGE_HEADER, type TenantRefusal } from './tenant-message.wire.js';
export { MessageWithoutTenantError, TenantMessageRefusedError } from './microservices.errors.js';
