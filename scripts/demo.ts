// `npm run demo`: the incident and its cure in under a minute, no hum needed (Linux).
//
// 1. the leak: a simulated unpatched claude-cli-worker 0.31.16 (30 sids, a table of 8) is
//    prompted at a steady pace, with one racing prompt, one idle kill and one humd restart;
//    every tick shows the orphans and their memory climbing;
// 2. the cure: `hum-reaper run` starts beside it and the worker keeps evicting; the orphan
//    count falls to zero and stays there;
// 3. the verdict, judged against what the worker itself replied (not the reaper's logs):
//    wrong kills and misses must both be 0, or the exit code is 1.
//
// Safety: every process started here carries the run token (test/support/sim.ts), the
// reaper only ever sees sids with the token's prefix (scopedEnv), and everything is ended
// by pid — on success, on error and on Ctrl-C.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scopedEnv, startDaemon, type RunningDaemon } from '../test/support/cli.js';
import {
  cleanupRun, descendants, isAlive, newRunToken, pidsOfRun, startSimWorker, sleep,
  type CellRef, type FakeClaudeMode, type SimWorker,
} from '../test/support/sim.js';
import { rssBytes } from './demo/procfs.js';
import { fmtBytes, fmtCounts, fmtMs, fmtSeconds, formatHeader, formatRow, paintFor, type Column } from './demo/render.js';
import { GroundTruth, type TableView } from './demo/truth.js';
import { asKill, judge, type KillEvent } from './demo/verdict.js';
import { seededRandom } from '../test/support/random.js';

const SIDS = 30;
const TABLE = 8;
const TICK_MS = 1000;
const PROMPTS_PER_TICK = 5;
const LEAK_TICKS = 8;
const RACE_AT_TICK = 3;
const IDLE_AT_TICK = 5;
const CURE_MIN_TICKS = 12;
const CURE_MAX_TICKS = 24;
/** The cure phase ends once orphans have stayed at zero this many ticks in a row. */
const ZERO_STREAK = 6;
const CURE_IDLE_EVERY = 4;
const SWEEP_MS = 2000;
const GRACE_MS = 1000; // scopedEnv's HUM_REAPER_GRACE_MS
const DAEMON_UP_TIMEOUT_MS = 15_000;
/** On a loaded machine ticks stretch: the cure phase ends by then whatever the streak. */
const CURE_ENDS_BY_MS = 42_000;
/** A real `claude` waiting on the API holds about this much (upstream-worker.md). */
const REAL_CLAUDE_BYTES = 200e6;

// ---------------------------------------------------------------- output

const paint = paintFor(process.stdout);
let stdoutBroken = false;
process.stdout.on('error', () => {
  stdoutBroken = true; // e.g. `npm run demo | head`: stop printing, still clean up
  void interrupt('EPIPE');
});
function out(line = ''): void {
  if (!stdoutBroken) process.stdout.write(`${line}\n`);
}

const COLS: Column[] = [
  { title: 'time', width: 6, align: 'right' },
  { title: 'children', width: 8, align: 'right' },
  { title: 'cells', width: 5, align: 'right' },
  { title: 'orphans', width: 7, align: 'right' },
  { title: 'orphan RSS', width: 10, align: 'right' },
  { title: 'as claude*', width: 10, align: 'right' },
  { title: 'what happened', width: 0, align: 'left' },
];
const INDENT = '  ';
const KILL_INDENT = ' '.repeat(INDENT.length + COLS[0]!.width + 2);
/** Up to this many kills in a tick get a line each; more are summed up by reason. */
const KILL_LINES_MAX = 6;

// ---------------------------------------------------------------- session (what teardown must end)

if (process.platform !== 'linux') {
  console.error('npm run demo needs Linux for now: the run-token bookkeeping that ends every process it starts reads /proc.');
  process.exit(2);
}

const token = newRunToken();
const sidOf = (i: number) => `${token}-bee-${i}`;
const shortSid = (sid: string) => (sid.startsWith(`${token}-`) ? sid.slice(token.length + 1) : sid);

let worker: SimWorker | null = null;
let daemon: RunningDaemon | null = null;
let stateDir: string | null = null;

interface Teardown {
  daemonExit: number | null | 'not started';
  stragglers: number[];
  left: number[];
  error: string | null;
}
let tearingDown: Promise<Teardown> | null = null;

/** Daemon first (SIGTERM, its exit code is part of the verdict), then the worker, then
 *  whatever still carries the token; idempotent. */
