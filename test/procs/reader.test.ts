import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LinuxProcessReader } from '../../src/procs/linux.js';
import { PsProcessReader } from '../../src/procs/ps.js';
import { cleanupRun, newRunToken, RUN_ENV, waitFor, isAlive } from '../support/sim.js';

const token = newRunToken();
after(() => cleanupRun(token));

/** A shell with one sleeping child, argv holding a space so argv splitting is exercised. */
async function shellWithChild() {
  const before = Date.now();
  const sh = spawn('/bin/sh', ['-c', 'sleep 30 & wait', token, 'an arg', 'x'], { env: { ...process.env, [RUN_ENV]: token }, stdio: 'ignore' });
  const pid = sh.pid!;
  const linux = new LinuxProcessReader();
  assert.ok(await waitFor(async () => {
    const kids = await linux.children(pid);
    return kids.length === 1 && (await linux.read(kids[0]!))?.argv[0] === 'sleep' && (await linux.read(pid))?.argv[0] === '/bin/sh';
  }));
  return { pid, before, sh };
}

test('Linux /proc reader: exact argv, ppid, uid, start time, rss, children', async () => {
  const { pid, before } = await shellWithChild();
  const reader = new LinuxProcessReader();
  const snap = await reader.snapshot();
  const me = snap.processes.find((p) => p.pid === pid);
  assert.ok(me, 'spawned shell is in the snapshot');
  assert.deepEqual(me.argv, ['/bin/sh', '-c', 'sleep 30 & wait', token, 'an arg', 'x']);
  assert.equal(me.ppid, process.pid);
  assert.equal(me.uid, process.getuid!());
  assert.ok(Math.abs(me.startedAt - before) < 1000, `start ${me.startedAt} near spawn ${before}`);
  assert.ok(me.rssBytes > 0);
  assert.equal(me.zombie, false);
  const [child] = await reader.children(pid);
  assert.ok(child);
  const c = snap.processes.find((p) => p.pid === child);
  assert.deepEqual(c?.argv, ['sleep', '30']);
  const again = await reader.read(pid);
  assert.equal(again?.startKey, me.startKey, 'start key is stable between reads');
  process.kill(child, 'SIGKILL');
  process.kill(pid, 'SIGKILL');
  await waitFor(() => !isAlive(pid));
  const gone = await reader.read(pid);
  assert.ok(gone === null || gone.zombie);
});

test('Linux /proc reader on a kernel without task/<tid>/children: children found by ppid', async () => {
  const { pid } = await shellWithChild();
  const [child] = await new LinuxProcessReader().children(pid);
  assert.ok(child);
  // A /proc of copies of just these two processes, with task/ but no children files.
  const root = mkdtempSync(join(tmpdir(), 'hum-reaper-proc-'));
  copyFileSync('/proc/uptime', join(root, 'uptime'));
  for (const p of [pid, child]) {
    mkdirSync(join(root, String(p), 'task', String(p)), { recursive: true });
    for (const f of ['stat', 'cmdline']) writeFileSync(join(root, String(p), f), readFileSync(`/proc/${p}/${f}`));
  }
  const reader = new LinuxProcessReader(root);
  assert.deepEqual(await reader.children(pid), [child]);
  assert.deepEqual(await reader.children(child), []);
  process.kill(child, 'SIGKILL');
  process.kill(pid, 'SIGKILL');
});

test('ps reader (the macOS path, run for real) agrees with /proc on pid, ppid, uid and start', async () => {
  const { pid } = await shellWithChild();
  const ps = new PsProcessReader();
  const viaPs = await ps.read(pid);
  const viaProc = await new LinuxProcessReader().read(pid);
  assert.ok(viaPs && viaProc);
  assert.equal(viaPs.ppid, viaProc.ppid);
  assert.equal(viaPs.uid, viaProc.uid);
  // lstart is truncated to the second and procps derives it from the whole-second btime.
  assert.ok(Math.abs(viaPs.startedAt - viaProc.startedAt) <= 2500, `${viaPs.startedAt} vs ${viaProc.startedAt}`);
  // ps joins argv with spaces; tokens without spaces survive the split.
  assert.deepEqual(viaPs.argv.slice(0, 2), ['/bin/sh', '-c']);
  assert.ok(viaPs.argv.includes(token));
  assert.equal((await ps.read(pid))?.startKey, viaPs.startKey);
  const snap = await ps.snapshot();
  assert.ok(snap.processes.some((p) => p.pid === pid));
  assert.ok(snap.processes.length > 3);
  assert.equal(await ps.read(2 ** 22 + 17), null, 'a pid that does not exist reads as null');
});

test('ps reader children (pgrep -P) match /proc', async () => {
  const { pid } = await shellWithChild();
  const viaPs = await new PsProcessReader().children(pid);
  const viaProc = await new LinuxProcessReader().children(pid);
  assert.equal(viaPs.length, 1);
  assert.deepEqual(viaPs, viaProc);
  assert.deepEqual(await new PsProcessReader().children(viaPs[0]!), [], 'a leaf has no children');
});

test('withArgv returns exactly the processes whose argv holds the token', async () => {
  const { pid } = await shellWithChild();
  const reader = new LinuxProcessReader();
  const found = await reader.withArgv(token);
  const [child] = await reader.children(pid);
  const pids = found.processes.map((p) => p.pid);
  assert.ok(pids.includes(pid), 'the shell carries the token in argv');
  assert.ok(!pids.includes(child!), 'its sleep child does not');
  assert.ok(found.processes.every((p) => p.argv.includes(token)));
  const full = (await reader.snapshot()).processes.find((p) => p.pid === pid);
  // startedAt is re-estimated from the uptime clock on each read; the identity is startKey.
  const strip = (p: typeof full) => p && { ...p, startedAt: 0 };
  assert.deepEqual(strip(found.processes.find((p) => p.pid === pid)), strip(full));
});
