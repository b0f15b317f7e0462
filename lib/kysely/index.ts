export { kyselyFor } from './kysely-for.js';
export { KyselyStreamNotSupportedError } from './kysely.errors.js';
