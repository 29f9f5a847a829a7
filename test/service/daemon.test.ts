import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, mkdtempSync, renameSync, copyFileSync, truncateSync, unlinkSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanupRun, descendants, isAlive, newRunToken, spawnDecoys, startSimWorker, waitFor, type SimWorker } from '../support/sim.js';
import { runCli, scopedEnv, startDaemon, type RunningDaemon } from '../support/cli.js';
import { loadConfig } from '../../src/config/load.js';
import { LinuxProcessReader } from '../../src/procs/linux.js';
import type { ProcessReader } from '../../src/procs/types.js';
import { Daemon } from '../../src/service/daemon.js';
import { createLogger } from '../../src/service/logger.js';

const tokens: string[] = [];
const workers: SimWorker[] = [];
const daemons: RunningDaemon[] = [];
after(async () => {
  for (const d of daemons) await d.crash().catch(() => undefined);
  for (const w of workers) await w.stop();
  for (const t of tokens) await cleanupRun(t);
});

async function setup(opts: { table?: number; logLevel?: string } = {}) {
  const t = newRunToken();
  tokens.push(t);
  const w = await startSimWorker({ token: t, table: opts.table ?? 8, logLevel: opts.logLevel });
  workers.push(w);
  const stateDir = mkdtempSync(join(tmpdir(), 'hum-reaper-state-'));
  return { t, w, stateDir };
}

function daemon(t: string, w: SimWorker, stateDir: string, extra: string[] = []) {
  const d = startDaemon(['--log', w.logPath, '--state-dir', stateDir, '--sweep-interval', '1000', ...extra], { env: scopedEnv(t, { HUM_REAPER_GRACE_MS: '500' }), token: t });
  daemons.push(d);
  return d;
}

const killsOf = (d: RunningDaemon) => d.events.filter((e) => e.event === 'reaper.kill');
function assertNoDoubleKills(d: RunningDaemon) {
  const pids = killsOf(d).map((e) => e.pid as number);
  assert.equal(new Set(pids).size, pids.length, `a pid was killed twice: ${pids.join(' ')}`);
}

test('live incident, 30 sids over several rounds: every dropped cell dies within a second, nothing else dies', async () => {
  const { t, w, stateDir } = await setup();
  const d = daemon(t, w, stateDir);
  await d.waitForEvent((e) => e.event === 'reaper.sweep');
  const sid = (i: number) => `${t}-bee-${i}`;
  const condemned = new Set<number>();
  const dropped: { pid: number; kids: number[] }[] = [];
  const drop = (pid: number) => {
    condemned.add(pid);
    dropped.push({ pid, kids: descendants(pid) });
  };
  const decoys = await spawnDecoys(t, { port: w.initialPort });

  for (let round = 0; round < 3; round++) {
    dropped.length = 0;
    for (let i = 1; i <= 30; i++) {
      const r = await w.prompt(sid(i), i % 6 === 0 ? 'children' : i % 11 === 0 ? 'ignore-term' : 'hang');
      if (r.evicted) drop(r.evicted.pid);
    }
    const cells = (await w.state()).cells;
    const idle = await w.idle(cells[0]!.sid);
    drop(idle.pid);
    for (const { pid, kids } of dropped) {
      assert.ok(await waitFor(() => !isAlive(pid), 1000 + (pid % 11 === 0 ? 600 : 0)), `dropped cell ${pid} dies within a second`);
      for (const k of kids) assert.ok(await waitFor(() => !isAlive(k), 1000), `child ${k} of ${pid} dies`);
    }
    // Everything the worker still holds is alive (including fresh respawns of evicted sids).
    for (const c of (await w.state()).cells) assert.ok(isAlive(c.pid), `live cell ${c.sid} (${c.pid}) survives`);
  }

  // A reconnect orphans the whole table with no eviction line: the sweep reaps it.
  const rc = await w.reconnect();
  for (const c of rc.orphaned) condemned.add(c.pid);
  const fresh = await w.prompt(sid(99));
  for (const c of rc.orphaned) assert.ok(await waitFor(() => !isAlive(c.pid), 3500), `stale-connection child ${c.pid} reaped by a sweep`);
  // A racing prompt orphans one child silently: superseded, also for the sweep.
  const race = await w.race(sid(98));
  condemned.add(race.orphanedPid);
  assert.ok(await waitFor(() => !isAlive(race.orphanedPid), 3500), 'superseded child reaped by a sweep');

  assert.ok(isAlive(fresh.pid) && isAlive(race.pid), 'cells of the new connection survive');
  for (const p of decoys.pids) assert.ok(isAlive(p), `decoy ${p} survives`);
  assert.ok(w.alive(), 'the worker survives');
  await d.waitForEvent((e) => e.event === 'reaper.sweep' && (e.orphans as number) === 0, 5000);
  const wrong = killsOf(d).filter((e) => !condemned.has(e.pid as number));
  assert.deepEqual(wrong, [], 'no wrong kills');
  assertNoDoubleKills(d);
  const sigkilled = killsOf(d).filter((e) => e.signal === 'SIGKILL');
  assert.ok(sigkilled.length > 0, 'stand-ins that ignore SIGTERM were SIGKILLed after the grace');
  assert.ok(killsOf(d).filter((e) => e.reason === 'evicted').every((e) => typeof e.latencyMs === 'number'));
  assert.equal(await d.stop(), 0, 'SIGTERM: clean exit 0');
});

