import cliProgress from 'cli-progress';

/** Progress of a run over many tenants. */
export interface Progress {
  /** One tenant is done. */
  tick(tenantId: string): void;
  stop(): void;
}

/**
 * A progress bar on stderr when stderr is a terminal; otherwise a line on stderr per tenth of the
 * way (so logs stay readable and stdout stays clean for `--json`).
 */
export function createProgress(label: string, total: number): Progress {
  if (total === 0) return { tick: () => undefined, stop: () => undefined };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {value}/{total} {tenant}`,
        hideCursor: true,
        stream: process.stderr,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { tenant: '' });
    let done = 0;
    return {
      tick: (tenant) => bar.update(++done, { tenant }),
      stop: () => bar.stop(),
    };
  }
  let done = 0;
  let lastDecile = -1;
  return {
    tick: () => {
      const decile = Math.floor((++done / total) * 10);
      if (decile !== lastDecile) {
        lastDecile = decile;
        process.stderr.write(`${label}: ${done}/${total}\n`);
      }
    },
    stop: () => undefined,
  };
}

/** Progress of a copy measured in bytes (a tenant move), on stderr like {@link createProgress}. */
export function createByteProgress(label: string): {
  update(done: number, total: number): void;
  stop(): void;
} {
  const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
  if (process.stderr.isTTY) {
    let bar: cliProgress.SingleBar | undefined;
    return {
      update: (done, total) => {
        if (!bar) {
          bar = new cliProgress.SingleBar(
            {
              format: `${label} [{bar}] {percentage}% {copied}/{size} MiB`,
              hideCursor: true,
              stream: process.stderr,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(total, 0, { copied: '0.0', size: mib(total) });
        }
        bar.setTotal(total);
        bar.update(Math.min(done, total), { copied: mib(done), size: mib(total) });
      },
      stop: () => bar?.stop(),
    };
  }
  let lastDecile = -1;
  return {
    update: (done, total) => {
      const decile = total > 0 ? Math.min(10, Math.floor((done / total) * 10)) : 0;
      if (decile !== lastDecile) {
        lastDecile = decile;
        process.stderr.write(`${label}: ${mib(done)}/${mib(total)} MiB\n`);
      }
    },
    stop: () => undefined,
  };
}
