// Test helpers around the simulated hum claude-cli-worker (test/sim/worker.mjs) and the
// `claude` stand-in (test/sim/claude). Linux only where /proc is read.
//
// Safety: every process a test starts carries HUM_REAPER_TEST_RUN=<token> in its environment
// (children inherit it). cleanupRun(token) SIGKILLs, by pid, exactly the processes whose
// /proc/<pid>/environ holds that entry. Tokens made here are also cleaned when this process
// exits, so a failing test file leaves nothing behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

export const SIM_DIR = fileURLToPath(new URL('../sim/', import.meta.url));
export const SIM_CLAUDE_PATH = path.join(SIM_DIR, 'claude');
export const SIM_WORKER_PATH = path.join(SIM_DIR, 'worker.mjs');
export const RUN_ENV = 'HUM_REAPER_TEST_RUN';
export const SESSION_NAMESPACE = '68756d2d-7365-7373-696f-6e2d6e730001';

export type FakeClaudeMode = 'hang' | 'children' | 'ignore-term' | 'fork-on-term';

export interface SimWorkerOptions {
  /** Run token (HUM_REAPER_TEST_RUN); a fresh one from newRunToken() if omitted. */
  token?: string;
  /** Cell table size (default 8). */
  table?: number;
  model?: string;
  /** '0.31.16' (default) or '0.31.18' (adds --session-id <uuid5(sid)>). */
  workerVersion?: string;
  /** ANSI colours (default true); false sets NO_COLOR=1. */
  color?: boolean;
  /** Log file (opened O_APPEND); default a fresh temp file, removed by stop(). */
  logPath?: string;
  /** Path of the `claude` to run (default the stand-in). */
  claudePath?: string;
  /** HUM_LOG_LEVEL (default 'trace'); e.g. 'info' drops the TRACE spawn lines. */
  logLevel?: string;
  /** FAKE_CLAUDE_MODE for prompts that name no mode (default: the script's, 'hang'). */
  defaultMode?: FakeClaudeMode;
  /** HUM_THRUM_SOCK, shown in worker.connecting (default /tmp/hum/thrum.sock). */
  thrumSock?: string;
  /** Extra environment for the worker (and so its children). */
  env?: Record<string, string>;
  /** Extra worker.mjs arguments (e.g. ['--auto', '--sids', '20', '--tick-ms', '50']). */
  args?: string[];
  /** Per-command reply timeout, ms (default 10000). */
  timeoutMs?: number;
}

export interface CellRef {
  sid: string;
  pid: number;
}

export interface PromptReply {
  ok: true;
  sid: string;
  pid: number;
  reused: boolean;
  evicted: CellRef | null;
}

export interface RaceReply {
  ok: true;
  sid: string;
  /** The child now in the table (the second spawn). */
  pid: number;
  /** The child the race orphaned (no log line of its own). */
  orphanedPid: number;
  /** [orphanedPid, pid] */
  pids: [number, number];
  evicted: CellRef | null;
}

export interface IdleReply {
  ok: true;
  sid: string;
  pid: number;
  age_ms: number;
}

export interface ExitReply {
  ok: true;
  sid: string;
  pid: number;
  exit_code: number;
}

export interface ReconnectReply {
  ok: true;
  oldPort: number;
  port: number;
  /** Cells of the dropped connection (their children keep running). */
  orphaned: CellRef[];
}

export interface StateReply {
  ok: true;
  port: number;
  /** Connection generation, 1 + number of reconnects. */
  conn: number;
  version: string;
  table: number;
  /** Current table in LRU order (first = least recently touched). */
  cells: CellRef[];
  /** Every child pid ever spawned, in spawn order. */
  children: number[];
  /** Children the worker has not seen exit. */
  live: number[];
}

