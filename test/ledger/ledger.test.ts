import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFile, chmod, chown, copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReaperError } from '../../src/errors.js';
import { Ledger, type ActionEntry, type CellSighting, type LedgerOptions, type LedgerView } from '../../src/ledger/ledger.js';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function stateDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hum-reaper-ledger-'));
  dirs.push(dir);
  return dir;
}

const HOUR = 3_600_000;
const T0 = 1_780_000_000_000;

/** A clock the test moves by hand. */
function clock(start = T0) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

/** Collects onNotice events. */
function notices() {
  const seen: { event: string; fields: Record<string, unknown> }[] = [];
  return { seen, onNotice: (event: string, fields: object) => void seen.push({ event, fields: fields as Record<string, unknown> }), of: (e: string) => seen.filter((n) => n.event === e) };
}

const sighting = (pid: number, sid: string, o: Partial<CellSighting> = {}): CellSighting => ({
  sid,
  sessionUuid: null,
  bridgePort: 53117,
  pid,
  startKey: `${pid * 7}`,
  startedAt: T0 - 60_000 + pid,
  ppid: 4000,
  ...o,
});

const action = (pid: number, o: Partial<ActionEntry> = {}): ActionEntry => ({
  action: 'killed',
  pid,
  startKey: `${pid * 7}`,
  sid: `sid-${pid}`,
  reason: 'evicted',
  at: T0,
  signal: 'SIGTERM',
  rssBytes: 200 * 1024 * 1024,
  latencyMs: 3.5,
  ...o,
});

const isUnsafe = (path: string, why: RegExp) => (err: unknown) =>
  err instanceof ReaperError && err.code === 'E_LEDGER_UNSAFE' && err.exitCode === 2 && err.message.includes(path) && why.test(err.message);

/** Everything the ledger exposes, for comparing two opens of one file. */
function contents(l: LedgerView, pids: number[], sids: string[]) {
  return {
    cells: pids.map((p) => l.cellOf(p)),
    sids: sids.map((s) => l.cellsOfSid(s).map((c) => c.pid)),
    actions: l.recentActions(10_000),
    totals: l.totals(),
    sweep: l.lastSweep(),
  };
}

test('round trip: cells, actions, sweep and totals read back the same after reopen', async () => {
  const path = join(await stateDir(), 'ledger.jsonl');
  const c = clock();
  const l = await Ledger.open(path, { now: c.now });
  assert.equal(l.observe(sighting(101, 'sid-a', { startedAt: T0 - 5000 })), true);
  assert.equal(l.observe(sighting(102, 'sid-a', { startedAt: T0 - 1000, sessionUuid: '59708d62-47e6-52a9-9a24-6a4b644fe6e2' })), true);
  assert.equal(l.observe(sighting(103, 'sid-b', { bridgePort: 60000 })), true);
  c.advance(30_000);
  assert.equal(l.observe(sighting(101, 'sid-a', { startedAt: T0 - 5000 })), false, 'a known cell appends nothing');
  assert.deepEqual(l.cellsOfSid('sid-a').map((x) => x.pid), [102, 101], 'newest start first');
  assert.equal(l.find(101, '707')?.lastSeen, T0 + 30_000);
  assert.equal(l.find(101, 'another-start'), undefined, 'find checks the start key');
  assert.equal(l.cellOf(101)?.firstSeen, T0);

  l.recordAction(action(101));
  l.recordAction(action(104, { reason: 'superseded', rssBytes: 1000 }));
  l.recordAction(action(105, { action: 'failed', signal: undefined, rssBytes: undefined, error: 'EPERM' }));
  l.recordAction(action(106, { action: 'gone', signal: undefined }));
  l.recordAction(action(107, { action: 'would-kill', reason: 'stale-connection' }));
  l.recordAction(action(108, { action: 'skipped', reason: 'changed' }));
  l.recordSweep({ at: T0 + 1, durationMs: 12.5, orphans: 3, killed: 2 });
  l.recordSweep({ at: T0 + 2, durationMs: 8, orphans: 0, killed: 0 });
  assert.equal(await l.flush(), true);
  assert.deepEqual(l.totals(), {
    since: T0,
    killedByReason: { evicted: 1, superseded: 1 },
    failed: 1,
    gone: 1,
    skipped: 1,
    wouldKill: 1,
    rssFreedBytes: 200 * 1024 * 1024 + 1000,
  });
  const before = contents(l, [101, 102, 103], ['sid-a', 'sid-b']);
  await l.close();

  assert.equal((await stat(path)).mode & 0o777, 0o600);
  const again = await Ledger.open(path, { now: c.now });
  const after = contents(again, [101, 102, 103], ['sid-a', 'sid-b']);
  // lastSeen updates reach the file only at compaction; everything else is written at once.
  assert.equal(after.cells[0]?.lastSeen, T0);
  after.cells[0] = before.cells[0];
  assert.deepEqual(after, before);
  assert.equal(again.corruptLines, 0);
  assert.deepEqual(again.recentActions(2).map((a) => a.pid), [107, 108], 'oldest first');
  await again.compact();
  await again.close();
});

