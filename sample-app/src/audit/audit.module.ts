import { Module } from '@nestjs/common';
import { DatabaseModule } from 'nestjs-pg-tenancy';
import { migrationsFolder } from '../migrations.js';
import { AuditService } from './audit.service.js';

/**
 * A feature module that owns a schema, as a library shipped in its own package would: it
 * declares `audit` with its migrations and gets a manager over the application's one pool.
 * Its migrations run at start-up with the app's.
 */
@Module({
  imports: [DatabaseModule.forFeature({ name: 'audit', migrations: migrationsFolder('audit') })],
  providers: [AuditService],
  exports: [AuditService],
})
export class AuditModule {}