export interface SimWorker {
  readonly pid: number;
  readonly logPath: string;
  readonly token: string;
  /** Bridge port at start (state().port is current). */
  readonly initialPort: number;
  prompt(sid: string, mode?: FakeClaudeMode): Promise<PromptReply>;
  race(sid: string, mode?: FakeClaudeMode): Promise<RaceReply>;
  /** ageMs: the age_ms to log (default: the real age, small). */
  idle(sid: string, ageMs?: number): Promise<IdleReply>;
  exitCell(sid: string): Promise<ExitReply>;
  reconnect(): Promise<ReconnectReply>;
  state(): Promise<StateReply>;
  /** Crash the worker: it exits at once, children keep running (reparented). Resolves once it is gone. */
  quit(): Promise<void>;
  /** Raw command; resolves with the reply even when ok is false. */
  send(cmd: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** The log so far. */
  readLog(): string;
  /** True while the worker process lives. */
  alive(): boolean;
  /** Tear down: the worker kills the children it parents and exits (SIGKILL if it will not);
   *  then every pid this worker reported, and their descendants, carrying the token is
   *  SIGKILLed. Orphans of other workers and decoys are left to cleanupRun(token). Idempotent. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------- tokens and cleanup

const TOKEN_RE = /^hrt-[0-9a-f]{16,}$/;
const liveTokens = new Set<string>();
const tmpDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const t of liveTokens) killRunOnce(t);
    for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
  });
}

function track(token: string): void {
  if (!TOKEN_RE.test(token)) throw new Error(`not a run token: ${JSON.stringify(token)} (want ${TOKEN_RE})`);
  liveTokens.add(token);
  installExitHook();
}

/** A unique token, e.g. `hrt-3f9a…`; use it as HUM_REAPER_TEST_RUN and as sid prefix. */
export function newRunToken(): string {
  const token = `hrt-${randomBytes(8).toString('hex')}`;
  track(token);
  return token;
}

function listPids(): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) if (/^\d+$/.test(e)) out.push(Number(e));
  return out;
}

/** Whether /proc/<pid>/environ holds exactly the entry HUM_REAPER_TEST_RUN=<token>. */
export function carriesToken(pid: number, token: string): boolean {
  let env: Buffer;
  try {
    env = fs.readFileSync(`/proc/${pid}/environ`);
  } catch {
    return false;
  }
  const want = `${RUN_ENV}=${token}`;
  return env.toString('utf8').split('\0').includes(want);
}

/** Pids (not zombies, not this process) whose environment carries the token. */
export function pidsOfRun(token: string): number[] {
  if (!TOKEN_RE.test(token)) throw new Error(`not a run token: ${JSON.stringify(token)}`);
  return listPids().filter((p) => p !== process.pid && carriesToken(p, token) && isAlive(p));
}

function killRunOnce(token: string): number[] {
  const killed: number[] = [];
  for (const pid of pidsOfRun(token)) {
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      /* gone already */
    }
  }
  return killed;
}

/** SIGKILL every live process of the run, by pid, until none is left (forks during the
 *  sweep are caught by the next pass). Resolves with the pids it killed. */
export async function cleanupRun(token: string, timeoutMs = 5000): Promise<number[]> {
  const killed = new Set<number>();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const round = killRunOnce(token);
    for (const p of round) killed.add(p);
    await sleep(round.length > 0 ? 30 : 0);
    if (pidsOfRun(token).length === 0) break;
    if (Date.now() > deadline) throw new Error(`cleanupRun(${token}): still alive: ${pidsOfRun(token).join(' ')}`);
  }
  liveTokens.delete(token);
  return [...killed];
}

// ---------------------------------------------------------------- /proc helpers

interface Stat {
  state: string;
  ppid: number;
  pgrp: number;
  starttime: number;
}

