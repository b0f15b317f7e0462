// Text that names one schema, pointed at another: the target placeholder of the clone and rename
// scripts, and the re-qualification of deparsed text.
import { quoteIdentifier } from '../shared/identifiers.js';

/** Stands for the target schema in a script until {@link scriptFor} fills it in. */
export const TARGET = '\u0001';

/** `script` with its placeholder replaced by the quoted `target` schema. */
export function scriptFor(script: string, target: string): string {
  return script.replaceAll(TARGET, quoteIdentifier(target));
}

/**
 * `text` with every reference to schema `from` (`from.` or `"from".`, not part of a longer name)
 * replaced by `to` — a placeholder or another schema's quoted name.
 */
export function requalify(text: string, from: string, to: string): string {
  const escaped = from.replace(/[$]/g, '\\$&');
  return text.replace(
    new RegExp(`(?<![A-Za-z0-9_$"])("${escaped}"|${escaped})\\.`, 'g'),
    () => `${to}.`,
  );
}
