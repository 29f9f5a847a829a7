import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ConfigSchema, type Config } from './schema.js';
import { ReaperError, errnoCode } from '../errors.js';

type Json = Record<string, unknown>;

/** Values given on the command line; they win over every other layer. */
export interface ConfigFlags {
  config?: string;
  log?: string;
  stateDir?: string;
  graceMs?: number;
  minAgeMs?: number;
  sweepIntervalMs?: number;
  metricsPort?: number;
  dryRun?: boolean;
  force?: boolean;
}

export interface LoadOptions {
  flags?: ConfigFlags;
  env?: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
  home?: string;
}

export interface LoadedConfig {
  config: Config;
  /** Which files fed the config, for `doctor` and error messages. */
  sources: string[];
  warnings: string[];
}

const defaultFile = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'config', 'default.json');

/** Env vars we read, and the config key each sets. */
const envKeys: Record<string, { key: string; kind: 'int' | 'bool' | 'string' }> = {
  HUM_REAPER_LOG: { key: 'log', kind: 'string' },
  HUM_REAPER_STATE_DIR: { key: 'stateDir', kind: 'string' },
  HUM_REAPER_GRACE_MS: { key: 'graceMs', kind: 'int' },
  HUM_REAPER_MIN_AGE_MS: { key: 'minAgeMs', kind: 'int' },
  HUM_REAPER_MAX_ORPHANS: { key: 'maxOrphans', kind: 'int' },
  HUM_REAPER_SWEEP_INTERVAL_MS: { key: 'sweepIntervalMs', kind: 'int' },
  HUM_REAPER_DRY_RUN: { key: 'dryRun', kind: 'bool' },
  HUM_REAPER_SID_PREFIX: { key: 'signature.sidPrefix', kind: 'string' },
  HUM_REAPER_METRICS_PORT: { key: 'metricsPort', kind: 'int' },
};
const envIgnored = new Set(['HUM_REAPER_CONFIG', 'HUM_REAPER_TEST_RUN', 'HUM_REAPER_LOG_LEVEL']);

export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  const platform = opts.platform ?? process.platform;
  const home = opts.home ?? env.HOME ?? homedir();
  const flags = opts.flags ?? {};
  const warnings: string[] = [];
  const sources: string[] = [defaultFile];

  const defaults = readJsonFile(defaultFile);
  const osKey = platform === 'darwin' ? 'darwin' : 'linux';
  const layers: { origin: string; values: Json }[] = [
    { origin: `${defaultFile} (common)`, values: asObject(defaults.common, defaultFile) },
    { origin: `${defaultFile} (${osKey})`, values: asObject(defaults[osKey], defaultFile) },
  ];

  const userFile = flags.config ?? env.HUM_REAPER_CONFIG ?? existingUserConfig(env, home);
  if (userFile !== undefined) {
    layers.push({ origin: userFile, values: withLogType(readJsonFile(userFile)) });
    sources.push(userFile);
  }

  layers.push({ origin: 'environment', values: fromEnv(env, warnings) });
  layers.push({ origin: 'command line', values: fromFlags(flags) });

  const merged = layers.reduce<Json>((acc, layer) => deepMerge(acc, layer.values), {});
  const parsed = ConfigSchema.safeParse(merged);
  if (!parsed.success) throw describeIssue(parsed.error, merged, layers);
  const config = parsed.data;
  return { config: expandPaths(config, env, home), sources, warnings };
}

function existingUserConfig(env: NodeJS.ProcessEnv, home: string): string | undefined {
  const base = env.XDG_CONFIG_HOME || join(home, '.config');
  const candidate = join(base, 'hum-reaper', 'config.json');
  try {
    readFileSync(candidate);
    return candidate;
  } catch {
    return undefined;
  }
}