test('forget and recycled pids: a gone process does not come back at reopen', async () => {
  const path = join(await stateDir(), 'ledger.jsonl');
  const l = await Ledger.open(path, { now: clock().now });
  l.observe(sighting(201, 'sid-x'));
  l.observe(sighting(202, 'sid-x'));
  await l.flush();
  assert.equal(l.forget(201, 'wrong-start'), false);
  assert.equal(l.forget(201, '1407'), true);
  // pid 202 recycled by a new cell of another sid: the old record goes.
  l.observe(sighting(202, 'sid-y', { startKey: '99999' }));
  assert.deepEqual(l.cellsOfSid('sid-x'), []);
  await l.close();
  const again = await Ledger.open(path);
  assert.equal(again.cellOf(201), undefined);
  assert.equal(again.cellOf(202)?.startKey, '99999');
  assert.deepEqual(again.cellsOfSid('sid-x'), []);
  assert.deepEqual(again.cellsOfSid('sid-y').map((c) => c.pid), [202]);
  await again.close();
});

test('a torn last line and garbage lines are skipped, counted and reported by line number', async () => {
  const path = join(await stateDir(), 'ledger.jsonl');
  const l = await Ledger.open(path, { now: clock().now });
  l.observe(sighting(301, 'sid-a'));
  l.recordAction(action(301));
  await l.close();
  await appendFile(path, 'not json at all\n{"t":"cell","pid":"nope"}\n\n{"t":"martian"}\n' + '{"t":"action","action":"kil');
  const n = notices();
  const again = await Ledger.open(path, { onNotice: n.onNotice });
  assert.equal(again.corruptLines, 4);
  assert.deepEqual(n.of('ledger.corrupt-line').map((x) => x.fields.line), [4, 5, 7, 8]);
  assert.equal(n.of('ledger.loaded')[0]?.fields.corruptLines, 4);
  assert.equal(again.cellOf(301)?.sid, 'sid-a');
  assert.equal(again.recentActions(10).length, 1);
  // The next append starts on a fresh line, not glued to the torn one.
  again.observe(sighting(302, 'sid-b'));
  assert.equal(await again.flush(), true);
  await again.close();
  const third = await Ledger.open(path);
  assert.equal(third.corruptLines, 4);
  assert.equal(third.cellOf(302)?.sid, 'sid-b');
  await third.close();
});

