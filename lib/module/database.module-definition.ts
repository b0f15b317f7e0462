import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { DatabaseModuleExtras, DatabaseModuleOptions } from './database-options.interface.js';
import { createRootProviders } from './database.providers.js';

export const {
  ConfigurableModuleClass: ConfigurableDatabaseModule,
  /** Injection token of the resolved `forRoot`/`forRootAsync` options. */
  MODULE_OPTIONS_TOKEN: DATABASE_MODULE_OPTIONS,
} = new ConfigurableModuleBuilder<DatabaseModuleOptions>({ moduleName: 'Database' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createDatabaseOptions')
  .setExtras<DatabaseModuleExtras>({ isGlobal: true, schemas: {} }, (definition, extras) => {
    const { providers, exports } = createRootProviders(extras.schemas, extras.tenancy);
    return {
      ...definition,
      global: extras.isGlobal,
      providers: [...(definition.providers ?? []), ...providers],
      exports: [...(definition.exports ?? []), ...exports],
    };
  })
  .build();
