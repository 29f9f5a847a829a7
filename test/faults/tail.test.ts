// Fault injection at the tail itself: copytruncate while FileTail is in the middle of draining
// the file (its onBatch still busy with kills) and the writer refilling the truncated file past
// the tail's read position before the tail reads again. Every line must come out exactly once:
// the old file's rest from the copy, the new content from its first byte.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileTail, type TailNotice } from '../../src/sources/file-tail.js';
import { LogWriter } from '../support/logfile.js';
import { waitFor } from '../support/sim.js';
import { Harness, report } from './support.js';

const h = new Harness();
after(() => h.cleanup());

const line = (tag: string, i: number) => `2026-05-27T12:06:18.902114Z  WARN worker.cell.evict.lru evicted_sid=${tag}-${String(i).padStart(4, '0')}`;

test('copytruncate during a drain, the file refilled past the read position: every line exactly once', async (t) => {
  const dir = h.tempDir('tail');
  const path = join(dir, 'worker.log');
  writeFileSync(path, '');
  const writer = new LogWriter(path);
  const old = Array.from({ length: 60 }, (_, i) => line('old', i));
  const fresh = Array.from({ length: 60 }, (_, i) => line('new', i));
  writer.lines(old);

  const seen: string[] = [];
  const notices: TailNotice[] = [];
  let batches = 0;
  const tail = new FileTail({
    path,
    chunkBytes: 512, // a drain of several reads, each batch handed over before the next read
    pollMs: 50,
    onNotice: (n) => notices.push(n),
    onBatch: async (b) => {
      seen.push(...b.lines);
      // While the first batch is being acted on: logrotate copytruncate, and the worker goes on
      // writing into the emptied file, more than the tail has read so far.
      if (++batches === 1) {
        copyFileSync(path, `${path}.1`);
        truncateSync(path, 0);
        writer.lines(fresh);
      }
    },
  });
  try {
    await tail.start();
    await waitFor(() => seen.length >= old.length + fresh.length, 3000);
    await new Promise((r) => setTimeout(r, 200));
  } finally {
    await tail.stop();
    writer.close();
  }
  const want = [...old, ...fresh];
  const missing = want.filter((l) => !seen.includes(l));
  const twice = seen.filter((l, i) => seen.indexOf(l) !== i);
  const torn = seen.filter((l) => !want.includes(l));
  report(t, { events: want.length, kills: 0, wrongKills: 0, misses: missing.length, delivered: seen.length, twice: twice.length, torn: torn.length, truncatedNotices: notices.filter((n) => n.event === 'tail.truncated').length });
  assert.deepEqual(missing, [], 'no line is lost');
  assert.deepEqual(torn, [], 'no torn line is handed over');
  assert.deepEqual(twice, [], 'no line is handed over twice');
});