/** Prompt fresh sids until `n` evictions happened; returns the evicted pids. */
async function evict(w: SimWorker, t: string, tag: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; out.length < n; i++) {
    const r = await w.prompt(`${t}-${tag}-${i}`);
    if (r.evicted) out.push(r.evicted.pid);
  }
  return out;
}

const rotations: [string, (w: SimWorker) => Promise<void>][] = [
  ['rename-and-create', async (w) => {
    renameSync(w.logPath, `${w.logPath}.1`);
    await w.send({ cmd: 'reopen' });
  }],
  ['copy-and-truncate', async (w) => {
    copyFileSync(w.logPath, `${w.logPath}.1`);
    truncateSync(w.logPath, 0);
  }],
  ['delete-and-recreate', async (w) => {
    unlinkSync(w.logPath);
    await w.send({ cmd: 'reopen' });
  }],
];

for (const [name, rotate] of rotations) {
  test(`rotation by ${name}: evictions just before and after are each applied once`, async () => {
    const { t, w, stateDir } = await setup({ table: 2 });
    const d = daemon(t, w, stateDir);
    await d.waitForEvent((e) => e.event === 'reaper.sweep');
    const before = await evict(w, t, 'pre', 4);
    await rotate(w);
    const afterRot = await evict(w, t, 'post', 4);
    for (const pid of [...before, ...afterRot]) assert.ok(await waitFor(() => !isAlive(pid), 2500), `evicted ${pid} dies`);
    // The kill is logged when it completes, a poll after the process is seen gone.
    for (const pid of [...before, ...afterRot]) await d.waitForEvent((e) => e.event === 'reaper.kill' && e.pid === pid, 2000);
    await d.waitForEvent((e) => e.event === 'reaper.sweep' && (e.orphans as number) === 0, 5000);
    assertNoDoubleKills(d);
    for (const c of (await w.state()).cells) assert.ok(isAlive(c.pid));
    await d.stop();
  });
}