test('compaction keeps live cells, the last 1000 actions, the last sweep and lifetime totals, and shrinks the file', async () => {
  const path = join(await stateDir(), 'ledger.jsonl');
  const c = clock();
  const n = notices();
  const l = await Ledger.open(path, { now: c.now, onNotice: n.onNotice });
  for (let pid = 1000; pid < 1010; pid++) l.observe(sighting(pid, `sid-${pid % 3}`));
  for (let pid = 1000; pid < 1005; pid++) l.forget(pid, `${pid * 7}`);
  for (let i = 0; i < 1500; i++) l.recordAction(action(5000 + i, { reason: i % 2 ? 'evicted' : 'idle-killed', at: T0 + i }));
  for (let i = 0; i < 50; i++) l.recordSweep({ at: T0 + i, durationMs: 5, orphans: i, killed: i });
  c.advance(HOUR);
  l.observe(sighting(1009, 'sid-0')); // lastSeen moves in memory only
  await l.flush();
  const sizeBefore = (await stat(path)).size;
  const totalsBefore = l.totals();

  assert.equal(await l.compact(), true);
  const sizeAfter = (await stat(path)).size;
  assert.ok(sizeAfter < sizeBefore / 1.3, `${sizeAfter} < ${sizeBefore}`);
  assert.deepEqual(n.of('ledger.compacted')[0]?.fields, { path, bytesBefore: sizeBefore, bytesAfter: sizeAfter, cells: 5, actions: 1000, droppedCells: 0 });
  assert.deepEqual(await readdir(join(path, '..')), ['ledger.jsonl'], 'no temp file left');

  // Appends after a compaction go to the new file.
  l.recordAction(action(9999, { reason: 'unparented', rssBytes: 1 }));
  await l.close();
  const again = await Ledger.open(path);
  assert.equal(again.corruptLines, 0);
  for (let pid = 1000; pid < 1005; pid++) assert.equal(again.cellOf(pid), undefined);
  for (let pid = 1005; pid < 1010; pid++) assert.equal(again.cellOf(pid)?.pid, pid);
  assert.equal(again.cellOf(1009)?.lastSeen, T0 + HOUR, 'lastSeen written at compaction');
  const actions = again.recentActions(5000);
  assert.equal(actions.length, 1001);
  assert.equal(actions[0]?.pid, 5000 + 500);
  assert.equal(actions.at(-1)?.pid, 9999);
  assert.deepEqual(again.lastSweep(), { at: T0 + 49, durationMs: 5, orphans: 49, killed: 49 });
  assert.deepEqual(again.totals(), {
    ...totalsBefore,
    killedByReason: { ...totalsBefore.killedByReason, unparented: 1 },
    rssFreedBytes: totalsBefore.rssFreedBytes + 1,
  });
  assert.deepEqual(again.totals().killedByReason, { 'idle-killed': 750, evicted: 750, unparented: 1 });
  await again.close();
});

test('retention: a compaction drops cells not seen for retentionMs, and one runs at least that often', async () => {
  const path = join(await stateDir(), 'ledger.jsonl');
  const c = clock();
  const n = notices();
  const l = await Ledger.open(path, { now: c.now, onNotice: n.onNotice, retentionMs: 24 * HOUR });
  l.observe(sighting(401, 'sid-old'));
  l.observe(sighting(402, 'sid-kept'));
  await l.flush();
  c.advance(20 * HOUR);
  l.observe(sighting(402, 'sid-kept'));
  await l.flush();
  assert.equal(n.of('ledger.compacted').length, 0);
  c.advance(5 * HOUR);
  l.recordSweep({ at: c.now(), durationMs: 1, orphans: 0, killed: 0 });
  await l.flush(); // 25 h since open: the periodic compaction is due
  assert.equal(n.of('ledger.compacted')[0]?.fields.droppedCells, 1);
  assert.equal(l.cellOf(401), undefined);
  assert.deepEqual(l.cellsOfSid('sid-old'), []);
  assert.equal(l.cellOf(402)?.lastSeen, T0 + 20 * HOUR);
  await l.close();
  const again = await Ledger.open(path, { now: c.now });
  assert.equal(again.cellOf(401), undefined);
  assert.equal(again.cellOf(402)?.lastSeen, T0 + 20 * HOUR);
  await again.close();
});

