// The channels a run uses: the core library's, and one per integration of #26 whose entry
// (`lib/integrations/<name>/index.ts`, built to `dist/integrations/<name>/index.js`) exists. Each
// integration's channel is a file of its own in `channels/`, whose default export is
// `async (kit) => FuzzChannel | { name, skipped: reason }`: `kit.entry()` imports the
// integration's module, `kit.servers` holds the brokers the caller started (`redis`: host, port).
import { existsSync } from 'node:fs';
import { builtInChannels } from './channels.mjs';

const ROOT = new URL('../../../', import.meta.url);

/** The integrations' channel files, by integration name (the folder under lib/integrations/). */
const INTEGRATIONS = {
  websockets: () => import('./channels/websockets.mjs'),
  microservices: () => import('./channels/microservices.mjs'),
  bullmq: () => import('./channels/bullmq.mjs'),
  graphql: () => import('./channels/graphql.mjs'),
};

/**
 * Every channel for a run against `source` ('lib' in Jest, 'dist' in the bench): the built-in
 * ones, then each integration's (skipped with a reason when its entry is missing, or when it
 * needs a broker `servers` lacks).
 */
export async function fuzzChannels({ lib, source, servers = {} }) {
  const channels = builtInChannels();
  for (const [name, load] of Object.entries(INTEGRATIONS)) {
    const file =
      source === 'lib' ? `lib/integrations/${name}/index.ts` : `dist/integrations/${name}/index.js`;
    if (!existsSync(new URL(file, ROOT))) {
      channels.push({ name, skipped: `${file} does not exist (yet)` });
      continue;
    }
    // A relative specifier: Jest maps lib/'s '.js' to its '.ts' source.
    const entry = () => import(`../../../${source}/integrations/${name}/index.js`);
    channels.push((await load()).default({ lib, entry, source, servers }));
  }
  return channels;
}