test('kill -9 of the daemon, evictions while it is down, restart: all applied on catch-up', async () => {
  const { t, w, stateDir } = await setup({ table: 2 });
  const d1 = daemon(t, w, stateDir, ['--sweep-interval', '60000']);
  await d1.waitForEvent((e) => e.event === 'reaper.sweep');
  const early = await evict(w, t, 'a', 3);
  for (const pid of early) assert.ok(await waitFor(() => !isAlive(pid), 1500));
  await d1.crash();
  const whileDown = await evict(w, t, 'b', 5);
  const d2 = daemon(t, w, stateDir, ['--sweep-interval', '60000']);
  await d2.waitForEvent((e) => e.event === 'reaper.sweep' && e.why === 'catch-up');
  for (const pid of whileDown) assert.ok(await waitFor(() => !isAlive(pid), 1500), `evicted while down: ${pid} dies at catch-up`);
  for (const pid of whileDown) await d2.waitForEvent((e) => e.event === 'reaper.kill' && e.pid === pid, 2000);
  assert.deepEqual(killsOf(d2).map((e) => e.pid).sort(), [...whileDown].sort(), 'exactly the missed ones, none of the earlier ones again');
  // metrics.prom is written just after the sweep's log line.
  const prom = join(stateDir, 'metrics.prom');
  const seen = () => (existsSync(prom) ? Number(/^hum_reaper_evictions_seen_total (\d+)$/m.exec(readFileSync(prom, 'utf8'))?.[1]) : NaN);
  assert.ok(await waitFor(() => seen() >= whileDown.length, 2000), `the evictions read at catch-up are counted (${seen()})`);
  for (const c of (await w.state()).cells) assert.ok(isAlive(c.pid));
  await d2.stop();
});

test('the ledger holds only a dead pid of the sid: its eviction still kills the live cell at once (INFO log)', async () => {
  // At INFO there are no spawn lines: the ledger learns cells from sweeps only.
  const { t, w, stateDir } = await setup({ table: 2, logLevel: 'info' });
  const sid = `${t}-again`;
  const first = await w.prompt(sid);
  const d = daemon(t, w, stateDir, ['--sweep-interval', '60000', '--min-age', '0']);
  await d.waitForEvent((e) => e.event === 'reaper.sweep');
  await w.exitCell(sid); // the ledger still holds `first`, now dead
  assert.ok(await waitFor(() => !isAlive(first.pid), 2000));
  const again = await w.prompt(sid);
  await sleep(300); // without spawn lines, "started before the eviction" needs more than a tick between them
  const others = [await w.prompt(`${t}-x`), await w.prompt(`${t}-y`)];
  assert.equal(others[1]!.evicted?.pid, again.pid, 'the table of 2 evicted the new cell');
  assert.ok(await waitFor(() => !isAlive(again.pid), 1500), 'killed by the hot path, not by a sweep a minute later');
  await d.waitForEvent((e) => e.event === 'reaper.kill' && e.pid === again.pid, 2000);
  assert.deepEqual(killsOf(d).map((e) => e.pid), [again.pid]);
  assert.ok(isAlive(others[0]!.pid) && isAlive(others[1]!.pid), 'the live cells live');
  await d.stop();
});

test('the ledger knows only a hand-started process of the evicted sid: the worker\'s cell is still found and killed at once', async () => {
  const { t, w, stateDir } = await setup({ table: 1, logLevel: 'info' });
  const sid = `${t}-shared`;
  const decoys = await spawnDecoys(t, { port: w.initialPort, sid }); // someone's own process with that sid
  const d = daemon(t, w, stateDir, ['--sweep-interval', '60000']);
  await d.waitForEvent((e) => e.event === 'reaper.sweep'); // the ledger now holds the decoy
  const cell = await w.prompt(sid); // INFO: no spawn line, so the ledger does not learn it
  await sleep(300);
  assert.equal((await w.prompt(`${t}-next`)).evicted?.pid, cell.pid);
  await d.waitForEvent((e) => e.event === 'reaper.kill' && e.pid === cell.pid, 2000);
  assert.ok(isAlive(decoys.handStarted), 'the hand-started process lives');
  assert.deepEqual(killsOf(d).map((e) => e.pid), [cell.pid]);
  await d.stop();
});

