import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReaperError } from '../../src/errors.js';
import { LinuxProcessReader } from '../../src/procs/linux.js';
import { acquireLock, LOCK_FILE, type ReadProcess } from '../../src/service/lock.js';

const reader = new LinuxProcessReader();
const readProcess: ReadProcess = (pid) => reader.read(pid);
const dirs: string[] = [];
const children: ChildProcess[] = [];
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function stateDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hum-reaper-lock-'));
  dirs.push(dir);
  return dir;
}

async function identityOf(pid: number) {
  const p = await reader.read(pid);
  assert.ok(p, `pid ${pid} is readable`);
  return { pid: p.pid, startKey: p.startKey };
}

/** A real process that stays alive until the test file ends. */
async function liveProcess() {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  children.push(child);
  return identityOf(child.pid!);
}

const isLocked = (pid: number) => (err: unknown) =>
  err instanceof ReaperError && err.code === 'E_LOCKED' && err.exitCode === 2 && err.message.includes(`pid ${pid}`);

const writeLock = (dir: string, body: string) => writeFile(join(dir, LOCK_FILE), body, { mode: 0o600 });

test('acquire writes {pid, startKey, startedAt}; release removes it', async () => {
  const dir = await stateDir();
  const me = await identityOf(process.pid);
  const lock = await acquireLock(dir, me, readProcess, { now: () => 1_700_000_000_000 });
  assert.equal(lock.replaced, null);
  assert.deepEqual(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')), { ...me, startedAt: 1_700_000_000_000 });
  await lock.release();
  assert.deepEqual(await readdir(dir), []);
  await lock.release(); // twice is harmless
  const again = await acquireLock(dir, me, readProcess);
  await again.release();
});

test('a second acquire while the holder lives throws E_LOCKED naming the pid (exit code 2)', async () => {
  const dir = await stateDir();
  const me = await identityOf(process.pid);
  const lock = await acquireLock(dir, me, readProcess);
  await assert.rejects(acquireLock(dir, me, readProcess), isLocked(process.pid));

  const holder = await liveProcess();
  const other = await stateDir();
  await writeLock(other, JSON.stringify({ ...holder, startedAt: Date.now() }));
  await assert.rejects(acquireLock(other, me, readProcess), isLocked(holder.pid));
  assert.equal(JSON.parse(await readFile(join(other, LOCK_FILE), 'utf8')).pid, holder.pid, 'a live lock is left alone');
  await lock.release();
});

test('a lock left by a process that exited is taken over', async () => {
  const dir = await stateDir();
  const child = spawn('sleep', ['0.2'], { stdio: 'ignore' });
  const dead = await identityOf(child.pid!);
  await once(child, 'exit');
  await writeLock(dir, JSON.stringify({ ...dead, startedAt: 1 }));
  const me = await identityOf(process.pid);
  const lock = await acquireLock(dir, me, readProcess);
  assert.deepEqual(lock.replaced, { reason: 'dead', previous: { ...dead, startedAt: 1 } });
  assert.equal(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')).pid, process.pid);
  await lock.release();
  assert.deepEqual(await readdir(dir), [], 'no stale or temp files left behind');
});

test('a recycled pid (alive, another start key) is stale', async () => {
  const dir = await stateDir();
  const stranger = await liveProcess();
  await writeLock(dir, JSON.stringify({ pid: stranger.pid, startKey: `${stranger.startKey}0`, startedAt: 1 }));
  const lock = await acquireLock(dir, await identityOf(process.pid), readProcess);
  assert.equal(lock.replaced?.reason, 'pid-reused');
  await lock.release();
});

for (const [name, body] of [
  ['empty', ''],
  ['garbage', '\u0000\u0001not json'],
  ['torn', '{"pid":12'],
  ['wrong shape', '{"pid":"12","startKey":5}'],
] as const) {
  test(`an unreadable lock file (${name}) is stale`, async () => {
    const dir = await stateDir();
    await writeLock(dir, body);
    const lock = await acquireLock(dir, await identityOf(process.pid), readProcess);
    assert.deepEqual(lock.replaced, { reason: 'unreadable', previous: null });
    await lock.release();
  });
}

test('release leaves a lock that no longer names us', async () => {
  const dir = await stateDir();
  const lock = await acquireLock(dir, await identityOf(process.pid), readProcess);
  const successor = JSON.stringify({ pid: 4242, startKey: '1', startedAt: 2 });
  await writeLock(dir, successor);
  await lock.release();
  assert.equal(await readFile(join(dir, LOCK_FILE), 'utf8'), successor);
});

test('many starters racing for one stale lock: exactly one wins, the rest get E_LOCKED', async () => {
  const dir = await stateDir();
  await writeLock(dir, JSON.stringify({ pid: 999_999, startKey: 'dead', startedAt: 1 }));
  // Fake daemons 1001…1012, all alive; the stale holder is not.
  const alive: ReadProcess = async (pid) => (pid >= 1001 && pid <= 1012 ? { pid, startKey: `k${pid}` } : null);
  const results = await Promise.allSettled(
    Array.from({ length: 12 }, (_, i) => acquireLock(dir, { pid: 1001 + i, startKey: `k${1001 + i}` }, alive)),
  );
  const won = results.filter((r) => r.status === 'fulfilled');
  assert.equal(won.length, 1, 'one winner');
  for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as ReaperError).code, 'E_LOCKED');
  const holder = JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8'));
  assert.equal(holder.pid, (won[0] as PromiseFulfilledResult<{ holder: { pid: number } }>).value.holder.pid);
  assert.deepEqual(await readdir(dir), [LOCK_FILE], 'no stale or temp files left behind');
});

test('an unusable state dir is E_STATE_DIR with the path named', async () => {
  const dir = await stateDir();
  const file = join(dir, 'a-file');
  await writeFile(file, '');
  const bad = join(file, 'state');
  await assert.rejects(acquireLock(bad, await identityOf(process.pid), readProcess), (err: unknown) =>
    err instanceof ReaperError && err.code === 'E_STATE_DIR' && err.exitCode === 2 && err.message.includes(bad),
  );
});

test('a holder whose liveness cannot be read is not taken over', async () => {
  const dir = await stateDir();
  await writeLock(dir, JSON.stringify({ pid: 4242, startKey: '1', startedAt: 2 }));
  const failing: ReadProcess = async () => {
    throw new Error('ps failed');
  };
  await assert.rejects(acquireLock(dir, { pid: 1, startKey: 'x' }, failing), isLocked(4242));
});
