import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { DatabaseModuleExtras, DatabaseModuleOptions } from './database-options.interface.js';
import { createRootProviders } from './database.providers.js';
import { DATABASE_MODULE_OPTIONS } from './database.tokens.js';

export const {
  ConfigurableModuleClass: ConfigurableDatabaseModule,
  ASYNC_OPTIONS_TYPE: DATABASE_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<DatabaseModuleOptions>({
  moduleName: 'Database',
  optionsInjectionToken: DATABASE_MODULE_OPTIONS,
})
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createDatabaseOptions')
  // Every extra is listed (tenancy too, though it has no default) so that Nest keeps all of them
  // out of the options object: then one found there can only have come from an async factory.
  .setExtras<DatabaseModuleExtras>(
    { isGlobal: true, schemas: {}, tenancy: undefined },
    (definition, extras) => {
      const { providers, exports } = createRootProviders(extras.schemas, extras.tenancy);
      return {
        ...definition,
        global: extras.isGlobal,
        providers: [...(definition.providers ?? []), ...providers],
        exports: [...(definition.exports ?? []), ...exports],
      };
    },
  )
  .build();
