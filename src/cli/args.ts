import { parseArgs } from 'node:util';
import { usageError } from '../errors.js';
import type { ConfigFlags } from '../config/load.js';

export interface CommonArgs {
  flags: ConfigFlags;
  json: boolean;
  help: boolean;
  version: boolean;
  /** Command-specific options, as strings/booleans, checked by the command. */
  extra: Record<string, string | boolean | undefined>;
}

type OptionSpec = { type: 'string' | 'boolean'; short?: string };

const common: Record<string, OptionSpec> = {
  config: { type: 'string' },
  log: { type: 'string' },
  'state-dir': { type: 'string' },
  json: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  force: { type: 'boolean' },
  grace: { type: 'string' },
  'min-age': { type: 'string' },
  'sweep-interval': { type: 'string' },
  'metrics-port': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
};

/** Parse flags shared by every command plus the command's own; unknown flags are usage errors. */
export function parseCommandArgs(argv: string[], own: Record<string, OptionSpec> = {}): CommonArgs {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...common, ...own }, strict: true, allowPositionals: true });
  } catch (err) {
    throw usageError((err as Error).message);
  }
  // A stray word is never ignored: `reap dry-run` must not reap.
  const stray = parsed.positionals[0];
  if (stray !== undefined) {
    const meant = `--${stray.replace(/^-+/, '')}`;
    throw usageError(`unexpected argument "${stray}"${meant.slice(2) in { ...common, ...own } ? ` (did you mean ${meant}?)` : ''}`);
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  const flags: ConfigFlags = {};
  if (typeof v.config === 'string') flags.config = v.config;
  if (typeof v.log === 'string') flags.log = v.log;
  if (typeof v['state-dir'] === 'string') flags.stateDir = v['state-dir'];
  if (v['dry-run'] === true) flags.dryRun = true;
  if (v.force === true) flags.force = true;
  if (typeof v.grace === 'string') flags.graceMs = duration('--grace', v.grace);
  if (typeof v['min-age'] === 'string') flags.minAgeMs = duration('--min-age', v['min-age']);
  if (typeof v['sweep-interval'] === 'string') flags.sweepIntervalMs = duration('--sweep-interval', v['sweep-interval']);
  if (typeof v['metrics-port'] === 'string') {
    const port = Number(v['metrics-port']);
    if (!/^\d+$/.test(v['metrics-port']) || port > 65535) throw usageError(`--metrics-port ${JSON.stringify(v['metrics-port'])}: expected a port number 0-65535`);
    flags.metricsPort = port;
  }
  const extra = Object.fromEntries(Object.entries(v).filter(([k]) => k in own));
  return { flags, json: v.json === true, help: v.help === true, version: v.version === true, extra };
}

/** Milliseconds: a whole number, optionally with ms/s/m suffix. */
export function duration(flag: string, raw: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(raw.trim());
  if (!m) throw usageError(`${flag} ${JSON.stringify(raw)}: expected a whole number of milliseconds (e.g. 3000, 3s, 1m)`);
  const n = Number(m[1]);
  return m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n;
}