test('size stays bounded: 200,000 short-lived cells observed and forgotten', async () => {
  for (const maxBytes of [undefined, 256 * 1024]) {
    const path = join(await stateDir(), 'ledger.jsonl');
    const n = notices();
    const opts: LedgerOptions = { onNotice: n.onNotice, ...(maxBytes ? { maxBytes } : {}) };
    const l = await Ledger.open(path, opts);
    const limit = maxBytes ?? 8 * 1024 * 1024;
    let largest = 0;
    for (let i = 0; i < 200_000; i++) {
      const pid = 10_000 + (i % 30_000); // pids recycle, as they do
      const startKey = `${1_000_000 + i}`;
      l.observe(sighting(pid, `sid-daman-follower-v1-${i % 30}`, { startKey }));
      if (i % 7 === 0) l.recordAction(action(pid, { startKey, action: 'gone' }));
      l.forget(pid, startKey);
      if (i % 1000 === 999) {
        assert.equal(await l.flush(), true);
        largest = Math.max(largest, (await stat(path)).size);
      }
    }
    await l.close();
    const size = (await stat(path)).size;
    // One flush of 1000 cells + tombstones is ~300 KB: the file never gets much past maxBytes.
    assert.ok(largest < limit + 400 * 1024, `largest ${largest} for maxBytes ${limit}`);
    assert.ok(size < limit + 400 * 1024, `final ${size}`);
    assert.ok(n.of('ledger.compacted').length >= Math.floor(50_000_000 / limit) - 1, `${n.of('ledger.compacted').length} compactions`);
    const again = await Ledger.open(path, opts);
    assert.equal(again.cellOf(10_000), undefined, 'no forgotten cell comes back');
    assert.equal(again.totals().gone, Math.ceil(200_000 / 7));
    await again.compact();
    await again.close();
    assert.ok((await stat(path)).size < 300 * 1024, 'after compaction only the last 1000 actions and totals remain');
  }
});

test('a failed write never throws: reported, kept in memory, retried at the next flush', async () => {
  const path = join(await stateDir(), 'ledger.jsonl');
  const n = notices();
  let failNext: 'none' | 'enospc' | 'partial' | 'eio-after-partial' = 'none';
  const writeChunk: LedgerOptions['writeChunk'] = async (fh, data) => {
    if (failNext === 'enospc') throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    if (failNext === 'partial') {
      failNext = 'eio-after-partial';
      return (await fh.write(data.subarray(0, 17))).bytesWritten; // tears the first line
    }
    if (failNext === 'eio-after-partial') throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
    return (await fh.write(data)).bytesWritten;
  };
  const l = await Ledger.open(path, { onNotice: n.onNotice, writeChunk });
  await l.flush();

  failNext = 'enospc';
  l.observe(sighting(501, 'sid-a'));
  l.recordAction(action(501));
  assert.equal(await l.flush(), false);
  assert.equal(n.of('ledger.write-failed')[0]?.fields.code, 'ENOSPC');
  assert.equal(l.cellOf(501)?.sid, 'sid-a', 'still in memory');

  failNext = 'partial';
  l.observe(sighting(502, 'sid-b'));
  assert.equal(await l.flush(), false);
  assert.equal(n.of('ledger.write-failed')[1]?.fields.code, 'EIO');

  failNext = 'none';
  l.recordAction(action(502, { action: 'failed', error: 'EPERM' }));
  assert.equal(await l.flush(), true);
  await l.close();

  const again = await Ledger.open(path);
  assert.equal(again.corruptLines, 0, 'the torn line was finished, not duplicated');
  assert.equal(again.cellOf(501)?.sid, 'sid-a');
  assert.equal(again.cellOf(502)?.sid, 'sid-b');
  assert.deepEqual(again.recentActions(10).map((a) => [a.pid, a.action]), [[501, 'killed'], [502, 'failed']]);
  assert.deepEqual(again.totals().killedByReason, { evicted: 1 });
  await again.close();
});

test('a long outage drops the backlog and the first good flush rewrites the file from memory', async () => {
  const path = join(await stateDir(), 'ledger.jsonl');
  let down = true;
  const writeChunk: LedgerOptions['writeChunk'] = async (fh, data) => {
    if (down) throw Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' });
    return (await fh.write(data)).bytesWritten;
  };
  const l = await Ledger.open(path, { maxBytes: 64 * 1024, writeChunk, onNotice: () => undefined });
  for (let i = 0; i < 2000; i++) {
    l.observe(sighting(20_000 + i, `sid-${i}`));
    if (i % 100 === 0) assert.equal(await l.flush(), false);
  }
  l.recordAction(action(20_000));
  down = false;
  assert.equal(await l.flush(), true);
  await l.close();
  const again = await Ledger.open(path);
  assert.equal(again.corruptLines, 0);
  assert.equal(again.cellOf(20_000)?.sid, 'sid-0');
  assert.equal(again.cellOf(21_999)?.sid, 'sid-1999');
  assert.equal(again.totals().killedByReason.evicted, 1);
  await again.close();
});