function readJsonFile(path: string): Json {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ReaperError('E_CONFIG_FILE', `config file ${path}: cannot read (${errnoCode(err) ?? String(err)})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ReaperError('E_CONFIG_JSON', `config file ${path}: not valid JSON (${(err as Error).message})`);
  }
  return asObject(value, path);
}

/** `"log": {"path": …}` with no type means a file, as `--log FILE` does. */
function withLogType(values: Json): Json {
  const log = values.log;
  return isPlain(log) && log.type === undefined && log.path !== undefined ? { ...values, log: { type: 'file', ...log } } : values;
}

function asObject(value: unknown, where: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ReaperError('E_CONFIG_JSON', `config file ${where}: expected a JSON object at the top level`);
  }
  return value as Json;
}

function fromEnv(env: NodeJS.ProcessEnv, warnings: string[]): Json {
  let out: Json = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('HUM_REAPER_') || raw === undefined || envIgnored.has(name)) continue;
    const spec = envKeys[name];
    if (spec === undefined) {
      warnings.push(`environment variable ${name} is not one hum-reaper reads; ignored`);
      continue;
    }
    const value = parseEnvValue(name, raw, spec.kind);
    out = deepMerge(out, spec.key === 'log' ? { log: fileLog(String(value)) } : setPath(spec.key, value));
  }
  return out;
}

function parseEnvValue(name: string, raw: string, kind: 'int' | 'bool' | 'string'): unknown {
  if (kind === 'string') return raw;
  if (kind === 'int') {
    if (!/^\d+$/.test(raw.trim())) {
      throw new ReaperError('E_ENV_VALUE', `environment variable ${name}="${raw}": expected a whole number of milliseconds (or a count) ≥ 0`);
    }
    return Number(raw.trim());
  }
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  throw new ReaperError('E_ENV_VALUE', `environment variable ${name}="${raw}": expected true or false`);
}

function fromFlags(flags: ConfigFlags): Json {
  const out: Json = {};
  if (flags.log !== undefined) out.log = fileLog(flags.log);
  if (flags.stateDir !== undefined) out.stateDir = flags.stateDir;
  if (flags.graceMs !== undefined) out.graceMs = flags.graceMs;
  if (flags.minAgeMs !== undefined) out.minAgeMs = flags.minAgeMs;
  if (flags.sweepIntervalMs !== undefined) out.sweepIntervalMs = flags.sweepIntervalMs;
  if (flags.metricsPort !== undefined) out.metricsPort = flags.metricsPort;
  if (flags.dryRun !== undefined) out.dryRun = flags.dryRun;
  if (flags.force !== undefined) out.force = flags.force;
  return out;
}

/** `--log FILE` always means a file; `--log none` turns log evidence off. */
function fileLog(path: string): Json {
  return path === 'none' ? { type: 'none' } : { type: 'file', path };
}

function setPath(dotted: string, value: unknown): Json {
  const keys = dotted.split('.');
  const out: Json = {};
  let cur = out;
  keys.forEach((k, i) => {
    if (i === keys.length - 1) cur[k] = value;
    else cur = cur[k] = {} as Json;
  });
  return out;
}

/** Objects merge key by key; arrays and scalars replace. A new `log.type` replaces the whole log. */
function deepMerge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = Object.hasOwn(out, k) ? out[k] : undefined;
    const bothObjects = isPlain(b) && isPlain(v);
    const logTypeChange = k === 'log' && bothObjects && (v as Json).type !== undefined && (v as Json).type !== (b as Json).type;
    // defineProperty: a "__proto__" key from JSON stays a key (and is rejected as unknown).
    Object.defineProperty(out, k, { value: bothObjects && !logTypeChange ? deepMerge(b as Json, v as Json) : v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

const isPlain = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function describeIssue(error: z.ZodError, merged: Json, layers: { origin: string; values: Json }[]): ReaperError {
  const issue = error.issues[0]!;
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => [...path, k].join('.'));
    const origin = originOf([...path, issue.keys[0]!], layers);
    return new ReaperError('E_CONFIG_VALUE', `config (${origin}): unknown key${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${k}"`).join(', ')}`);
  }
  const key = path.join('.') || '(top level)';
  const value = path.reduce<unknown>((v, k) => (isPlain(v) || Array.isArray(v) ? (v as Json)[k] : undefined), merged);
  return new ReaperError(
    'E_CONFIG_VALUE',
    `config (${originOf(path, layers)}): key "${key}" has value ${JSON.stringify(value)}; expected ${issue.message}`,
  );
}

/** The last layer that set this key is the one to blame; for a missing key, the last that set its parent. */
function originOf(path: string[], layers: { origin: string; values: Json }[]): string {
  for (let depth = path.length; depth > 0; depth--) {
    for (let i = layers.length - 1; i >= 0; i--) {
      let v: unknown = layers[i]!.values;
      for (const k of path.slice(0, depth)) v = isPlain(v) && Object.hasOwn(v, k) ? v[k] : undefined;
      if (v !== undefined) return layers[i]!.origin;
    }
  }
  return 'defaults';
}

function expandPaths(config: Config, env: NodeJS.ProcessEnv, home: string): Config {
  const expand = (p: string) =>
    p
      .replace(/^~(?=$|\/)/, home)
      .replace(/\$XDG_STATE_HOME\b/, env.XDG_STATE_HOME || join(home, '.local', 'state'))
      .replace(/\$HOME\b/, home);
  const log = config.log.type === 'file' ? { ...config.log, path: expand(config.log.path) } : config.log;
  return { ...config, log, stateDir: expand(config.stateDir) };
}
