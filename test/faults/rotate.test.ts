// Fault injection, log rotation: the real logrotate, forced mid-run, in `create` mode (the
// worker reopens its log afterwards, as a postrotate signal would make it) and in
// `copytruncate` mode, several rotations each, with evictions written around every rotation.
// Every evicted child must die with exactly one `reaper.kill`.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { RunningDaemon } from '../support/cli.js';
import { isAlive, sleep, type SimWorker } from '../support/sim.js';
import { appendLog, duplicates, eventsNamed, Harness, killedPids, report, survivors, type FaultCounts } from './support.js';

const h = new Harness();
after(() => h.cleanup());

const LOGROTATE = ['/usr/sbin/logrotate', '/usr/bin/logrotate', '/sbin/logrotate'].find((p) => existsSync(p));
const skip = LOGROTATE ? false : 'logrotate is not installed';
const ROTATIONS = 4;
const execFileP = promisify(execFile);
type Mode = 'create' | 'copytruncate';

/** Prompt fresh sids until n evictions happened; the evicted pids. 10 ms apart, so no cell
 *  is evicted within the start-time estimate's error of its spawn (it would be "too young"). */
async function evict(w: SimWorker, prefix: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; out.length < n; i++) {
    const r = await w.prompt(`${prefix}-${i}`);
    if (r.evicted) out.push(r.evicted.pid);
    await sleep(10);
  }
  return out;
}

/** 32 KiB of TRACE lines that announce nothing (cells reused). */
function chatter(token: string, round: number): string {
  const at = new Date().toISOString().replace('Z', '000Z');
  const one = (i: number) => `\x1b[2m${at}\x1b[0m \x1b[35mTRACE\x1b[0m worker.cell.reused \x1b[3msid\x1b[0m\x1b[2m=\x1b[0m${token}-busy-${round}-${i}\n`;
  let text = '';
  for (let i = 0; text.length < 32 * 1024; i++) text += one(i);
  return text;
}

/** A worker logging to a file that a logrotate config in the same temp dir rotates. */
async function setup(mode: Mode) {
  const token = h.token();
  const dir = h.tempDir(`rotate-${mode}`);
  const logPath = join(dir, 'sh.hum.hum-claude-cli-worker.out.log');
  const conf = join(dir, 'logrotate.conf');
  const statePath = join(dir, 'logrotate.state');
  writeFileSync(conf, `${logPath} {\n  ${mode === 'create' ? 'create 0600' : 'copytruncate'}\n  rotate ${ROTATIONS + 2}\n  missingok\n  nocompress\n}\n`);
  const w = await h.worker(token, { table: 2, logPath });
  const evicted: number[] = [];
  const take = async (tag: string, n: number) => evicted.push(...(await evict(w, `${token}-${tag}`, n)));
  const logrotate = () => execFileP(LOGROTATE!, ['-f', '-s', statePath, conf]);
  // A long sweep interval: every kill here must come from following the log.
  const daemon = () => h.daemon(token, ['--log', logPath, '--state-dir', join(dir, 'state'), '--sweep-interval', '60000'], { HUM_REAPER_GRACE_MS: '500' });

  /** One forced rotation with evictions before, during and after it. */
  const rotateAround = async (r: number) => {
    // A log as big as a real one (the worker at trace level): the new content after a
    // copytruncate does not outgrow the tail's read position within one drain (that race is
    // the todo in tail.test.ts).
    if (mode === 'copytruncate') appendLog(logPath, chatter(token, r));
    await take(`r${r}-before`, 3);
    if (mode === 'create') {
      // Evictions race the rename; more go to the renamed file (the worker still holds it
      // open) until the worker reopens the path, as after logrotate's postrotate signal.
      await Promise.all([logrotate(), take(`r${r}-during`, 3)]);
      await take(`r${r}-old-fd`, 2);
      await w.send({ cmd: 'reopen' });
    } else {
      // copytruncate loses what is written between its copy and its truncate (logrotate
      // documents this), so the worker is quiet while it runs.
      await logrotate();
    }
    await take(`r${r}-after`, 3);
    assert.ok(existsSync(`${logPath}.1`), `rotation ${r} happened`);
  };
  return { token, w, evicted, rotateAround, daemon };
}

/** Misses, wrong kills and double kills over all the daemon runs of one test. */
async function tally(w: SimWorker, evicted: number[], runs: RunningDaemon[], extra: Record<string, number> = {}, waitMs = 5000): Promise<{ counts: FaultCounts; alive: number[]; unlogged: number[]; wrong: number[]; doubles: number[]; deadCells: number[] }> {
  const alive = await survivors(evicted, waitMs);
  const events = runs.flatMap((d) => d.events);
  const kills = killedPids(events);
  const logged = new Set(kills);
  const unlogged = evicted.filter((p) => !logged.has(p) && !alive.includes(p));
  const condemned = new Set(evicted);
  const wrong = kills.filter((p) => !condemned.has(p));
  const doubles = duplicates(kills);
  const deadCells = (await w.state()).cells.map((c) => c.pid).filter((p) => !isAlive(p));
  const counts: FaultCounts = {
    events: evicted.length, kills: kills.length, wrongKills: wrong.length + deadCells.length, misses: alive.length + unlogged.length,
    doubleKills: doubles.length, tailRotated: eventsNamed(events, 'tail.rotated').length, tailTruncated: eventsNamed(events, 'tail.truncated').length, ...extra,
  };
  return { counts, alive, unlogged, wrong, doubles, deadCells };
}

