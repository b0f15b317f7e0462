/** A read in flight that concurrent callers share. */
export interface SharedRead<T> {
  /** Another read must start after the current one (a caller arrived meanwhile). */
  again: boolean;
  readonly done: Promise<T>;
}

/**
 * Shares `read` among concurrent callers without handing anyone a result older than their call:
 * a caller arriving while a read runs gets one more read after it (however many arrive), since
 * the read running may have taken its snapshot before the caller's reason to ask. `settle` runs
 * when the last read is done.
 */
export function shareRead<T>(
  pending: SharedRead<T> | undefined,
  read: () => Promise<T>,
  settle: () => void,
): SharedRead<T> {
  if (pending) {
    pending.again = true;
    return pending;
  }
  const shared: { again: boolean; done?: Promise<T> } = { again: true };
  shared.done = (async () => {
    try {
      let result: T;
      do {
        shared.again = false;
        result = await read();
      } while (shared.again);
      return result;
    } finally {
      settle();
    }
  })();
  return shared as SharedRead<T>;
}