test('concurrent flushes write in order', async () => {
  const path = join(await stateDir(), 'ledger.jsonl');
  const l = await Ledger.open(path);
  const flushes: Promise<boolean>[] = [];
  for (let i = 0; i < 50; i++) {
    l.recordAction(action(600 + i));
    flushes.push(l.flush());
  }
  assert.deepEqual(await Promise.all(flushes), Array(50).fill(true));
  await l.close();
  const pids = (await readFile(path, 'utf8')).trim().split('\n').map((line) => JSON.parse(line)).filter((r) => r.t === 'action').map((r) => r.pid);
  assert.deepEqual(pids, Array.from({ length: 50 }, (_, i) => 600 + i));
});

// The daemon's open and the read-only load of status/doctor refuse the same files.
const loaders = {
  open: async (path: string) => (await Ledger.open(path)).close(),
  read: async (path: string) => void (await Ledger.read(path)),
};
for (const [name, load] of Object.entries(loaders)) {
  test(`Ledger.${name} refuses with E_LEDGER_UNSAFE: symlink, dangling symlink, directory, FIFO, world-writable file or dir, other owner`, async (t) => {
    const dir = await stateDir();
    const real = join(dir, 'real.jsonl');
    await writeFile(real, `${JSON.stringify({ t: 'action', ...action(1) })}\n`, { mode: 0o600 });
    const link = join(dir, 'ledger.jsonl');
    await symlink(real, link);
    await assert.rejects(load(link), isUnsafe(link, /symbolic link/));
    const dangling = join(dir, 'dangling.jsonl');
    await symlink(join(dir, 'nowhere'), dangling);
    await assert.rejects(load(dangling), isUnsafe(dangling, /symbolic link/));
    await assert.rejects(readFile(join(dir, 'nowhere')), { code: 'ENOENT' }, 'nothing created through the link');

    const asDir = join(dir, 'dir.jsonl');
    await mkdir(asDir);
    await assert.rejects(load(asDir), isUnsafe(asDir, /not a regular file/));
    const fifo = join(dir, 'fifo.jsonl');
    execFileSync('mkfifo', [fifo]);
    await assert.rejects(load(fifo), isUnsafe(fifo, /not a regular file/), 'refused, not hung on the open');

    const open = join(dir, 'open.jsonl');
    await writeFile(open, '');
    await chmod(open, 0o666);
    await assert.rejects(load(open), isUnsafe(open, /world-writable \(mode 666\)/));

    const shared = join(dir, 'shared');
    await mkdir(shared);
    const inShared = join(shared, 'ledger.jsonl');
    await writeFile(inShared, '', { mode: 0o600 });
    await chmod(shared, 0o777);
    await assert.rejects(load(inShared), isUnsafe(inShared, /directory .* world-writable without the sticky bit/));
    await chmod(shared, 0o1777); // like /tmp: others cannot replace our file
    await load(inShared);
    assert.ok((await readFile(real, 'utf8')).endsWith('\n'), 'the link target is untouched');

    if (process.getuid?.() !== 0) return t.skip('needs root to chown');
    const theirs = join(dir, 'theirs.jsonl');
    await writeFile(theirs, '', { mode: 0o600 });
    await chown(theirs, 65534, 65534);
    await assert.rejects(load(theirs), isUnsafe(theirs, /owned by uid 65534/));
  });
}

test('a state dir that cannot be created is E_STATE_DIR', async () => {
  const dir = await stateDir();
  await writeFile(join(dir, 'file'), '');
  const path = join(dir, 'file', 'state', 'ledger.jsonl');
  await assert.rejects(Ledger.open(path), (err: unknown) => err instanceof ReaperError && err.code === 'E_STATE_DIR' && err.message.includes(join(dir, 'file', 'state')));
});

// ---- read-only loading (status, doctor) ----

