// Fault injection, a flood: 5,000 log lines in about one second, written by the test into the
// log the daemon follows. 500 eviction lines name real children of the simulated worker
// (started beforehand, so the log's spawn lines and the catch-up sweep put them in the
// ledger); 2 cores cannot hold 5,000 stand-ins, so the other 4,500 lines are either other
// worker lines, or evictions of sids with no process at all. Every real evicted child must
// die, the daemon must survive and go on sweeping, nothing else may be killed; how long it
// took is the figure reported.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { evictionLine } from '../support/logfile.js';
import { isAlive, sleep } from '../support/sim.js';
import { appendLog, duplicates, eventsNamed, Harness, killedPids, report, survivors } from './support.js';

const h = new Harness();
after(() => h.cleanup());

const LINES = 5000;
const REAL = 500;
const LIVE = 20;
const WRITES = 100; // one O_APPEND write every ~10 ms

const rssOf = (pid: number) => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
const ts = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

/** Worker lines that announce nothing to act on (cells reused, exiting, failing), ANSI on. */
function noiseLine(token: string, i: number, at: number): string {
  const sid = `${token}-busy-${i % 50}`;
  const f = (k: string, v: string) => ` \x1b[3m${k}\x1b[0m\x1b[2m=\x1b[0m${v}`;
  const head = (level: string, code: number) => `\x1b[2m${ts(at)}\x1b[0m \x1b[${code}m${level}\x1b[0m`;
  switch (i % 3) {
    case 0: return `${head('TRACE', 35)} worker.cell.reused${f('sid', sid)}`;
    case 1: return `${head('TRACE', 35)} worker.cell.exit${f('sid', sid)}${f('exit_code', '0')}`;
    default: return `${head('ERROR', 31)} worker.result.error${f('sid', sid)}${f('subtype', '"error_during_execution"')}${f('detail', '"overloaded"')}`;
  }
}

