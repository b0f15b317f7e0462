export {
  DatabaseHealthIndicator,
  type DatabaseHealthOptions,
} from './database-health.indicator.js';
