// Render the launchd agent plist and the systemd user unit from their templates. Pure: the
// template text comes in, the file text goes out; reading and writing live in install.ts.
import { fileURLToPath } from 'node:url';
import { ReaperError } from '../errors.js';

export type ServiceManager = 'launchd' | 'systemd';

/** launchd label; sits next to the worker's `sh.hum.hum-claude-cli-worker`. */
export const LAUNCHD_LABEL = 'sh.hum.hum-reaper';
/** systemd user unit; sits next to the worker's `hum-claude-cli-worker.service`. */
export const SYSTEMD_UNIT = 'hum-reaper.service';

/** What a rendered file says about this machine. */
export interface ServiceContext {
  /** Absolute path of the node binary. */
  node: string;
  /** Absolute path of dist/cli/main.js. */
  entry: string;
  /** The user's home directory (launchd log paths). */
  home: string;
  /** PATH the daemon runs with. */
  path: string;
  /**
   * The daemon's state directory, made writable in the systemd sandbox. null: the default,
   * `$XDG_STATE_HOME/hum-reaper`, which the unit names `%S/hum-reaper` so it follows the
   * service manager's own XDG_STATE_HOME.
   */
  stateDir: string | null;
  /** Arguments after `run` (flags given to `install` that the daemon must also see). */
  runArgs?: readonly string[];
}

/** The template shipped in the package: launchd/… or systemd/… at its root (from src/ and dist/ alike). */
export function templateFile(manager: ServiceManager): string {
  const rel = manager === 'launchd' ? `../../launchd/${LAUNCHD_LABEL}.plist` : `../../systemd/${SYSTEMD_UNIT}`;
  return fileURLToPath(new URL(rel, import.meta.url));
}

export function renderService(manager: ServiceManager, template: string, ctx: ServiceContext): string {
  checkContext(manager, ctx);
  const runArgs = ctx.runArgs ?? [];
  const values: Record<string, string> =
    manager === 'launchd'
      ? {
          NODE: xmlText(ctx.node),
          ENTRY: xmlText(ctx.entry),
          HOME: xmlText(ctx.home),
          PATH: xmlText(ctx.path),
          RUN_ARGS: runArgs.map((a) => `\n\t\t<string>${xmlText(a)}</string>`).join(''),
        }
      : {
          NODE: executableWord(ctx.node),
          ENTRY: execWord(ctx.entry),
          PATH: quotedValue(ctx.path),
          STATE_DIR: ctx.stateDir === null ? '%S/hum-reaper' : pathWord(ctx.stateDir),
          RUN_ARGS: runArgs.map((a) => ` ${execWord(a)}`).join(''),
        };
  return template.replace(/\{\{([A-Z_]+)\}\}/g, (_, key: string) => {
    const value = values[key];
    if (value === undefined) throw templateError(`the ${manager} template has an unknown placeholder {{${key}}}`);
    return value;
  });
}

function checkContext(manager: ServiceManager, ctx: ServiceContext): void {
  const fields: [string, string][] = [
    ['node', ctx.node],
    ['entry', ctx.entry],
    ['home', ctx.home],
    ['PATH', ctx.path],
    ...(ctx.stateDir === null ? [] : [['state dir', ctx.stateDir] as [string, string]]),
    ...(ctx.runArgs ?? []).map((a): [string, string] => ['run argument', a]),
  ];
  for (const [name, value] of fields) {
    // Neither a plist (XML 1.0) nor a unit file can carry control characters in a value.
    if (/[\x00-\x1f\x7f]/.test(value)) throw templateError(`${name} ${JSON.stringify(value)} contains a control character`);
  }
  for (const [name, value] of [['node', ctx.node], ['entry', ctx.entry], ['home', ctx.home], ['state dir', ctx.stateDir ?? '/']] as const) {
    if (!value.startsWith('/')) throw templateError(`${name} ${JSON.stringify(value)} is not an absolute path`);
  }
  if (manager !== 'systemd') return;
  // systemd refuses quotes and backslashes in the executable's path ("special characters"),
  // and ReadWritePaths= has no documented escape for them. Rare enough to refuse.
  if (/["'\\]/.test(ctx.node)) throw templateError(`node ${JSON.stringify(ctx.node)} contains a quote or backslash, which systemd refuses in an executable path`);
  if (ctx.stateDir !== null && /["\\]/.test(ctx.stateDir)) {
    throw templateError(`state dir ${JSON.stringify(ctx.stateDir)} contains " or \\, which a systemd unit cannot express in ReadWritePaths=`);
  }
}

const templateError = (message: string) => new ReaperError('E_SERVICE_TEMPLATE', message);

/** Text content of an XML element. */
export function xmlText(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * One word of ExecStart=: systemd expands %specifiers and $VARIABLES there and splits on
 * whitespace, so anything beyond plain path characters is quoted and escaped.
 */
export function execWord(value: string): string {
  if (/^[\w@+=:,./-]+$/.test(value)) return value;
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%').replace(/\$/g, '$$$$')}"`;
}

/**
 * The executable of ExecStart=: quoted and %-escaped like any word, but systemd does not
 * expand $ in it (so no $$), and it refuses quotes and backslashes there (checkContext).
 */
export function executableWord(value: string): string {
  if (/^[\w@+=:,./-]+$/.test(value)) return value;
  return `"${value.replace(/%/g, '%%')}"`;
}

/** The inside of a double-quoted Environment= assignment: specifiers expand there, $ does not. */
export function quotedValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%');
}

/** A path in ReadWritePaths=: specifiers expand and double quotes group words. */
export function pathWord(value: string): string {
  const escaped = value.replace(/%/g, '%%');
  return /\s/.test(value) ? `"${escaped}"` : escaped;
}

/** PATH for the daemon: node's own directory first, then the system directories (ps, journalctl). */
export function daemonPath(nodeDir: string): string {
  return [...new Set([nodeDir, '/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin'])].join(':');
}
