// One start of the many-tenants fixture app (bench/fixtures/many-tenants-app.mjs) in a fresh
// child process with --expose-gc, so that its memory is its own. Shared by the `many-tenants`
// and `tiers` suites.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const FIXTURE = fileURLToPath(new URL('../fixtures/many-tenants-app.mjs', import.meta.url));
const CHILD_TIMEOUT_MS = 120_000;

/**
 * Starts the fixture against `url` with registry `registrySchema` and the fixture's other
 * `BENCH_*` variables in `env`; resolves to its RESULT object plus the parent's wall time
 * (`wallMs`), or rejects with the end of its output (the URL redacted).
 */
export function startManyTenantsApp(url, registrySchema, env = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--expose-gc', FIXTURE], {
      env: {
        ...process.env,
        BENCH_DATABASE_URL: url,
        BENCH_REGISTRY_SCHEMA: registrySchema,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const wallMs = performance.now() - t0;
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      const redact = (text) => text.replaceAll(url, '<url>').slice(-2000);
      if (code !== 0 || !line) {
        reject(
          new Error(
            `app with registry ${registrySchema} exited with ${signal ?? code}${line ? '' : ' without a RESULT line'}:\n${redact(stderr || stdout)}`,
          ),
        );
        return;
      }
      resolve({ ...JSON.parse(line.slice('RESULT '.length)), wallMs });
    });
  });
}
