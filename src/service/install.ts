// Put the rendered agent/unit in place and have launchd or systemd load it. The plan (which
// steps, in which order) is pure data, so `--print` shows exactly what `install` would do;
// applySteps is the thin imperative shell, with the service manager behind an injectable
// runner (default: spawn from PATH, no shell).
import { spawn } from 'node:child_process';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ReaperError, errnoCode } from '../errors.js';
import { LAUNCHD_LABEL, SYSTEMD_UNIT, type ServiceManager } from './render.js';

/** Absolute path of this package's dist/cli/main.js (the same from src/ via tsx and from dist/). */
export function packageEntry(): string {
  return fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
}

/** Where the rendered file goes: ~/Library/LaunchAgents/… or $XDG_CONFIG_HOME/systemd/user/…. */
export function serviceFile(manager: ServiceManager, env: NodeJS.ProcessEnv, home: string): string {
  if (manager === 'launchd') return join(home, 'Library', 'LaunchAgents', `${LAUNCHD_LABEL}.plist`);
  return join(env.XDG_CONFIG_HOME || join(home, '.config'), 'systemd', 'user', SYSTEMD_UNIT);
}

// ---- plan ----------------------------------------------------------------------------

export type Step =
  | { kind: 'mkdir'; dir: string; mode?: number }
  | { kind: 'write'; file: string; content: string }
  | { kind: 'remove'; file: string }
  | {
      kind: 'run';
      argv: string[];
      /**
       * 'not-loaded': a failure that says the job was not loaded only means there was nothing
       * to stop (see notLoaded); any other failure is an error like for every other step.
       */
      ignoreFailure?: 'not-loaded';
      /** launchctl bootstrap right after a bootout that stopped a job: launchd may still be draining the label. */
      retryWhileDraining?: boolean;
    };

export type FileState = 'absent' | 'same' | 'different';

export function fileState(existing: string | null, content: string): FileState {
  return existing === null ? 'absent' : existing === content ? 'same' : 'different';
}

export interface InstallPlanInput {
  manager: ServiceManager;
  file: string;
  content: string;
  state: FileState;
  uid: number;
  /** systemd: the state dir to create, since the sandbox makes the home directory read-only. */
  stateDir?: string;
}

export function installSteps(p: InstallPlanInput): Step[] {
  const steps: Step[] = [];
  if (p.state !== 'same') steps.push({ kind: 'mkdir', dir: dirname(p.file) }, { kind: 'write', file: p.file, content: p.content });
  if (p.manager === 'launchd') {
    steps.push(
      { kind: 'run', argv: ['launchctl', 'bootout', `gui/${p.uid}/${LAUNCHD_LABEL}`], ignoreFailure: 'not-loaded' },
      { kind: 'run', argv: ['launchctl', 'bootstrap', `gui/${p.uid}`, p.file], retryWhileDraining: true },
    );
    return steps;
  }
  if (p.stateDir !== undefined) steps.push({ kind: 'mkdir', dir: p.stateDir, mode: 0o700 });
  steps.push(
    { kind: 'run', argv: ['systemctl', '--user', 'daemon-reload'] },
    { kind: 'run', argv: ['systemctl', '--user', 'enable', '--now', SYSTEMD_UNIT] },
  );
  // enable --now leaves an already running daemon on the old unit; a replaced unit needs a restart.
  if (p.state === 'different') steps.push({ kind: 'run', argv: ['systemctl', '--user', 'restart', SYSTEMD_UNIT] });
  return steps;
}

export function uninstallSteps(manager: ServiceManager, file: string, uid: number): Step[] {
  if (manager === 'launchd') {
    return [
      { kind: 'run', argv: ['launchctl', 'bootout', `gui/${uid}/${LAUNCHD_LABEL}`], ignoreFailure: 'not-loaded' },
      { kind: 'remove', file },
    ];
  }
  return [
    { kind: 'run', argv: ['systemctl', '--user', 'disable', '--now', SYSTEMD_UNIT] },
    { kind: 'remove', file },
    { kind: 'run', argv: ['systemctl', '--user', 'daemon-reload'] },
  ];
}