test('a cell evicted before it is --min-age old is killed once it is, not at the next sweep', async () => {
  // A burst of prompts evicts cells a few ms after their spawn (see the fixtures).
  const { t, w, stateDir } = await setup({ table: 1 });
  const d = daemon(t, w, stateDir, ['--sweep-interval', '60000', '--min-age', '1500']);
  await d.waitForEvent((e) => e.event === 'reaper.sweep');
  const sent = Date.now();
  const young = await w.prompt(`${t}-young`);
  const next = await w.prompt(`${t}-next`);
  assert.equal(next.evicted?.pid, young.pid);
  assert.ok(await waitFor(() => !isAlive(young.pid), 4000), 'killed within a few seconds, long before the sweep');
  const diedAfter = Date.now() - sent;
  assert.ok(diedAfter >= 1500 - 30, `not before it was --min-age old (died ${diedAfter} ms after its prompt)`);
  await d.waitForEvent((e) => e.event === 'reaper.kill' && e.pid === young.pid, 2000);
  assert.ok(isAlive(next.pid), 'the live cell lives');
  await d.stop();
});

test('an older cell of the sid still being killed does not hide the evicted one from the hot path (INFO log)', async () => {
  const { t, w, stateDir } = await setup({ table: 2, logLevel: 'info' });
  const sid = `${t}-s`;
  const old = await w.prompt(sid, 'ignore-term'); // in flight for the whole grace once evicted
  const a = await w.prompt(`${t}-a`);
  // A long grace: once the old cell dies, the worker drops sid s from its table (the by-sid quirk).
  const d = daemon(t, w, stateDir, ['--sweep-interval', '60000', '--grace', '5000']);
  await d.waitForEvent((e) => e.event === 'reaper.sweep'); // the ledger: old, a
  assert.equal((await w.prompt(`${t}-x`)).evicted?.pid, old.pid);
  await sleep(200);
  const fresh = await w.prompt(sid); // not in the ledger: no spawn lines at INFO
  assert.equal(fresh.evicted?.pid, a.pid);
  await w.prompt(`${t}-x`); // fresh is now the least recently used
  await sleep(300);
  assert.equal((await w.prompt(`${t}-y`)).evicted?.pid, fresh.pid);
  assert.ok(isAlive(old.pid), 'the old cell is still in its grace');
  assert.ok(await waitFor(() => !isAlive(fresh.pid), 1500), 'the fresh cell is killed by the hot path, not by a sweep a minute later');
  await d.stop();
});

test('stop() while the hot path handles an eviction too young to kill: nothing is killed after stop()', async () => {
  const { t, w, stateDir } = await setup({ table: 1 });
  const { config } = loadConfig({ flags: { log: w.logPath, stateDir, minAgeMs: 3000, sweepIntervalMs: 60_000, graceMs: 300 }, env: scopedEnv(t) });
  const real = new LinuxProcessReader();
  let victim = 0;
  let reading!: () => void;
  const readingVictim = new Promise<void>((r) => (reading = r));
  // A slow read of the evicted pid on the hot path: SIGTERM arrives meanwhile.
  const reader: ProcessReader = Object.assign(Object.create(LinuxProcessReader.prototype) as LinuxProcessReader, real, {
    read: async (pid: number) => {
      if (pid === victim) {
        reading();
        await sleep(200);
      }
      return real.read(pid);
    },
  });
  const d = new Daemon({ config, reader, log: createLogger({ level: 'silent' }) });
  await d.start();
  const young = await w.prompt(`${t}-young`);
  victim = young.pid;
  assert.equal((await w.prompt(`${t}-next`)).evicted?.pid, young.pid);
  await readingVictim;
  await d.stop();
  assert.equal(await waitFor(() => !isAlive(young.pid), 4000), false, 'a stopped daemon kills nothing');
});

test('one daemon per state dir: the second exits 2', async () => {
  const { t, w, stateDir } = await setup();
  const d1 = daemon(t, w, stateDir);
  await d1.waitForEvent((e) => e.event === 'reaper.sweep');
  const d2 = daemon(t, w, stateDir);
  assert.equal(await d2.exited, 2);
  assert.match(d2.stderr(), /E_LOCKED|already running|lock/i);
  await d1.stop();
});

