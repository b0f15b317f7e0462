import type { FuzzChannel, FuzzLibrary, SkippedChannel } from './fuzzer.mjs';

/** The built-in channels and every integration's (skipped where its entry does not exist). */
export function fuzzChannels(options: {
  lib: FuzzLibrary;
  source: 'lib' | 'dist';
  /** Brokers the caller started, for the channels that need one. */
  servers?: { redis?: { host: string; port: number } };
}): Promise<(FuzzChannel | SkippedChannel | Promise<FuzzChannel | SkippedChannel>)[]>;