function teardown(): Promise<Teardown> {
  tearingDown ??= (async () => {
    let error: string | null = null;
    const daemonExit = daemon ? await daemon.stop() : 'not started';
    await worker?.stop().catch((e: unknown) => void (error = `worker stop: ${String(e)}`));
    let stragglers: number[] = [];
    try {
      stragglers = await cleanupRun(token);
    } catch (e) {
      error = String(e);
    }
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
    return { daemonExit, stragglers, left: pidsOfRun(token), error };
  })();
  return tearingDown;
}

let interrupted: string | null = null;
let interruptedAt = 0;
async function interrupt(why: string): Promise<void> {
  if (interrupted) return;
  interrupted = why;
  interruptedAt = Date.now();
  out();
  out(paint.yellow(`${why}: stopping the demo and ending every process it started…`));
  const t = await teardown();
  printTeardown(t);
  process.exit(why === 'SIGINT' ? 130 : why === 'SIGTERM' ? 143 : 1);
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  // Under `npm run` one Ctrl-C can arrive twice (the terminal's, and npm's forwarded copy), so
  // only a signal a second later cuts the teardown short; sim.ts's exit hook then SIGKILLs the run.
  process.on(sig, () => {
    if (!interrupted) void interrupt(sig);
    else if (Date.now() - interruptedAt > 1000) process.exit(1);
  });
}

class Interrupted extends Error {}
function checkInterrupted(): void {
  if (interrupted) throw new Interrupted(interrupted);
}

// ---------------------------------------------------------------- the driver


type Action = 'prompt' | 'race' | 'idle' | 'reconnect';

/** What one tick did, for its "what happened" column. */
interface TickNotes {
  spawned: number;
  evicted: number;
  notes: string[];
}

class Driver {
  readonly truth = new GroundTruth();
  /** Children started with grandchildren of their own (tree kills), for RSS. */
  private readonly trees = new Set<number>();
  /** Once the reaper runs, leave an orphan's sid alone until the worker saw it exit. */
  guardBySidQuirk = false;

  constructor(private readonly w: SimWorker, private readonly random: () => number) {}

  /** Every sixth bee runs tools: its `claude` has two children of its own. */
  private modeOf(i: number): FakeClaudeMode {
    return i % 6 === 0 ? 'children' : 'hang';
  }

  private spawned(pid: number, sid: string, i: number): boolean {
    if (this.modeOf(i) === 'children') this.trees.add(pid);
    return this.truth.spawned(pid, sid);
  }

  private async pickBee(): Promise<number> {
    let blocked = new Set<string>();
    if (this.guardBySidQuirk) blocked = this.truth.blockedSids(new Set((await this.w.state()).live));
    const free = Array.from({ length: SIDS }, (_, k) => k + 1).filter((i) => !blocked.has(sidOf(i)));
    return free[Math.floor(this.random() * free.length)] ?? 1;
  }

  async act(action: Action, notes: TickNotes): Promise<void> {
    const dropped = (ref: CellRef | null) => {
      if (!ref) return;
      this.truth.orphaned(ref, 'evicted');
      notes.evicted += 1;
    };
    if (action === 'prompt') {
      const i = await this.pickBee();
      const r = await this.w.prompt(sidOf(i), this.modeOf(i));
      dropped(r.evicted);
      if (!r.reused && this.spawned(r.pid, r.sid, i)) notes.spawned += 1;
    } else if (action === 'race') {
      const i = await this.pickBee();
      const r = await this.w.race(sidOf(i), this.modeOf(i));
      dropped(r.evicted);
      for (const pid of r.pids) if (this.spawned(pid, r.sid, i)) notes.spawned += 1;
      this.truth.orphaned({ sid: r.sid, pid: r.orphanedPid }, 'race');
      notes.notes.push(`race on ${shortSid(r.sid)}: 1 orphaned, no log line`);
    } else if (action === 'idle') {
      const lru = (await this.w.state()).cells[0];
      if (!lru) return;
      const r = await this.w.idle(lru.sid, 300_412);
      this.truth.orphaned({ sid: r.sid, pid: r.pid }, 'idle-killed');
      notes.notes.push(`idle kill of ${shortSid(r.sid)}`);
    } else {
      const r = await this.w.reconnect();
      this.truth.reconnected(r.orphaned);
      notes.notes.push(`humd restart: ${r.orphaned.length} cells orphaned at once`);
    }
  }