/** A ledger as a long-running daemon leaves it: ~10 MB of cells, tombstones and actions, no totals line yet, a torn last line. */
function bigLedgerText(): string {
  const lines: string[] = [];
  let bytes = 0;
  for (let i = 0; bytes < 10 * 1024 * 1024; i++) {
    const pid = 10_000 + (i % 30_000);
    const cell = { t: 'cell', ...sighting(pid, `sid-${i % 500}`, { startKey: `k${i}` }), firstSeen: T0 - HOUR + i, lastSeen: T0 - HOUR + i };
    const act = { t: 'action', ...action(pid, { startKey: `k${i}`, sid: `sid-${i % 500}`, reason: i % 3 ? 'evicted' : 'superseded', at: T0 - HOUR + i }) };
    const chunk = [JSON.stringify(cell), JSON.stringify(act), ...(i % 2 ? [JSON.stringify({ t: 'forget', pid, startKey: `k${i}`, at: T0 - HOUR + i })] : [])];
    if (i === 7) chunk.push('garbage from a bad disk');
    for (const l of chunk) {
      lines.push(l);
      bytes += l.length + 1;
    }
  }
  return `${lines.join('\n')}\n{"t":"action","action":"kil`;
}

test('Ledger.read loads what open loads, and leaves a 10 MB ledger byte for byte and inode unchanged', async () => {
  const dir = await stateDir();
  const path = join(dir, 'ledger.jsonl');
  const text = bigLedgerText();
  await writeFile(path, text, { mode: 0o600 });
  const before = await stat(path);
  assert.ok(before.size > 10 * 1024 * 1024);
  const n = notices();
  const view = await Ledger.read(path, { now: clock().now, onNotice: n.onNotice });
  assert.ok(view);
  assert.equal(view.corruptLines, 2, 'the garbage line and the torn last line');
  assert.equal(n.of('ledger.corrupt-line').length, 2);
  assert.equal(n.of('ledger.compacted').length, 0);

  // Same parsing as the daemon's open (run on a copy: open compacts a file this size).
  const copy = join(dir, 'copy.jsonl');
  await copyFile(path, copy);
  const opened = await Ledger.open(copy, { now: clock().now });
  const pids = [10_000, 10_001, 10_007, 25_000, 39_999];
  const sids = ['sid-0', 'sid-1', 'sid-7', 'sid-499'];
  assert.deepEqual(contents(view, pids, sids), contents(opened, pids, sids));
  assert.equal(view.corruptLines, opened.corruptLines);
  assert.ok(view.totals().killedByReason.evicted! > 10_000);
  await opened.close();
  assert.ok((await stat(copy)).size < before.size / 2, 'open does compact it (the thing read must not do)');

  const afterRead = await stat(path);
  assert.equal(afterRead.ino, before.ino, 'same inode');
  assert.equal(afterRead.size, before.size);
  assert.equal(afterRead.mtimeMs, before.mtimeMs);
  assert.ok((await readFile(path, 'utf8')) === text, 'same bytes (no totals line appended, torn line not finished)');
  assert.deepEqual((await readdir(dir)).sort(), ['copy.jsonl', 'ledger.jsonl'], 'no temp files left');

  // What it returns cannot write either, even past the type: every write path is shut.
  const asLedger = view as unknown as Ledger;
  assert.equal(asLedger.observe(sighting(777, 'sid-new')), true);
  assert.equal(await asLedger.flush(), false);
  assert.equal(await asLedger.compact(), false);
  await asLedger.close();
  assert.ok((await readFile(path, 'utf8')) === text, 'still the same bytes');
  assert.equal((await stat(path)).ino, before.ino);
});

test('Ledger.read never creates: a missing ledger or state dir is null and stays missing', async () => {
  const dir = await stateDir();
  assert.equal(await Ledger.read(join(dir, 'ledger.jsonl')), null);
  assert.deepEqual(await readdir(dir), [], 'no ledger file created');
  const nested = join(dir, 'not', 'yet');
  assert.equal(await Ledger.read(join(nested, 'ledger.jsonl')), null);
  assert.deepEqual(await readdir(dir), [], 'no state dir created');
  await writeFile(join(dir, 'file'), '');
  await assert.rejects(Ledger.read(join(dir, 'file', 'ledger.jsonl')), (err: unknown) => err instanceof ReaperError && err.code === 'E_STATE_DIR');
});

