// What a transaction() call does when the calling code may already run in a transaction: the
// propagation modes, decided in one place (as nestjs-cls keeps them apart from the adapters that
// run them). The engine (transaction-engine.ts) carries the decision out.
import {
  InvalidOptionsError,
  TransactionNotAllowedError,
  TransactionRequiredError,
} from '../../shared/errors.js';
import type { ClientQueryRunner } from '../query/query-runner.js';
import type { AmbientTransaction } from './ambient-transaction.js';
import { PROPAGATIONS, type TransactionOptions } from './transaction-options.js';

/** What a `transaction()` call runs its callback in. */
export type PropagationDecision =
  /** A savepoint of `outer` (a failure inside rolls back to it). */
  | { readonly run: 'savepoint'; readonly outer: AmbientTransaction }
  /** `outer` itself, as the flow's transaction, without a savepoint. */
  | { readonly run: 'joined'; readonly outer: AmbientTransaction }
  /** No transaction: the pool, with any transaction of the flow suspended. */
  | { readonly run: 'outside' }
  /** A transaction of its own, on a connection of its own. */
  | { readonly run: 'new' };

/**
 * Decides what a call with `options` runs in.
 *
 * @param own the transaction of the manager the call was made on, when it is a transaction's
 *   own manager (`tx.transaction()`); `undefined` for any other manager.
 * @param current the transaction the calling flow runs in on the manager's pool, if any.
 * @param setsOwnSettings whether the call asks for an isolation level, `READ ONLY` or retries.
 * @throws InvalidOptionsError, TransactionRequiredError, TransactionNotAllowedError
 */
export function decidePropagation(
  options: TransactionOptions,
  own: AmbientTransaction | undefined,
  current: () => AmbientTransaction | undefined,
  setsOwnSettings: boolean,
): PropagationDecision {
  const { propagation } = options;
  if (propagation !== undefined && !PROPAGATIONS.has(propagation)) {
    throw new InvalidOptionsError(
      `Unknown transaction propagation ${JSON.stringify(propagation)}: use 'join', 'requires-new', 'nested', 'mandatory', 'never' or 'not-supported'.`,
    );
  }
  if (own && propagation === undefined) {
    if (setsOwnSettings) {
      throw new InvalidOptionsError(
        'A nested transaction runs in a savepoint and inherits the outer transaction: isolationLevel, readOnly and retries cannot be set on it.',
      );
    }
    return { run: 'savepoint', outer: own };
  }
  const outer = own ?? current();
  switch (propagation ?? 'join') {
    case 'mandatory':
    case 'join':
      if (outer) {
        assertCompatible(options, outer.runner);
        return { run: 'joined', outer };
      }
      if (propagation === 'mandatory') throw new TransactionRequiredError();
      break;
    case 'nested':
      if (outer) {
        assertCompatible(options, outer.runner);
        return { run: 'savepoint', outer };
      }
      break;
    case 'never':
      if (outer) throw new TransactionNotAllowedError();
      return { run: 'outside' };
    case 'not-supported':
      return { run: 'outside' };
    case 'requires-new':
      break;
  }
  return { run: 'new' };
}

/** A joining call may not ask for an isolation level its outer transaction does not have. */
function assertCompatible(options: TransactionOptions, outer: ClientQueryRunner): void {
  const wanted = options.isolationLevel;
  if (wanted === undefined) return;
  const running = outer.isolationLevel ?? 'read committed';
  if (wanted !== running) {
    throw new InvalidOptionsError(
      `This call asks for isolationLevel '${wanted}' but joins a running '${running}' transaction. ` +
        "Start the outermost transaction with that level, or use propagation 'requires-new' for an independent one.",
    );
  }
}