  /** The table as the worker holds it now, and the memory its orphans keep. */
  async look(): Promise<{ view: TableView; orphanRss: number; table: Set<number> }> {
    const st = await this.w.state();
    const view = this.truth.view(st, isAlive);
    let orphanRss = 0;
    for (const o of [...view.orphans, ...view.forgotten]) orphanRss += this.treeRss(o.pid);
    return { view, orphanRss, table: new Set(st.cells.map((c) => c.pid)) };
  }

  private treeRss(pid: number): number {
    const kids = this.trees.has(pid) ? descendants(pid) : [];
    return [pid, ...kids].reduce((sum, p) => sum + rssBytes(p), 0);
  }
}

/** Run one tick: PROMPTS_PER_TICK actions at an even pace, the last slot may be special. */
async function driveTick(driver: Driver, tickEndsAt: number, plan: (slot: number) => Action): Promise<TickNotes> {
  const notes: TickNotes = { spawned: 0, evicted: 0, notes: [] };
  const slotMs = TICK_MS / PROMPTS_PER_TICK;
  for (let slot = 0; slot < PROMPTS_PER_TICK; slot++) {
    checkInterrupted();
    await driver.act(plan(slot), notes);
    await sleep(Math.max(0, tickEndsAt - TICK_MS + (slot + 1) * slotMs - Date.now()));
  }
  return notes;
}

// ---------------------------------------------------------------- one line per tick

interface Peak {
  orphans: number;
  rss: number;
}

function printTick(t0: number, look: Awaited<ReturnType<Driver['look']>>, what: string, cure: boolean, peak: Peak): void {
  const orphans = look.view.orphans.length + look.view.forgotten.length;
  peak.orphans = Math.max(peak.orphans, orphans);
  peak.rss = Math.max(peak.rss, look.orphanRss);
  const hot = orphans > 0 ? paint.red : cure ? paint.green : (s: string) => s;
  out(INDENT + formatRow(COLS, [
    fmtSeconds(Date.now() - t0),
    String(look.view.childrenAlive),
    String(look.view.cells),
    { text: String(orphans), style: hot },
    { text: fmtBytes(look.orphanRss), style: hot },
    { text: fmtBytes(orphans * REAL_CLAUDE_BYTES), style: paint.dim },
    what,
  ]));
}

function printKills(kills: readonly KillEvent[]): void {
  if (kills.length === 0) return;
  if (kills.length > KILL_LINES_MAX) {
    const byReason = new Map<string, number>();
    for (const k of kills) byReason.set(k.reason, (byReason.get(k.reason) ?? 0) + 1);
    const freed = kills.reduce((s, k) => s + k.rssBytes, 0);
    out(KILL_INDENT + paint.dim(`reaper.kill ×${kills.length}  ${fmtCounts(byReason)}  (${fmtBytes(freed)})`));
    return;
  }
  for (const k of kills) {
    const lat = k.latencyMs !== null && k.hotPath ? fmtMs(k.latencyMs) : 'by sweep';
    const kids = k.descendants > 0 ? `  +${k.descendants} children` : '';
    out(KILL_INDENT + paint.dim(`reaper.kill  pid ${String(k.pid).padEnd(7)} ${shortSid(k.sid).padEnd(7)} ${k.reason.padEnd(16)} ${lat.padStart(8)} ${fmtBytes(k.rssBytes).padStart(8)}${kids}`));
  }
}

function describe(notes: TickNotes, extra: string[] = []): string {
  const parts: string[] = [];
  if (notes.spawned) parts.push(`+${notes.spawned} spawned`);
  if (notes.evicted) parts.push(`${notes.evicted} evicted`);
  return [...parts, ...notes.notes, ...extra].join(', ');
}

// ---------------------------------------------------------------- main

const USAGE = 'usage: npm run demo [-- --seed N]   (N replays the same prompt sequence)';

function parseSeed(argv: string[]): number {
  if (argv.includes('--help') || argv.includes('-h')) {
    out(USAGE);
    process.exit(0);
  }
  const i = argv.indexOf('--seed');
  if (i < 0) return Math.floor(Math.random() * 1e6);
  const n = Number(argv[i + 1]);
  if (Number.isInteger(n) && n >= 0) return n;
  console.error(USAGE);
  process.exit(2);
}

