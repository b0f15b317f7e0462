import { ConsoleLogger } from '@nestjs/common';

/** A Nest logger that records what it is told instead of printing it. */
export class RecordingLogger extends ConsoleLogger {
  readonly warnings: string[] = [];
  readonly errors: string[] = [];
  readonly logs: string[] = [];
  #waiters: Array<{ match: RegExp; resolve: (m: string) => void }> = [];

  override log(message: unknown): void {
    this.logs.push(String(message));
  }
  override warn(message: unknown): void {
    this.warnings.push(String(message));
    this.#notify(String(message));
  }
  override error(message: unknown): void {
    this.errors.push(String(message));
    this.#notify(String(message));
  }

  /** Resolves with the first warning or error matching `match` (already logged or future). */
  waitFor(match: RegExp): Promise<string> {
    const seen = [...this.warnings, ...this.errors].find((m) => match.test(m));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  #notify(message: string): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.match.test(message)) return true;
      w.resolve(message);
      return false;
    });
  }
}