/** One line per step, shell-like, for --print and for the progress report. */
export function describeStep(step: Step): string {
  switch (step.kind) {
    case 'mkdir':
      return `mkdir -p ${step.mode === undefined ? '' : `-m ${step.mode.toString(8)} `}${shellWord(step.dir)}`;
    case 'write':
      return `write ${shellWord(step.file)}`;
    case 'remove':
      return `rm -f ${shellWord(step.file)}`;
    case 'run':
      return step.argv.map(shellWord).join(' ') + (step.ignoreFailure ? '  # failure ignored: not loaded' : '');
  }
}

export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

// ---- shell ---------------------------------------------------------------------------

export type RunOutcome = { kind: 'missing' } | { kind: 'exited'; code: number; output: string };
/** Runs one command (argv[0] looked up on PATH) and reports how it ended; never rejects. */
export type Runner = (argv: readonly string[]) => Promise<RunOutcome>;

export function spawnRunner(env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000): Runner {
  return (argv) =>
    new Promise((resolve) => {
      const [command, ...rest] = argv;
      let output = '';
      const child = spawn(command ?? '', rest, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      // Our own timer, not spawn's `timeout`: Node leaves that one running when the spawn fails
      // (ENOENT), which kept the process alive for timeoutMs after "not found on PATH".
      const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
      const done = (outcome: RunOutcome) => {
        clearTimeout(timer);
        resolve(outcome);
      };
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.on('error', (err) => {
        if (errnoCode(err) === 'ENOENT') done({ kind: 'missing' });
        else done({ kind: 'exited', code: 126, output: `cannot run: ${err.message}` });
      });
      child.on('close', (code, signal) =>
        done({ kind: 'exited', code: code ?? 128, output: signal ? `${output}killed by ${signal}` : output }),
      );
    });
}

export interface ApplyOptions {
  runner: Runner;
  /** Told about each step once it is done, with what happened ("created", "wrote", "ran" …). */
  onStep?: (step: Step, what: string) => void;
  /** Appended to a service-manager failure, e.g. which file was left in place. */
  failureNote?: string;
  sleep?: (ms: number) => Promise<void>;
  /** How long a bootstrap may keep failing while launchd drains the label after a bootout. */
  drainMs?: number;
}

const sleepMs = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// launchctl bootstrap fails with 5 (EIO) or 37 (EALREADY) for a few seconds after a bootout
// that stopped the job, while launchd still holds the label.
const DRAINING_CODES = new Set([5, 37]);

// launchctl bootout of a job that is not loaded: 3 (ESRCH, "Boot-out failed: 3: No such process")
// or 113 ("Could not find service … in domain for …"), depending on the macOS version.
const NOT_LOADED_CODES = new Set([3, 113]);
const NOT_LOADED_OUTPUT = /No such process|Could not find service|not loaded/i;

/** Whether a failed `ignoreFailure: 'not-loaded'` step only said there was nothing loaded to stop. */
export function notLoaded(outcome: RunOutcome): boolean {
  return outcome.kind === 'exited' && outcome.code !== 0 && (NOT_LOADED_CODES.has(outcome.code) || NOT_LOADED_OUTPUT.test(outcome.output));
}

export async function applySteps(steps: Step[], opts: ApplyOptions): Promise<void> {
  const sleep = opts.sleep ?? sleepMs;
  let stoppedJob = false;
  for (const step of steps) {
    switch (step.kind) {
      case 'mkdir': {
        const created = await fileOp(step.dir, 'create directory', () => mkdir(step.dir, { recursive: true, mode: step.mode ?? 0o755 }));
        opts.onStep?.(step, created === undefined ? 'exists' : 'created');
        break;
      }
      case 'write':
        await writeAtomically(step.file, step.content);
        opts.onStep?.(step, 'wrote');
        break;
      case 'remove':
        await fileOp(step.file, 'remove', () => rm(step.file, { force: true }));
        opts.onStep?.(step, 'removed');
        break;
      case 'run': {
        let outcome = await opts.runner(step.argv);
        const deadline = Date.now() + (opts.drainMs ?? 15_000);
        while (step.retryWhileDraining && stoppedJob && outcome.kind === 'exited' && DRAINING_CODES.has(outcome.code) && Date.now() < deadline) {
          await sleep(500);
          outcome = await opts.runner(step.argv);
        }
        if (outcome.kind === 'missing') {
          throw managerError(`${step.argv[0]} not found on PATH; cannot run "${step.argv.join(' ')}"`, opts.failureNote);
        }
        if (outcome.code !== 0 && !(step.ignoreFailure === 'not-loaded' && notLoaded(outcome))) {
          const said = outcome.output.trim().split('\n').slice(0, 5).join(' / ');
          throw managerError(`"${step.argv.join(' ')}" failed (exit ${outcome.code})${said ? `: ${said}` : ''}`, opts.failureNote);
        }
        if (step.ignoreFailure && outcome.code === 0) stoppedJob = true;
        opts.onStep?.(step, outcome.code === 0 ? 'ran' : 'ran (not loaded)');
        break;
      }
    }
  }
}

const managerError = (message: string, note: string | undefined) =>
  new ReaperError('E_SERVICE_MANAGER', note ? `${message}; ${note}` : message, 1);

async function fileOp<T>(path: string, verb: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw new ReaperError('E_SERVICE_FILE', `cannot ${verb} ${path} (${errnoCode(err) ?? String(err)})`, 1);
  }
}