function readStat(pid: number): Stat | null {
  let s: string;
  try {
    s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // f[0] = state (field 3), f[1] = ppid, f[2] = pgrp, f[19] = starttime (field 22)
  return { state: f[0] ?? '?', ppid: Number(f[1]), pgrp: Number(f[2]), starttime: Number(f[19]) };
}

/** Alive and not a zombie (reads /proc/<pid>/stat; kill(pid, 0) off Linux). */
export function isAlive(pid: number): boolean {
  if (process.platform !== 'linux') {
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  const st = readStat(pid);
  return st !== null && st.state !== 'Z' && st.state !== 'X';
}

export function parentPid(pid: number): number | null {
  return readStat(pid)?.ppid ?? null;
}

export function processGroup(pid: number): number | null {
  return readStat(pid)?.pgrp ?? null;
}

/** argv from /proc/<pid>/cmdline (trailing empty entries dropped). */
export function readCmdline(pid: number): string[] {
  const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  while (raw.length > 0 && raw[raw.length - 1] === '') raw.pop();
  return raw;
}

/** Live descendants of pid (children first, depth-first). */
export function descendants(pid: number): number[] {
  const kids = new Map<number, number[]>();
  for (const p of listPids()) {
    const st = readStat(p);
    if (!st) continue;
    const list = kids.get(st.ppid) ?? [];
    list.push(p);
    kids.set(st.ppid, list);
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const k of kids.get(p) ?? []) {
      if (isAlive(k)) out.push(k);
      walk(k);
    }
  };
  walk(pid);
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll pred (sync or async) every intervalMs until it is truthy; false on timeout. */
export async function waitFor(
  pred: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  intervalMs = 20,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------- argv of a worker child

/** UUIDv5(SESSION_NAMESPACE, sid) as 0.31.18 passes in --session-id. */
export function sessionUuid(sid: string, namespace = SESSION_NAMESPACE): string {
  const h = createHash('sha1')
    .update(Buffer.from(namespace.replace(/-/g, ''), 'hex'))
    .update(Buffer.from(sid, 'utf8'))
    .digest();
  const b = h.subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const x = b.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** The arguments after the binary, exactly as the worker passes them. */
export function workerChildArgs(o: { sid: string; port: number; model?: string; workerVersion?: string }): string[] {
  const mcp = JSON.stringify({ mcpServers: { hum: { type: 'http', url: `http://127.0.0.1:${o.port}/s/${o.sid}` } } });
  const args = [
    '-p', '--verbose', '--model', o.model ?? 'claude-opus-4-7',
    '--dangerously-skip-permissions', '--disable-slash-commands',
    '--input-format', 'stream-json', '--output-format', 'stream-json',
    '--include-partial-messages', '--mcp-config', mcp, '--strict-mcp-config',
  ];
  if ((o.workerVersion ?? '0.31.16') === '0.31.18') args.push('--session-id', sessionUuid(o.sid));
  return args;
}

// ---------------------------------------------------------------- decoys

export interface Decoys {
  /** `claude --model x` like a user's interactive session (no -p, no stream-json). */
  interactive: number;
  /** Full hum worker-child argv, started by this test process (parent alive, not a worker). */
  handStarted: number;
  handStartedSid: string;
  pids: number[];
}

function spawnTracked(file: string, args: string[], token: string, extraEnv: Record<string, string> = {}): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv, [RUN_ENV]: token };
  delete env.NODE_TEST_CONTEXT;
  const cp = spawn(file, args, { env, stdio: 'ignore', detached: true });
  cp.on('error', () => {});
  cp.unref();
  return cp;
}

/** Start processes a reaper must never kill. They run the stand-in (mode hang), in their
 *  own process group, as children of this test process; cleanupRun(token) ends them. */
export async function spawnDecoys(token: string, o: { port?: number; sid?: string } = {}): Promise<Decoys> {
  track(token);
  const sid = o.sid ?? `${token}-by-hand`;
  const a = spawnTracked(SIM_CLAUDE_PATH, ['--model', 'x'], token, { FAKE_CLAUDE_MODE: 'hang' });
  const b = spawnTracked(SIM_CLAUDE_PATH, workerChildArgs({ sid, port: o.port ?? 45999 }), token, {
    FAKE_CLAUDE_MODE: 'hang',
    CLAUDE_CODE_DISABLE_CLAUDE_MDS: '1',
  });
  if (a.pid === undefined || b.pid === undefined) throw new Error('spawnDecoys: spawn failed');
  const pids = [a.pid, b.pid];
  // Wait until both scripts are blocked (fd 9 open), so they are fully formed processes.
  await waitFor(() => pids.every((p) => fs.existsSync(`/proc/${p}/fd/9`)), 2000, 2);
  return { interactive: a.pid, handStarted: b.pid, handStartedSid: sid, pids };
}

// ---------------------------------------------------------------- the simulated worker

type Reply = Record<string, unknown> & { ok?: boolean; error?: string; id?: number };

export async function startSimWorker(opts: SimWorkerOptions = {}): Promise<SimWorker> {
  const token = opts.token ?? newRunToken();
  track(token);
  let tmpDir: string | null = null;
  if (!opts.logPath) {
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hum-reaper-sim-'));
    tmpDirs.add(tmpDir);
  }
  const logPath = opts.logPath ?? path.join(tmpDir!, 'sh.hum.hum-claude-cli-worker.out.log');
  const claudePath = opts.claudePath ?? SIM_CLAUDE_PATH;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CLAUDE_CLI_PATH: claudePath,
    HUM_THRUM_SOCK: opts.thrumSock ?? '/tmp/hum/thrum.sock',
    HUM_LOG_LEVEL: opts.logLevel ?? 'trace',
    ...opts.env,
    [RUN_ENV]: token,
  };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  if (opts.color === false) env.NO_COLOR = '1';
  else delete env.NO_COLOR;
  if (opts.defaultMode) env.FAKE_CLAUDE_MODE = opts.defaultMode;
  else delete env.FAKE_CLAUDE_MODE;

  const args = [SIM_WORKER_PATH, '--log', logPath, '--claude', claudePath];
  if (opts.table !== undefined) args.push('--table', String(opts.table));
  if (opts.model !== undefined) args.push('--model', opts.model);
  if (opts.workerVersion !== undefined) args.push('--worker-version', opts.workerVersion);
  args.push(...(opts.args ?? []));

  // Own process group, like a launchd/systemd service (a stray kill(-pgid) cannot hit the runner).
  const cp = spawn(process.execPath, args, { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  if (cp.pid === undefined) {
    await new Promise((r) => cp.once('error', r));
    throw new Error('startSimWorker: spawn failed');
  }
  const pid = cp.pid;
  cp.on('error', () => {});
  cp.stdin!.on('error', () => {});
  // Nothing here keeps the test process alive; pending commands have their own timers.
  cp.unref();
  (cp.stdin as unknown as { unref?: () => void }).unref?.();
  (cp.stdout as unknown as { unref?: () => void }).unref?.();
  (cp.stderr as unknown as { unref?: () => void }).unref?.();

  let stderr = '';
  cp.stderr!.setEncoding('utf8');
  cp.stderr!.on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });

  let exited = false;
  const exitPromise = new Promise<void>((resolve) => {
    cp.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  // Replies still buffered when the process exits are read before 'close'.
  cp.once('close', () => {
    for (const [, p] of pending) p.reject(new Error(`sim worker ${pid} exited; stderr: ${stderr.trim() || '(empty)'}`));
    pending.clear();
  });

  const timeoutMs = opts.timeoutMs ?? 10000;
  const pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  const known = new Set<number>();
  let nextId = 1;

  readline.createInterface({ input: cp.stdout! }).on('line', (line) => {
    let r: Reply;
    try {
      r = JSON.parse(line) as Reply;
    } catch {
      return; // not a reply
    }
    const p = typeof r.id === 'number' ? pending.get(r.id) : undefined;
    if (!p) return;
    pending.delete(r.id as number);
    p.resolve(r);
  });

  const noteChildPids = (r: Reply): void => {
    for (const k of ['pid', 'orphanedPid']) if (typeof r[k] === 'number') known.add(r[k] as number);
    if (Array.isArray(r.children)) for (const c of r.children) if (typeof c === 'number') known.add(c);
  };

  const send = (cmd: Record<string, unknown>): Promise<Reply> => {
    if (exited) return Promise.reject(new Error(`sim worker ${pid} has exited; stderr: ${stderr.trim() || '(empty)'}`));
    const id = nextId++;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`sim worker ${pid}: no reply to ${JSON.stringify(cmd)} within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          if (r.pid !== pid) noteChildPids(r);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      cp.stdin!.write(`${JSON.stringify({ ...cmd, id })}\n`);
    });
  };

  const call = async <T>(cmd: Record<string, unknown>): Promise<T> => {
    const r = await send(cmd);
    if (r.ok !== true) throw new Error(`sim worker: ${String(cmd.cmd)} failed: ${r.error ?? JSON.stringify(r)}`);
    return r as unknown as T;
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      cp.stdin!.end(); // EOF: the worker kills the children it still parents, then exits
      await Promise.race([exitPromise, sleep(3000)]);
      if (!exited) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        await Promise.race([exitPromise, sleep(2000)]);
      }
    }
    // Orphans the worker no longer parents (after quit, or reparented grandchildren).
    for (const p of known) {
      for (const d of [...descendants(p), p]) {
        if (isAlive(d) && carriesToken(d, token)) {
          try {
            process.kill(d, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
    }
    if (tmpDir) {
      fs.rmSync(tmpDir, { recursive: true, force: true });
      tmpDirs.delete(tmpDir);
    }
  };

  let initialPort: number;
  try {
    const st = await call<StateReply>({ cmd: 'state' }); // queued behind connect: ready once it answers
    initialPort = st.port;
  } catch (e) {
    await stop();
    throw e;
  }

  return {
    pid,
    logPath,
    token,
    initialPort,
    prompt: (sid, mode) => call<PromptReply>(mode ? { cmd: 'prompt', sid, mode } : { cmd: 'prompt', sid }),
    race: (sid, mode) => call<RaceReply>(mode ? { cmd: 'race', sid, mode } : { cmd: 'race', sid }),
    idle: (sid, ageMs) => call<IdleReply>(ageMs === undefined ? { cmd: 'idle', sid } : { cmd: 'idle', sid, age_ms: ageMs }),
    exitCell: (sid) => call<ExitReply>({ cmd: 'exit', sid }),
    reconnect: () => call<ReconnectReply>({ cmd: 'reconnect' }),
    state: () => call<StateReply>({ cmd: 'state' }),
    quit: async () => {
      await call<StateReply>({ cmd: 'state' }); // records every child pid for stop()
      await send({ cmd: 'quit' }).catch(() => undefined);
      // The timer also keeps this process's event loop alive while the worker goes.
      await Promise.race([exitPromise, sleep(timeoutMs)]);
      if (!exited) throw new Error(`sim worker ${pid} did not exit on quit`);
    },
    send: (cmd) => send(cmd),
    readLog: () => (fs.existsSync(logPath) ? fs.readFileSync(logPath, 'utf8') : ''),
    alive: () => !exited,
    stop,
  };
}
