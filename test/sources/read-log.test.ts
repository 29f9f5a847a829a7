import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, appendFileSync, openSync, writeSync, closeSync, mkdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { readFileSince, readLogSince, startOffsetSince } from '../../src/sources/read-log.js';
import { positionAt } from '../../src/sources/checkpoint.js';

const dir = mkdtempSync(join(tmpdir(), 'hum-reaper-log-'));
const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);
const ts = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
const evict = (ms: number, sid: string) => `\x1b[2m${ts(ms)}\x1b[0m \x1b[33m WARN\x1b[0m worker.cell.evict.lru \x1b[3mevicted_sid\x1b[0m\x1b[2m=\x1b[0m${sid}\n`;
const trace = (ms: number, i: number) => `${ts(ms)} TRACE worker.cell.reused sid=sid-filler-${i}\n`;

test('reads only the tail since the cutoff of a large log (bounded work)', () => {
  const path = join(dir, 'big.log');
  const fd = openSync(path, 'w');
  // ~40 MB of old lines (an hour before), then recent evictions.
  const old = Array.from({ length: 5000 }, (_, i) => trace(T0 - 3_600_000 + i, i)).join('');
  for (let i = 0; i < 160; i++) writeSync(fd, old);
  for (let i = 0; i < 10; i++) writeSync(fd, evict(T0 + i * 1000, `sid-new-${i}`));
  closeSync(fd);
  return readFileSince(path, T0).then((r) => {
    assert.equal(r.complete, true);
    assert.deepEqual(r.events.filter((e) => e.kind === 'evicted').map((e) => (e as { sid: string }).sid), Array.from({ length: 10 }, (_, i) => `sid-new-${i}`));
    assert.ok(r.bytes < 4 << 20, `read ${r.bytes} bytes of a ${160 * old.length} byte file`);
  });
});

test('from the start when the whole log is recent; partial last line ignored; CRLF ok', async () => {
  const path = join(dir, 'partial.log');
  writeFileSync(path, evict(T0, 'sid-a').replace('\n', '\r\n') + evict(T0 + 1, 'sid-b') + evict(T0 + 2, 'sid-c').slice(0, 40));
  const r = await readFileSince(path, T0 + 1000);
  assert.deepEqual(r.events.map((e) => (e as { sid: string }).sid), ['sid-a', 'sid-b']);
});

test('garbage, binary, invalid UTF-8 and 10 MB lines are skipped and counted', async () => {
  const path = join(dir, 'junk.log');
  writeFileSync(path, evict(T0, 'sid-a'));
  appendFileSync(path, Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x0a]));
  appendFileSync(path, 'not a log line at all\n');
  appendFileSync(path, `${ts(T0)}  WARN worker.cell.evict.lru evicted_sid=${'x'.repeat(10 << 20)}\n`);
  appendFileSync(path, Buffer.concat([Buffer.from(`${ts(T0 + 5)}  WARN worker.cell.evict.lru evicted_sid=sid-`), Buffer.from([0xc3, 0x28]), Buffer.from('\n')]));
  appendFileSync(path, evict(T0 + 9, 'sid-z'));
  const r = await readFileSince(path, T0);
  assert.deepEqual(r.events.map((e) => (e as { sid: string }).sid), ['sid-a', 'sid-z']);
  assert.equal(r.counts.oversize, 1);
  // Lines without an event marker are passed over undecoded; decoding all of them counts the junk.
  const every = await readFileSince(path, T0, { everyLine: true });
  assert.deepEqual(every.events.map((e) => (e as { sid: string }).sid), ['sid-a', 'sid-z']);
  assert.equal(every.counts.oversize, 1);
  assert.ok(every.counts.skipped >= 2, `skipped ${every.counts.skipped}`);
});

test('a missing log, or a directory, is a warning naming the path and an incomplete read', async () => {
  const missing = await readLogSince({ type: 'file', path: join(dir, 'nope.log') }, T0);
  assert.equal(missing.complete, false);
  assert.match(missing.warnings[0]!, /nope\.log.*ENOENT/);
  const d = join(dir, 'adir');
  mkdirSync(d);
  const asDir = await readLogSince({ type: 'file', path: d }, T0);
  assert.equal(asDir.complete, false);
  assert.match(asDir.warnings[0]!, /adir/);
});

