import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupRun, descendants, isAlive, newRunToken, spawnDecoys, startSimWorker, waitFor, type SimWorker } from '../support/sim.js';
import { runCli, scopedEnv } from '../support/cli.js';

const tokens: string[] = [];
const workers: SimWorker[] = [];
after(async () => {
  for (const w of workers) await w.stop();
  for (const t of tokens) await cleanupRun(t);
});

function token() {
  const t = newRunToken();
  tokens.push(t);
  return t;
}

interface JsonCandidate { pid: number; sid: string; reason: string; action: string; descendants: number[] }
const pidsOf = (cs: JsonCandidate[]) => cs.map((c) => c.pid).sort((a, b) => a - b);

test('simulated incident: reap --dry-run lists exactly the orphans; reap kills exactly those and their children', async () => {
  const t = token();
  const w = await startSimWorker({ token: t, table: 8 });
  workers.push(w);
  const sid = (i: number) => `${t}-bee-${i}`;
  const expected = new Map<number, string>(); // pid → reason
  const childrenOf = new Map<number, number[]>();

  // Round 1: 30 sids through a table of 8 → 22 evictions; some cells have children.
  for (let i = 1; i <= 30; i++) {
    const r = await w.prompt(sid(i), i % 5 === 0 ? 'children' : i % 7 === 0 ? 'ignore-term' : 'hang');
    if (r.evicted) expected.set(r.evicted.pid, 'evicted');
  }
  // A racing prompt orphans one child with no log line of its own.
  const race = await w.race(sid(40));
  if (race.evicted) expected.set(race.evicted.pid, 'evicted');
  expected.set(race.orphanedPid, 'superseded');
  // Idle kill of a live cell.
  const table = (await w.state()).cells;
  const idle = await w.idle(table.find((c) => c.sid !== sid(40))!.sid);
  expected.set(idle.pid, 'idle-killed');
  // Reconnect: every cell of the old connection is orphaned at once.
  const rc = await w.reconnect();
  for (const c of rc.orphaned) if (!expected.has(c.pid)) expected.set(c.pid, 'stale-connection');
  // Round 2 on the new connection: evicted sids come back (fresh respawns must survive).
  for (let i = 1; i <= 10; i++) {
    const r = await w.prompt(sid(i));
    if (r.evicted) expected.set(r.evicted.pid, 'evicted');
  }
  const live = (await w.state()).cells.map((c) => c.pid);
  for (const pid of expected.keys()) childrenOf.set(pid, descendants(pid));
  const decoys = await spawnDecoys(t, { port: rc.port, sid: `${t}-by-hand` });

  const env = scopedEnv(t);
  const dry = await runCli(['reap', '--dry-run', '--json', '--log', w.logPath], { env, token: t });
  assert.equal(dry.code, 0, dry.stderr);
  const dryOut = JSON.parse(dry.stdout) as { candidates: JsonCandidate[] };
  assert.deepEqual(pidsOf(dryOut.candidates), [...expected.keys()].sort((a, b) => a - b), 'dry run lists exactly the orphans');
  for (const c of dryOut.candidates) {
    assert.equal(c.action, 'would-kill');
    assert.equal(c.reason, expected.get(c.pid), `reason of pid ${c.pid} (sid ${c.sid})`);
  }
  for (const pid of expected.keys()) assert.ok(isAlive(pid), 'dry run killed nothing');

  const real = await runCli(['reap', '--json', '--log', w.logPath], { env, token: t });
  assert.equal(real.code, 0, real.stderr);
  const realOut = JSON.parse(real.stdout) as { candidates: JsonCandidate[]; totals: { killed: number; failed: number } };
  assert.deepEqual(pidsOf(realOut.candidates), pidsOf(dryOut.candidates), 'reap kills what the dry run listed');
  assert.equal(realOut.totals.failed, 0);
  assert.ok(realOut.candidates.every((c) => c.action === 'killed'));

  for (const [pid, kids] of childrenOf) {
    assert.ok(await waitFor(() => !isAlive(pid), 3000), `orphan ${pid} is dead`);
    for (const k of kids) assert.ok(await waitFor(() => !isAlive(k), 3000), `child ${k} of orphan ${pid} is dead`);
  }
  assert.ok(w.alive(), 'the worker survives');
  for (const pid of live) assert.ok(isAlive(pid), `live cell ${pid} survives`);
  for (const pid of decoys.pids) assert.ok(isAlive(pid), `decoy ${pid} survives`);
});

test('unparented: the worker dies, its children are reaped without any log', async () => {
  const t = token();
  const w = await startSimWorker({ token: t, table: 8 });
  workers.push(w);
  const pids = [];
  for (let i = 0; i < 3; i++) pids.push((await w.prompt(`${t}-s${i}`)).pid);
  await w.quit();
  const dry = await runCli(['ps', '--json', '--log', 'none'], { env: scopedEnv(t), token: t });
  assert.equal(dry.code, 0, dry.stderr);
  const ps = JSON.parse(dry.stdout) as { processes: { pid: number; verdict: string; reason: string }[] };
  assert.deepEqual(ps.processes.map((p) => `${p.pid}:${p.verdict}:${p.reason}`).sort(), pids.map((p) => `${p}:orphan:unparented`).sort());
  const real = await runCli(['reap', '--log', 'none'], { env: scopedEnv(t), token: t });
  assert.equal(real.code, 0, real.stderr);
  assert.match(real.stdout, /3 orphans; killed 3/);
  for (const pid of pids) assert.ok(await waitFor(() => !isAlive(pid), 3000));
});