test('metrics port in use: exit 2 naming the port, and no lock left behind', async () => {
  const { t, w, stateDir } = await setup();
  const busy = createServer().listen(0, '127.0.0.1');
  await once(busy, 'listening');
  const { port } = busy.address() as { port: number };
  try {
    const d = daemon(t, w, stateDir, ['--metrics-port', String(port)]);
    assert.equal(await d.exited, 2);
    assert.match(d.stderr(), new RegExp(`--metrics-port ${port}: cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\) \\[E_METRICS_PORT\\]`));
    assert.doesNotMatch(d.stderr(), /unexpected error|at Server/);
    assert.equal(existsSync(join(stateDir, 'daemon.lock')), false, 'the lock was released');
  } finally {
    busy.close();
  }
});

test('unusable state: not a directory, or a ledger that is a symlink: exit 2 with the path named', async () => {
  const { t, w } = await setup();
  const file = join(mkdtempSync(join(tmpdir(), 'hum-reaper-x-')), 'plain-file');
  writeFileSync(file, 'x');
  const r1 = await runCli(['run', '--log', w.logPath, '--state-dir', join(file, 'state')], { env: scopedEnv(t), token: t, timeoutMs: 15_000 });
  assert.equal(r1.code, 2);
  assert.match(r1.stderr, /plain-file/);
  const dir = mkdtempSync(join(tmpdir(), 'hum-reaper-state-'));
  mkdirSync(join(dir, 'elsewhere'));
  symlinkSync(join(dir, 'elsewhere', 'ledger.jsonl'), join(dir, 'ledger.jsonl'));
  const r2 = await runCli(['run', '--log', w.logPath, '--state-dir', dir], { env: scopedEnv(t), token: t, timeoutMs: 15_000 });
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /ledger\.jsonl/);
  assert.match(r2.stderr, /symbolic link/i);
});

test('SIGHUP reloads the config; a bad config is refused and the old one kept', async () => {
  const { t, w, stateDir } = await setup({ table: 1 });
  const cfg = join(stateDir, '..', `${t}-config.json`);
  writeFileSync(cfg, JSON.stringify({ dryRun: true }));
  const d = daemon(t, w, stateDir, ['--config', cfg]);
  await d.waitForEvent((e) => e.event === 'reaper.sweep');
  const first = await w.prompt(`${t}-h1`);
  const shadow = await w.prompt(`${t}-h2`); // evicts h1: dry run, so only would-kill
  assert.equal(shadow.evicted?.pid, first.pid);
  await d.waitForEvent((e) => e.event === 'reaper.would-kill' && e.pid === first.pid);
  assert.ok(isAlive(first.pid), 'dry run kills nothing');

  writeFileSync(cfg, '{ not json');
  process.kill(d.pid, 'SIGHUP');
  const failed = await d.waitForEvent((e) => e.event === 'reaper.reload-failed');
  assert.match(String(failed.error), /not valid JSON/);

  writeFileSync(cfg, JSON.stringify({ dryRun: false, metricsPort: 1 }));
  process.kill(d.pid, 'SIGHUP');
  const reloaded = await d.waitForEvent((e) => e.event === 'reaper.reloaded' && e.dryRun === false);
  assert.deepEqual(reloaded.restartNeededFor, ['metricsPort'], 'what only a restart changes is named');
  const next = await w.prompt(`${t}-h3`); // evicts h2: now for real
  await d.waitForEvent((e) => e.event === 'reaper.kill' && e.pid === next.evicted?.pid);
  assert.ok(await waitFor(() => !isAlive(shadow.pid), 2000));
  // The first orphan is reaped by the next sweep, now that dry run is off.
  assert.ok(await waitFor(() => !isAlive(first.pid), 3000));
  assert.equal(await d.stop(), 0);
});