test('command source: stdout is the log; a missing or failing command is a warning', async () => {
  const path = join(dir, 'cmd.log');
  writeFileSync(path, evict(T0, 'sid-cmd'));
  const ok = await readLogSince({ type: 'command', argv: ['cat', path], followArgv: ['tail', '-f', path] }, T0);
  assert.equal(ok.complete, true);
  assert.deepEqual(ok.events.map((e) => (e as { sid: string }).sid), ['sid-cmd']);
  const missing = await readLogSince({ type: 'command', argv: ['/nonexistent/journalctl'], followArgv: ['x'] }, T0);
  assert.equal(missing.complete, false);
  assert.match(missing.warnings[0]!, /not found/);
  const failing = await readLogSince({ type: 'command', argv: ['sh', '-c', 'echo boom >&2; exit 3'], followArgv: ['x'] }, T0);
  assert.equal(failing.complete, false);
  assert.match(failing.warnings[0]!, /exited with 3: boom/);
});

test('marker scanning finds exactly the event lines a full decode finds, across chunk boundaries', async () => {
  const path = join(dir, 'mixed.log');
  const fd = openSync(path, 'w');
  const want: string[] = [];
  for (let i = 0; i < 30_000; i++) {
    // Lines of varying length so events straddle the 1 MiB read chunks.
    writeSync(fd, `${ts(T0 + i)} TRACE worker.stream.delta sid=sid-x-${i} bytes=${'y'.repeat(i % 97)}\n`);
    if (i % 7 === 0) {
      writeSync(fd, evict(T0 + i, `sid-e-${i}`));
      want.push(`sid-e-${i}`);
    }
    if (i % 11 === 0) writeSync(fd, `{"timestamp":"${ts(T0 + i)}","level":"TRACE","fields":{"message":"spawned pid=Some(${1000 + i})"}}\n`);
  }
  closeSync(fd);
  const fast = await readFileSince(path, -Infinity);
  const full = await readFileSince(path, -Infinity, { everyLine: true });
  assert.deepEqual(fast.events.filter((e) => e.kind === 'evicted').map((e) => (e as { sid: string }).sid), want);
  const strip = (es: typeof fast.events) => es.filter((e) => e.kind !== 'cell-reused').map(({ seq: _s, ...e }) => e);
  assert.deepEqual(strip(fast.events), strip(full.events));
  assert.equal(fast.events.filter((e) => e.kind === 'spawned-pid').length, Math.ceil(30_000 / 11));
});

test('a FIFO where the log should be: a warning at once, not a read that waits for a writer', async () => {
  const fifo = join(dir, 'worker.fifo');
  execFileSync('mkfifo', [fifo]);
  const r = await readFileSince(fifo, T0);
  assert.equal(r.complete, false);
  assert.match(r.warnings.join('\n'), /worker\.fifo: not a regular file/);
  assert.equal(await startOffsetSince(fifo, T0), 0);
  assert.equal(await positionAt(fifo, 100), null);
});

test('JSON lines longer than the 512 bytes the walk-back looks at: still only the tail is read', async () => {
  const path = join(dir, 'long-json.log');
  const json = (ms: number, sid: string, pad: number) =>
    `${JSON.stringify({ timestamp: ts(ms), level: 'WARN', fields: { message: 'worker.cell.evict.lru', evicted_sid: sid, detail: 'x'.repeat(pad) } })}\n`;
  const fd = openSync(path, 'w');
  for (let i = 0; i < 8000; i++) writeSync(fd, json(T0 - 3_600_000 + i, `sid-old-${i}`, 700));
  for (let i = 0; i < 5; i++) writeSync(fd, json(T0 + i, `sid-new-${i}`, 700));
  closeSync(fd);
  const r = await readFileSince(path, T0);
  assert.deepEqual(r.events.map((e) => (e as { sid: string }).sid).filter((s) => s.startsWith('sid-new')), Array.from({ length: 5 }, (_, i) => `sid-new-${i}`));
  assert.ok(r.bytes <= 2 << 20, `read ${r.bytes} bytes of ${statSync(path).size}`);
});