/** Write beside the target and rename over it: launchd/systemd never read half a file. */
async function writeAtomically(file: string, content: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await fileOp(file, 'write', async () => {
    try {
      await writeFile(tmp, content, { mode: 0o644 });
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  });
}

/** The file's text, or null when there is none. */
export async function readExisting(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw new ReaperError('E_SERVICE_FILE', `cannot read ${file} (${errnoCode(err) ?? String(err)})`, 1);
  }
}

// ---- diff ----------------------------------------------------------------------------

/** A unified-style line diff (hunks with `context` lines around each change); '' when equal. */
export function lineDiff(before: string, after: string, labels: [string, string], context = 3): string {
  const a = lines(before);
  const b = lines(after);
  const ops = diffOps(a, b);
  if (ops.every((o) => o.op === ' ')) return '';
  const out = [`--- ${labels[0]}`, `+++ ${labels[1]}`];
  const changed = ops.flatMap((o, i) => (o.op === ' ' ? [] : [i]));
  let i = 0;
  while (i < changed.length) {
    const start = Math.max(0, changed[i]! - context);
    let end = changed[i]! + context;
    while (i + 1 < changed.length && changed[i + 1]! - context <= end + 1) end = changed[++i]! + context;
    i++;
    const hunk = ops.slice(start, Math.min(ops.length, end + 1));
    const first = hunk[0]!;
    const aLen = hunk.filter((o) => o.op !== '+').length;
    const bLen = hunk.filter((o) => o.op !== '-').length;
    out.push(`@@ -${aLen === 0 ? first.ai : first.ai + 1},${aLen} +${bLen === 0 ? first.bi : first.bi + 1},${bLen} @@`);
    for (const o of hunk) out.push(`${o.op}${o.text}`);
  }
  return out.join('\n');
}

interface DiffOp {
  op: ' ' | '-' | '+';
  text: string;
  /** Lines of a and b before this one. */
  ai: number;
  bi: number;
}

function lines(text: string): string[] {
  const all = text.split('\n');
  if (all[all.length - 1] === '') all.pop();
  return all;
}

function diffOps(a: string[], b: string[]): DiffOp[] {
  const ops: DiffOp[] = [];
  // Longest common subsequence; our files are a few dozen lines. A huge foreign file just
  // shows as removed and added.
  if (a.length * b.length > 4_000_000) {
    a.forEach((text, i) => ops.push({ op: '-', text, ai: i, bi: 0 }));
    b.forEach((text, i) => ops.push({ op: '+', text, ai: a.length, bi: i }));
    return ops;
  }
  const w = b.length + 1;
  const lcs = new Uint32Array((a.length + 1) * w);
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i * w + j] = a[i] === b[j] ? lcs[(i + 1) * w + j + 1]! + 1 : Math.max(lcs[(i + 1) * w + j]!, lcs[i * w + j + 1]!);
    }
  }
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) ops.push({ op: ' ', text: a[i++]!, ai: i - 1, bi: j++ });
    else if (i < a.length && (j === b.length || lcs[(i + 1) * w + j]! >= lcs[i * w + j + 1]!)) ops.push({ op: '-', text: a[i++]!, ai: i - 1, bi: j });
    else ops.push({ op: '+', text: b[j++]!, ai: i, bi: j - 1 });
  }
  return ops;
}
