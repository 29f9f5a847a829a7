import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { killTree } from '../../src/kill/kill.js';
import { LinuxProcessReader } from '../../src/procs/linux.js';
import type { ProcessInfo } from '../../src/procs/types.js';
import { cleanupRun, newRunToken, RUN_ENV, waitFor, isAlive, descendants as liveDescendants } from '../support/sim.js';

const token = newRunToken();
after(() => cleanupRun(token));
const reader = new LinuxProcessReader();
const env = { ...process.env, [RUN_ENV]: token };

/** Start a process and wait until it has `kids` children; return its snapshot identity and tree. */
async function start(argv: string[], kids = 0) {
  const child = spawn(argv[0]!, argv.slice(1), { env, stdio: 'ignore' });
  const pid = child.pid!;
  child.on('error', () => undefined);
  // Wait until the process and its children have exec'd: a fork still running the
  // parent's image changes argv a moment later, and the kill path rightly skips such a pid.
  const settled = async () => {
    const me = await reader.read(pid);
    if (me?.argv.join('\0') !== argv.join('\0')) return false;
    const kidsNow = await Promise.all(liveDescendants(pid).map((d) => reader.read(d)));
    return kidsNow.length >= kids && kidsNow.every((k) => k?.argv[0] === 'sleep');
  };
  assert.ok(await waitFor(settled, 5000));
  const snap = await reader.snapshot();
  const byPid = new Map(snap.processes.map((p) => [p.pid, p]));
  const target = byPid.get(pid)!;
  const desc = liveDescendants(pid).reverse().map((d) => byPid.get(d)).filter((p): p is ProcessInfo => p !== undefined);
  return { pid, target, desc };
}

const IGNORE_TERM = `process.on('SIGTERM', () => {}); setInterval(() => {}, 1000); // ${token}`;
const FORK_ON_TERM = `const { spawn } = require('node:child_process'); process.on('SIGTERM', () => { spawn('sleep', ['30'], { stdio: 'ignore' }); }); setInterval(() => {}, 1000); // ${token}`;

test('a tree dies on SIGTERM, leaves first, within the grace', async () => {
  const { pid, target, desc } = await start(['/bin/sh', '-c', 'sleep 30 & sleep 31 & wait', token], 2);
  assert.equal(desc.length, 2);
  const order: number[] = [];
  const r = await killTree(target, desc, { reader, graceMs: 2000, send: (p, s) => { order.push(p); process.kill(p, s); } });
  assert.equal(r.outcome, 'killed');
  assert.equal(r.signal, 'SIGTERM');
  // The shell may exit on its own once its children die, before its own SIGTERM is due.
  assert.deepEqual(order.slice(0, 2).sort(), desc.map((d) => d.pid).sort(), 'descendants are signalled first');
  assert.ok([-1, order.length - 1].includes(order.indexOf(pid)), 'the orphan itself comes last, if at all');
  for (const p of [pid, ...desc.map((d) => d.pid)]) assert.equal(isAlive(p), false, `pid ${p} dead`);
});

test('a process that ignores SIGTERM gets SIGKILL after the grace', async () => {
  const { pid, target } = await start([process.execPath, '-e', IGNORE_TERM]);
  await new Promise((r) => setTimeout(r, 300)); // let node install its handler
  const t0 = Date.now();
  const r = await killTree(target, [], { reader, graceMs: 300 });
  assert.equal(r.outcome, 'killed');
  assert.equal(r.signal, 'SIGKILL');
  assert.ok(Date.now() - t0 >= 300);
  assert.equal(isAlive(pid), false);
});

test('children forked while handling SIGTERM are adopted and killed too', async () => {
  const { pid, target } = await start([process.execPath, '-e', FORK_ON_TERM]);
  await new Promise((r) => setTimeout(r, 300));
  const r = await killTree(target, [], { reader, graceMs: 500 });
  assert.equal(r.outcome, 'killed');
  assert.ok(r.descendants.length >= 1, 'the forked child was found');
  for (const p of [pid, ...r.descendants]) assert.equal(isAlive(p), false, `pid ${p} dead`);
});

test('a recycled pid (same pid, other start time) is never signalled', async () => {
  const { pid, target } = await start(['/bin/sh', '-c', 'sleep 30', token]);
  const sent: number[] = [];
  const r = await killTree({ ...target, startKey: String(Number(target.startKey) - 1000) }, [], { reader, graceMs: 100, send: (p) => sent.push(p) });
  assert.equal(r.outcome, 'gone');
  assert.deepEqual(sent, []);
  assert.equal(isAlive(pid), true);
});

test('a changed argv means skip, nothing signalled', async () => {
  const { pid, target } = await start(['/bin/sh', '-c', 'sleep 30', token]);
  const sent: number[] = [];
  const r = await killTree({ ...target, argv: [...target.argv, 'extra'] }, [], { reader, graceMs: 100, send: (p) => sent.push(p) });
  assert.equal(r.outcome, 'skipped');
  assert.deepEqual(sent, []);
  assert.equal(isAlive(pid), true);
});

test('an already-dead orphan is success (ESRCH = gone), not an error', async () => {
  const { pid, target } = await start(['/bin/sh', '-c', 'sleep 30', token]);
  process.kill(pid, 'SIGKILL');
  await waitFor(() => !isAlive(pid));
  const r = await killTree(target, [], { reader, graceMs: 100 });
  assert.equal(r.outcome, 'gone');
});

test('EPERM is a reported failure, not a crash (killer runs as another uid)', { skip: process.getuid?.() !== 0 ? 'needs root to drop to nobody' : false }, async () => {
  const { pid, target } = await start(['/bin/sh', '-c', 'sleep 30', token]);
  const script = `
    import { killTree } from ${JSON.stringify(new URL('../../src/kill/kill.ts', import.meta.url).href)};
    import { LinuxProcessReader } from ${JSON.stringify(new URL('../../src/procs/linux.ts', import.meta.url).href)};
    const target = JSON.parse(process.argv[1]);
    const r = await killTree(target, [], { reader: new LinuxProcessReader(), graceMs: 100 });
    console.log(JSON.stringify(r));`;
  const out = await new Promise<string>((resolve, reject) => {
    const c = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, JSON.stringify(target)], { uid: 65534, gid: 65534, env: { ...env, HOME: '/tmp' }, cwd: process.cwd() });
    let s = '';
    let e = '';
    c.stdout.on('data', (d) => (s += d));
    c.stderr.on('data', (d) => (e += d));
    c.on('close', (code) => (code === 0 ? resolve(s) : reject(new Error(`exit ${code}: ${e}`))));
  });
  const r = JSON.parse(out.trim().split('\n').at(-1)!);
  assert.equal(r.outcome, 'failed');
  assert.match(r.error, /EPERM/);
  assert.equal(isAlive(pid), true);
});