async function main(): Promise<number> {
  const started = Date.now();
  const seed = parseSeed(process.argv.slice(2));
  out(paint.bold('hum-reaper demo') + ' — the leak of an unpatched claude-cli-worker 0.31.16, and its cure');
  out(paint.dim(`  simulated worker, ${SIDS} bees, a table of ${TABLE} cells; stand-in \`claude\` processes (seed ${seed})`));
  out(paint.dim(`  run token ${token}: every process here carries it; the reaper only sees sids ${token}-*`));

  worker = await startSimWorker({ token, table: TABLE });
  const w = worker;
  const driver = new Driver(w, seededRandom(seed));
  const t0 = Date.now();
  const peak: Peak = { orphans: 0, rss: 0 };

  // ---- 1. the leak
  out();
  out(paint.bold(`1. The leak — ${PROMPTS_PER_TICK} prompts/s, no reaper`));
  out(INDENT + paint.dim(formatHeader(COLS)));
  for (let tick = 1; tick <= LEAK_TICKS; tick++) {
    const notes = await driveTick(driver, t0 + tick * TICK_MS, (slot) => {
      if (tick === RACE_AT_TICK && slot === 2) return 'race';
      if (tick === IDLE_AT_TICK && slot === 2) return 'idle';
      if (tick === LEAK_TICKS && slot === PROMPTS_PER_TICK - 1) return 'reconnect';
      return 'prompt';
    });
    printTick(t0, await driver.look(), describe(notes), false, peak);
  }
  out(INDENT + paint.dim(`* what the same orphans would hold as real \`claude\` processes (~${fmtBytes(REAL_CLAUDE_BYTES)} each);`));
  out(INDENT + paint.dim('  the stand-in is a tiny shell script, its RSS is shown as measured.'));

  // ---- 2. the cure
  out();
  out(paint.bold(`2. The cure — hum-reaper run --sweep-interval ${SWEEP_MS}, the worker keeps evicting`));
  out(INDENT + paint.dim('each reaper.kill: pid, sid, reason, log line → SIGTERM, RSS of the tree it ended'));
  stateDir = mkdtempSync(join(tmpdir(), 'hum-reaper-demo-state-'));
  driver.guardBySidQuirk = true;
  const d = startDaemon(['--log', w.logPath, '--state-dir', stateDir, '--sweep-interval', String(SWEEP_MS)], { env: scopedEnv(token), token });
  daemon = d;
  let daemonGone = false;
  void d.exited.then(() => (daemonGone = true));
  const daemonStartedAt = Date.now();
  out(INDENT + paint.dim(formatHeader(COLS)));

  const kills: KillEvent[] = [];
  let seen = 0;
  let upAt: number | null = null;
  let zeroStreak = 0;
  const cureT0 = Date.now();
  for (let tick = 1; tick <= CURE_MAX_TICKS; tick++) {
    const notes = await driveTick(driver, cureT0 + tick * TICK_MS, (slot) => (tick % CURE_IDLE_EVERY === 0 && slot === 2 ? 'idle' : 'prompt'));
    if (daemonGone) throw new Error(`hum-reaper run exited early; stderr: ${d.stderr().slice(-1500)}`);
    const fresh = d.events.slice(seen);
    seen = d.events.length;
    const tickKills = fresh.map(asKill).filter((k): k is KillEvent => k !== null);
    kills.push(...tickKills);
    const extra: string[] = [];
    const catchUp = fresh.find((e) => e.event === 'reaper.sweep' && e.why === 'catch-up');
    if (catchUp) {
      upAt = typeof catchUp.time === 'string' ? Date.parse(catchUp.time) : Date.now();
      extra.push(paint.cyan(`reaper up in ${fmtSeconds(upAt - daemonStartedAt)}, catch-up sweep`));
    }
    if (upAt === null && Date.now() - daemonStartedAt > DAEMON_UP_TIMEOUT_MS) throw new Error(`hum-reaper run not up within ${DAEMON_UP_TIMEOUT_MS} ms; stderr: ${d.stderr().slice(-1500)}`);
    const look = await driver.look();
    if (look.view.forgotten.length) extra.push(paint.yellow(`${look.view.forgotten.length} forgotten by the worker (by-sid quirk)`));
    printTick(t0, look, describe(notes, extra), true, peak);
    printKills(tickKills);
    const orphans = look.view.orphans.length + look.view.forgotten.length;
    zeroStreak = upAt !== null && orphans === 0 ? zeroStreak + 1 : 0;
    if (tick >= CURE_MIN_TICKS && zeroStreak >= ZERO_STREAK) break;
    if (upAt !== null && Date.now() - started > CURE_ENDS_BY_MS) break;
  }

  // ---- settle: the last prompt's orphan gets its sweep and grace like any other
  const settleFrom = Date.now();
  const settleUntil = settleFrom + SWEEP_MS + GRACE_MS + 1000;
  let last = await driver.look();
  const waitingFor = last.view.orphans.length + last.view.forgotten.length;
  while (last.view.orphans.length + last.view.forgotten.length > 0 && Date.now() < settleUntil) {
    checkInterrupted();
    await sleep(100);
    last = await driver.look();
  }
  if (waitingFor > 0) out(INDENT + paint.dim(`prompts stopped; waited ${fmtSeconds(Date.now() - settleFrom)} for the last ${waitingFor} orphan(s)`));
  kills.push(...d.events.slice(seen).map(asKill).filter((k): k is KillEvent => k !== null));
  seen = d.events.length;

  // ---- 3. the verdict (before teardown: it is judged on the live process table)
  const v = judge(driver.truth, kills, isAlive, last.table, upAt ?? Date.now());
  if (!w.alive()) v.wrongKills.push(w.pid);
  const t = await teardown();
  const elapsed = Date.now() - started;

  const ok = (good: boolean, s: string) => (good ? paint.green(s) : paint.red(s));
  const rows: [string, string, string][] = [
    ['orphans created', String(v.createdTotal), fmtCounts(v.created)],
    ['peak', `${peak.orphans}`, `orphans alive at once, holding ${fmtBytes(peak.rss)} (as claude: ~${fmtBytes(peak.orphans * REAL_CLAUDE_BYTES)})`],
    ['reaped', String(v.reapedTotal), fmtCounts(v.reaped)],
    ['wrong kills', ok(v.wrongKills.length === 0, String(v.wrongKills.length)), v.wrongKills.length ? `pids ${v.wrongKills.join(' ')}` : 'no live cell, no worker'],
    ['misses', ok(v.misses.length === 0, String(v.misses.length)), v.misses.length ? `still alive: pids ${v.misses.join(' ')}` : `orphans alive at the end (settle window ${fmtSeconds(SWEEP_MS + GRACE_MS + 1000)}: sweep + grace + 1 s)`],
    ['kill latency p50', v.latency ? fmtMs(v.latency.p50) : 'n/a', v.latency ? `eviction line → SIGTERM, ${v.latency.n} cells dropped while the reaper ran` : 'no live eviction was reaped'],
    ['kill latency p95', v.latency ? fmtMs(v.latency.p95) : 'n/a', v.latency ? `max ${fmtMs(v.latency.max)}` : ''],
    ['RSS freed', fmtBytes(v.rssFreedBytes), `as real claude: ~${fmtBytes(v.reapedTotal * REAL_CLAUDE_BYTES)}`],
    ['daemon exit', ok(t.daemonExit === 0, String(t.daemonExit)), 'on SIGTERM'],
    ['left behind', ok(t.left.length === 0, String(t.left.length)), `processes carrying ${token} after cleanup${t.stragglers.length ? ` (cleanupRun ended ${t.stragglers.length})` : ''}`],
  ];
  out();
  out(paint.bold('3. Verdict') + paint.dim(' — judged against the worker’s own replies'));
  const w1 = Math.max(...rows.map((r) => r[0].length));
  const w2 = Math.max(...rows.map((r) => stripAnsi(r[1]).length));
  for (const [k, n, note] of rows) out(`${INDENT}${k.padEnd(w1)}  ${' '.repeat(w2 - stripAnsi(n).length)}${n}  ${paint.dim(note)}`);
  if (t.error) out(paint.red(`${INDENT}cleanup: ${t.error}`));

  const pass = v.wrongKills.length === 0 && v.misses.length === 0 && t.daemonExit === 0 && t.left.length === 0 && !t.error;
  out();
  out(pass ? paint.green(`PASS in ${fmtSeconds(elapsed)}`) : paint.red(`FAIL in ${fmtSeconds(elapsed)}`));
  return pass ? 0 : 1;
}

function stripAnsi(s: string): string {
  return s.replace(/\x1b\[[0-9;]*m/g, '');
}

function printTeardown(t: Teardown): void {
  out(`${INDENT}daemon exit ${String(t.daemonExit)}; cleanupRun ended ${t.stragglers.length}; ${t.left.length} processes of ${token} left${t.error ? `; ${t.error}` : ''}`);
}

main().then(
  (code) => {
    if (!interrupted) process.exit(code);
  },
  async (err: unknown) => {
    if (interrupted || err instanceof Interrupted) return; // the signal handler finishes and exits
    out(paint.red(`demo failed: ${err instanceof Error ? err.message : String(err)}`));
    printTeardown(await teardown());
    process.exit(1);
  },
);