test('100 orphans are reaped in under 2 seconds', async () => {
  const t = token();
  const w = await startSimWorker({ token: t, table: 8 });
  workers.push(w);
  const orphans: number[] = [];
  for (let i = 0; i < 108; i++) {
    const r = await w.prompt(`${t}-b${i}`);
    if (r.evicted) orphans.push(r.evicted.pid);
  }
  assert.equal(orphans.length, 100);
  const r = await runCli(['reap', '--json', '--log', w.logPath], { env: scopedEnv(t), token: t });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { durationMs: number; totals: { killed: number } };
  assert.equal(out.totals.killed, 100);
  assert.ok(out.durationMs < 2000, `reap took ${out.durationMs} ms`);
  for (const pid of orphans) assert.equal(isAlive(pid), false);
  assert.equal((await w.state()).cells.filter((c) => isAlive(c.pid)).length, 8);
});

test('no worker anywhere: says so, exit 0; bad config: exit 2 and nothing killed', async () => {
  const t = token();
  const none = await runCli(['reap', '--dry-run', '--log', '/nonexistent/worker.log'], { env: scopedEnv(t), token: t });
  assert.equal(none.code, 0, none.stderr);
  // Other workers (earlier tests, or a real hum) may be running; none has children in our scope.
  assert.match(none.stdout, /Nothing to do\./);

  const w = await startSimWorker({ token: t, table: 1 });
  workers.push(w);
  const first = await w.prompt(`${t}-a`);
  await w.prompt(`${t}-b`); // evicts a
  const dir = mkdtempSync(join(tmpdir(), 'hum-reaper-cfg-'));
  writeFileSync(join(dir, 'bad.json'), '{"maxOrphans": -1}');
  const bad = await runCli(['reap', '--config', join(dir, 'bad.json'), '--log', w.logPath], { env: scopedEnv(t), token: t });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /"maxOrphans"/);
  assert.equal(bad.stdout, '');
  const usage = await runCli(['reap', '--frobnicate'], { env: scopedEnv(t), token: t });
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /frobnicate/);
  assert.ok(isAlive(first.pid), 'nothing was killed on bad input');
});

test('a stray word is bad usage, never ignored: `reap dry-run` kills nothing; --json only where there is JSON', async () => {
  const t = token();
  const w = await startSimWorker({ token: t, table: 1 });
  workers.push(w);
  const evicted = await w.prompt(`${t}-a`);
  await w.prompt(`${t}-b`);
  const typo = await runCli(['reap', 'dry-run', '--log', w.logPath], { env: scopedEnv(t), token: t });
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /unexpected argument "dry-run" \(did you mean --dry-run\?\)/);
  assert.equal(typo.stdout, '');
  assert.ok(isAlive(evicted.pid), 'the orphan was not reaped on a typo');
  const bare = await runCli([], { env: scopedEnv(t), token: t });
  assert.equal(bare.code, 2);
  assert.equal(bare.stdout, '', 'no command: usage on stderr, like any usage error');
  assert.match(bare.stderr, /Usage: hum-reaper <command>/);
  for (const cmd of ['run', 'install', 'uninstall']) {
    const r = await runCli([cmd, '--json', '--log', w.logPath], { env: scopedEnv(t), token: t });
    assert.equal(r.code, 2, `${cmd} --json: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`${cmd} has no --json output`));
  }
  const real = await runCli(['reap', '--log', w.logPath], { env: scopedEnv(t), token: t });
  assert.equal(real.code, 0, real.stderr);
  assert.ok(await waitFor(() => !isAlive(evicted.pid), 3000), 'the same reap without the typo kills it');
});

test('missing log: a warning naming the path; the log-free rules still run, log rules do not', async () => {
  const t = token();
  const w = await startSimWorker({ token: t, table: 1 });
  workers.push(w);
  const a = await w.prompt(`${t}-x`);
  const b = await w.prompt(`${t}-y`); // evicts x: but without the log nobody can know
  const missing = await runCli(['reap', '--dry-run', '--json', '--log', '/nonexistent/w.log'], { env: scopedEnv(t), token: t });
  assert.equal(missing.code, 0);
  assert.match(missing.stderr, /\/nonexistent\/w\.log/);
  assert.deepEqual((JSON.parse(missing.stdout) as { candidates: JsonCandidate[] }).candidates, []);
  await w.quit();
  const r = await runCli(['reap', '--json', '--log', '/nonexistent/w.log'], { env: scopedEnv(t), token: t });
  assert.equal(r.code, 0);
  const out = JSON.parse(r.stdout) as { candidates: JsonCandidate[] };
  assert.deepEqual(out.candidates.map((c) => `${c.pid}:${c.reason}:${c.action}`).sort(), [`${a.pid}:unparented:killed`, `${b.pid}:unparented:killed`].sort());
});
