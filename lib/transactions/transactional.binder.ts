import { Injectable, type OnModuleInit } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';
import type { SchemaDb } from '../core/schema-db.js';
import { TRANSACTION_HOST, TRANSACTIONAL_CLASS } from './transactional.decorator.js';

/**
 * Binds every singleton provider and controller that has `@Transactional()` methods to the
 * application's default manager, so the decorator needs neither a static registry nor
 * request-scoped providers. Runs in the (global) database module's `onModuleInit`, which Nest
 * calls before the hooks of the modules that use it.
 */
@Injectable()
export class TransactionalBinder implements OnModuleInit {
  constructor(
    private readonly modules: ModulesContainer,
    private readonly host: SchemaDb,
  ) {}

  onModuleInit(): void {
    for (const moduleRef of this.modules.values()) {
      for (const wrapper of [...moduleRef.providers.values(), ...moduleRef.controllers.values()]) {
        if (!wrapper.isDependencyTreeStatic() || wrapper.isTransient) continue;
        this.#bind(wrapper.instance);
      }
    }
  }

  #bind(instance: unknown): void {
    if (instance === null || typeof instance !== 'object') return;
    try {
      if (!(TRANSACTIONAL_CLASS in instance) || Object.hasOwn(instance, TRANSACTION_HOST)) return;
      if (!Object.isExtensible(instance)) return;
      Object.defineProperty(instance, TRANSACTION_HOST, { value: this.host });
    } catch {
      // An exotic provider value (a revoked proxy, a frozen facade) cannot be bound; its
      // decorated methods report TransactionalHostMissingError when called.
    }
  }
}
