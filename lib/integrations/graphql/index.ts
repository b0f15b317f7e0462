export { tenantSchema } from './tenant-schema.js';
export type { GraphqlErrorExtensions } from '../../observability/http-errors.js';