async function flood(t: { diagnostic: (s: string) => void; name: string }, o: { others: 'noise' | 'ghost-evictions'; deadlineMs: number }) {
  const token = h.token();
  const w = await h.worker(token, { table: REAL + LIVE + 10, timeoutMs: 20_000 });
  const sid = (i: number) => `${token}-f${i}`;
  const spawnStart = Date.now();
  const real: number[] = [];
  for (let i = 0; i < REAL; i++) real.push((await w.prompt(sid(i))).pid);
  const live: number[] = [];
  for (let i = 0; i < LIVE; i++) live.push((await w.prompt(`${token}-live-${i}`)).pid);
  const spawnMs = Date.now() - spawnStart;

  // With ghosts, debug level: each `reaper.ledger-miss` (an eviction of a sid the ledger does not know) is counted.
  const level: Record<string, string> = o.others === 'ghost-evictions' ? { HUM_REAPER_LOG_LEVEL: 'debug' } : {};
  const d = h.daemon(token, ['--log', w.logPath, '--state-dir', join(h.tempDir('flood'), 'state'), '--sweep-interval', '2000'], { HUM_REAPER_GRACE_MS: '1000', ...level });
  await d.waitForEvent((e) => e.event === 'reaper.sweep', 20_000);
  const rssBefore = rssOf(d.pid);

  // The plan, in log order: each real eviction after nine other lines. Lines get their
  // timestamps when written, so latencyMs is eviction line written → SIGTERM.
  const plan: ((at: number) => string)[] = [];
  let other = 0;
  const othersPerReal = (LINES - REAL) / REAL;
  const nextOther = () => {
    const i = other++;
    return o.others === 'noise' ? (at: number) => noiseLine(token, i, at) : (at: number) => evictionLine(`${token}-ghost-${i}`, at);
  };
  for (let i = 0; i < REAL; i++) {
    for (let g = 0; g < othersPerReal; g++) plan.push(nextOther());
    plan.push((at) => evictionLine(sid(i), at));
  }
  const perWrite = Math.ceil(plan.length / WRITES);
  const t0 = Date.now();
  for (let i = 0; i < plan.length; i += perWrite) {
    const at = Date.now();
    appendLog(w.logPath, plan.slice(i, i + perWrite).map((line) => `${line(at)}\n`).join(''));
    await sleep(Math.max(0, t0 + ((i / perWrite + 1) * 1000) / WRITES - Date.now()));
  }
  const writeMs = Date.now() - t0;

  const alive = await survivors(real, o.deadlineMs);
  const allDeadMs = alive.length === 0 ? Date.now() - t0 : NaN;
  const logged = await Promise.all(real.map((pid) => d.waitForEvent((e) => e.event === 'reaper.kill' && e.pid === pid, alive.length ? 1 : 5000).then(() => true, () => false)));
  const unlogged = logged.filter((ok) => !ok).length - alive.length;
  const daemonUp = isAlive(d.pid);
  // Still working afterwards: a full sweep.
  const sweepsBefore = eventsNamed(d.events, 'reaper.sweep').length;
  const swept = await d.waitForEvent((e) => e.event === 'reaper.sweep' && eventsNamed(d.events, 'reaper.sweep').indexOf(e) >= sweepsBefore, alive.length ? 1 : 15_000).then(() => true, () => false);
  const rssAfter = daemonUp ? rssOf(d.pid) : 0;

  const kills = killedPids(d.events);
  const condemned = new Set(real);
  const wrong = kills.filter((p) => !condemned.has(p));
  const deadLive = live.filter((p) => !isAlive(p));
  const latencies = eventsNamed(d.events, 'reaper.kill').map((e) => e.latencyMs as number).filter((x) => typeof x === 'number').sort((a, b) => a - b);
  const pct = (q: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN);
  const evictions = o.others === 'noise' ? REAL : LINES;
  report(t, {
    events: evictions, kills: kills.length, wrongKills: wrong.length + deadLive.length, misses: alive.length + Math.max(0, unlogged),
    lines: LINES, realProcesses: REAL, evictionsWithoutProcess: evictions - REAL, doubleKills: duplicates(kills).length,
    writeMs, allDeadMs, deadAfterDeadline: REAL - alive.length, deadlineMs: o.deadlineMs,
    latencyP50Ms: pct(0.5), latencyP99Ms: pct(0.99), latencyMaxMs: Math.round(latencies.at(-1) ?? NaN),
    ledgerMisses: eventsNamed(d.events, 'reaper.ledger-miss').length, killedBySweep: eventsNamed(d.events, 'reaper.kill').filter((e) => e.readLagMs === undefined).length,
    spawnMs, daemonRssMB: Math.round(rssAfter / 2 ** 20), daemonRssGrowthMB: Math.round((rssAfter - rssBefore) / 2 ** 20),
  });
  assert.ok(daemonUp, `the daemon survives (stderr: ${d.stderr().slice(-1000)})`);
  assert.deepEqual(alive, [], `every real evicted process dies within ${o.deadlineMs} ms of the flood`);
  assert.equal(unlogged, 0, 'each with its reaper.kill');
  assert.ok(swept, 'and the daemon sweeps again afterwards');
  assert.deepEqual(wrong, [], 'nothing else is killed');
  assert.deepEqual(deadLive, [], 'the live cells live');
  assert.deepEqual(duplicates(kills), [], 'no pid killed twice');
  assert.ok(w.alive(), 'the worker lives');
  assert.equal(await d.stop(), 0);
}

test(`a flood of ${LINES} worker lines in about a second, ${REAL} of them evictions of real processes: all die, the daemon survives`, (t) =>
  flood(t, { others: 'noise', deadlineMs: 10_000 }));

// An eviction whose sid is not in the ledger costs the hot path a full /proc snapshot. One per
// line (as in a49cdc7: ~35 ms each with 500 children on 2 cores) held the real evictions
// queued behind 4,500 of them for minutes: 105 of 500 dead after 20 s.
test(`a flood of ${LINES} evictions in about a second, ${LINES - REAL} of sids with no process: the ${REAL} real ones die within 20 s`, (t) =>
  flood(t, { others: 'ghost-evictions', deadlineMs: 20_000 }));