function assertClean(r: Awaited<ReturnType<typeof tally>>): void {
  assert.deepEqual(r.alive, [], 'every evicted child dies');
  assert.deepEqual(r.unlogged, [], 'every evicted child has its reaper.kill');
  assert.deepEqual(r.wrong, [], 'nothing else is killed');
  assert.deepEqual(r.deadCells, [], 'the cells still in the table live');
  assert.deepEqual(r.doubles, [], 'no pid is killed twice');
}

/** FAULT_DEBUG=1: the daemon's events and every log file's lifecycle lines, with their offsets. */
function dump(d: RunningDaemon, logPath: string): void {
  for (const e of d.events) console.log('event', JSON.stringify(e));
  const dir = dirname(logPath);
  for (const name of readdirSync(dir).filter((n) => n.startsWith(basename(logPath)))) {
    const text = readFileSync(join(dir, name), 'latin1');
    console.log('file', name, 'inode', statSync(join(dir, name)).ino, 'bytes', text.length);
    let offset = 0;
    for (const line of text.split('\n')) {
      if (/evict|spawned|exit/.test(line)) console.log('  ', offset, line.replace(/\x1b\[[0-9;]*m/g, ''));
      offset += line.length + 1;
    }
  }
}

/** Wait until every eviction so far has its reaper.kill (the tail has caught up). */
async function caughtUp(d: RunningDaemon, evicted: number[], timeoutMs = 3000): Promise<void> {
  await Promise.allSettled(evicted.map((pid) => d.waitForEvent((e) => e.event === 'reaper.kill' && e.pid === pid, timeoutMs)));
}

for (const mode of ['create', 'copytruncate'] as const) {
  test(`logrotate ${mode}, ${ROTATIONS} forced rotations mid-run: every eviction around them is applied once`, { skip }, async (t) => {
    const { w, evicted, rotateAround, daemon } = await setup(mode);
    const d = daemon();
    await d.waitForEvent((e) => e.event === 'reaper.sweep');
    for (let r = 1; r <= ROTATIONS; r++) {
      await rotateAround(r);
      // The next rotation comes once the tail has read this one's lines (rotations come hours
      // apart in life); rotations faster than the tail reads are the tests below.
      await caughtUp(d, evicted);
    }
    const result = await tally(w, evicted, [d], { rotations: ROTATIONS });
    report(t, result.counts);
    if (result.alive.length > 0 && process.env.FAULT_DEBUG) dump(d, w.logPath);
    assertClean(result);
    assert.ok(w.alive(), 'the worker lives');
    assert.equal(await d.stop(), 0);
  });
}

// Two rotations between two reads of the tail: the daemon down across them (a restart, a
// sleeping laptop), or a tail busy for longer than the rotation interval. Until 2ab4b8b
// FileTail drained the checkpointed file (renamed to .2, or the first copy) and then jumped
// to the file at the path: the middle file (.1) was never read, its evicted children lived on
// (13 of 33 missed with create, 11 of 18 with copytruncate).
for (const mode of ['create', 'copytruncate'] as const) {
  test(`logrotate ${mode} twice while the daemon is down: every eviction in every rotated file is applied`, { skip }, async (t) => {
    const { w, evicted, rotateAround, daemon } = await setup(mode);
    const d1 = daemon();
    await d1.waitForEvent((e) => e.event === 'reaper.sweep');
    await rotateAround(1);
    await caughtUp(d1, evicted);
    assert.equal(await d1.stop(), 0, 'clean stop: checkpoint written');
    await rotateAround(2);
    await rotateAround(3);
    const d2 = daemon();
    await d2.waitForEvent((e) => e.event === 'reaper.sweep');
    await caughtUp(d2, evicted, 1500);
    const result = await tally(w, evicted, [d1, d2], { rotations: 3, rotationsWhileDown: 2 }, 1000);
    report(t, result.counts);
    if (result.alive.length > 0 && process.env.FAULT_DEBUG) dump(d2, w.logPath);
    assertClean(result);
    await d2.stop();
  });
}

// Back to back, the tail is still draining the old content when the next copytruncate
// empties the file and the worker refills it past the tail's read position: the race that
// tail.test.ts pins down (todo there). `create` renames instead and is not exposed to it.
for (const mode of ['create', 'copytruncate'] as const) {
  const todo = undefined;
  test(`logrotate ${mode}, ${ROTATIONS} rotations back to back, faster than the tail reads: every eviction is applied once`, { skip, todo }, async (t) => {
    const { w, evicted, rotateAround, daemon } = await setup(mode);
    const d = daemon();
    await d.waitForEvent((e) => e.event === 'reaper.sweep');
    for (let r = 1; r <= ROTATIONS; r++) await rotateAround(r);
    await caughtUp(d, evicted);
    const result = await tally(w, evicted, [d], { rotations: ROTATIONS });
    report(t, result.counts);
    if (result.alive.length > 0 && process.env.FAULT_DEBUG) dump(d, w.logPath);
    assertClean(result);
    assert.equal(await d.stop(), 0);
  });
}
