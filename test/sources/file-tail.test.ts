import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, rmdirSync, statSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileTail, MAX_BATCH_LINES, type TailBatch, type TailNotice, type TailPosition } from '../../src/sources/file-tail.js';
import { LogWriter, evictionLines, rotate } from '../support/logfile.js';
import { parseLogLine } from '../../src/events/parse.js';
import { sleep, waitFor } from '../support/sim.js';

const root = mkdtempSync(join(tmpdir(), 'hum-reaper-tail-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
/** A fresh directory and the log path in it, so no test sees another's rotations. */
function logPath(): string {
  const dir = join(root, `t${++dirs}`);
  mkdirSync(dir);
  return join(dir, 'worker.out.log');
}

interface Run {
  tail: FileTail;
  /** Lines of batches whose onBatch resolved, in order. */
  lines: string[];
  batches: TailBatch[];
  notices: TailNotice[];
}

type TailOpts = { path: string; from?: TailPosition | null; pollMs?: number; chunkBytes?: number; onBatch?: (b: TailBatch, run: Run) => Promise<void>; isWriterLine?: (line: string) => boolean };

async function withTail(opts: TailOpts, body: (run: Run) => Promise<void>): Promise<TailPosition | null> {
  const run = { lines: [], batches: [], notices: [] } as unknown as Run;
  run.tail = new FileTail({
    path: opts.path,
    from: opts.from ?? null,
    pollMs: opts.pollMs ?? 50,
    ...(opts.chunkBytes ? { chunkBytes: opts.chunkBytes } : {}),
    ...(opts.isWriterLine ? { isWriterLine: opts.isWriterLine } : {}),
    onBatch: async (b) => {
      await opts.onBatch?.(b, run);
      run.batches.push(b);
      run.lines.push(...b.lines);
    },
    onNotice: (n) => run.notices.push(n),
  });
  try {
    await run.tail.start();
    await body(run);
  } finally {
    await run.tail.stop();
  }
  return run.tail.position;
}

/** Wait for at least the expected lines, give doubles time to show up, then compare exactly. */
async function expectLines(run: Run, expected: readonly string[]): Promise<void> {
  const ok = await waitFor(() => run.lines.length >= expected.length, 5000);
  if (ok) await sleep(150);
  assert.deepEqual(run.lines, expected, `got ${run.lines.length} lines, expected ${expected.length}`);
}

const events = (run: Run) => run.notices.map((n) => n.event);
const notice = (run: Run, event: TailNotice['event']) => run.notices.find((n) => n.event === event);
const waitNotice = (run: Run, event: TailNotice['event'], pred: (n: TailNotice) => boolean = () => true) =>
  waitFor(() => run.notices.some((n) => n.event === event && pred(n)), 5000);

test('growth: partial lines in pieces are emitted once complete; offset = bytes of complete lines', async () => {
  const path = logPath();
  const w = new LogWriter(path);
  try {
    // A tiny chunk size puts line ends and a multi-byte character across read boundaries.
    await withTail({ path, chunkBytes: 7 }, async (run) => {
      w.write('one\ntw');
      await expectLines(run, ['one']);
      assert.equal(run.tail.position?.offset, 4);
      w.write('o\nthr');
      await expectLines(run, ['one', 'two']);
      assert.equal(run.tail.position?.offset, 8);
      const e = Buffer.from('ée\n');
      w.write(Buffer.concat([Buffer.from('ee '), e.subarray(0, 1)]));
      await sleep(120);
      assert.deepEqual(run.lines, ['one', 'two'], 'nothing until the newline');
      w.write(e.subarray(1));
      await expectLines(run, ['one', 'two', 'three ée']);
      assert.equal(run.tail.position?.offset, statSync(path).size);
      w.write('four');
      await sleep(150);
      assert.equal(run.tail.position?.offset, statSync(path).size - 4, 'the partial line is not counted');
      const offsets = run.batches.map((b) => b.position.offset);
      assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b));
      assert.equal(new Set(offsets).size, offsets.length, 'every batch moves on');
    });
  } finally {
    w.close();
  }
});

test('lines in quick succession each arrive on fs events alone (chokidar throttles its change events)', async () => {
  const path = logPath();
  const w = new LogWriter(path);
  const lines = evictionLines('quick', 15);
  try {
    await withTail({ path, pollMs: 60_000 }, async (run) => {
      for (const line of lines) {
        w.lines([line]);
        await sleep(10);
      }
      await expectLines(run, lines);
    });
  } finally {
    w.close();
  }
});

test('a large catch-up is many capped batches; each is acted on before the next and position follows', async () => {
  const path = logPath();
  const expected = evictionLines('sid-catchup', 5 * MAX_BATCH_LINES);
  writeFileSync(path, expected.map((l) => `${l}\n`).join(''));
  let seen: TailPosition | null = null;
  let overlapping = 0;
  let inFlight = false;
  const finalPos = await withTail(
    {
      path,
      onBatch: async (b, run) => {
        if (inFlight) overlapping++;
        inFlight = true;
        assert.deepEqual(run.tail.position, seen, 'position moves only after onBatch resolves');
        await sleep(2);
        assert.deepEqual(run.tail.position, seen);
        seen = b.position;
        inFlight = false;
      },
    },
    async (run) => {
      // start() resolved: the catch-up is done already.
      assert.equal(run.lines.length, expected.length);
      assert.deepEqual(run.lines, expected);
      assert.ok(run.batches.length >= 5, `${run.batches.length} batches`);
      assert.ok(run.batches.every((b) => b.lines.length <= MAX_BATCH_LINES));
      assert.equal(overlapping, 0);
      assert.ok(notice(run, 'tail.caught-up'));
    },
  );
  assert.equal(finalPos?.offset, statSync(path).size);
});

test('a failed onBatch is offered again, never skipped, and position does not pass it', async () => {
  const path = logPath();
  const w = new LogWriter(path);
  let failures = 0;
  try {
    await withTail(
      {
        path,
        onBatch: async (b) => {
          if (b.lines.includes('b') && failures < 2) {
            failures++;
            throw new Error('disk full');
          }
        },
      },
      async (run) => {
        w.lines(['a']);
        await expectLines(run, ['a']);
        const before = run.tail.position;
        w.lines(['b']);
        await waitFor(() => failures === 2, 3000);
        assert.ok(run.notices.some((n) => n.event === 'tail.error' && /onBatch/.test(String(n.reason))));
        w.lines(['c']);
        await expectLines(run, ['a', 'b', 'c']);
        assert.ok((run.tail.position?.offset ?? 0) > (before?.offset ?? 0));
      },
    );
  } finally {
    w.close();
  }
});

test('rename-and-create in quick succession: old lines, then the new file, exactly once', async () => {
  const path = logPath();
  const w = new LogWriter(path);
  const [a1, a2, a3, a4] = [evictionLines('a', 2), evictionLines('a-late', 3), evictionLines('b', 3), evictionLines('b-late', 2)];
  try {
    await withTail({ path }, async (run) => {
      w.lines(a1);
      await expectLines(run, a1);
      // All in one tick: the tail has no chance to look before the rotation.
      w.lines(a2);
      rotate.rename(path);
      w.reopen();
      w.lines(a3);
      await expectLines(run, [...a1, ...a2, ...a3]);
      w.lines(a4);
      await expectLines(run, [...a1, ...a2, ...a3, ...a4]);
      assert.equal(events(run).filter((e) => e === 'tail.rotated').length, 1);
    });
  } finally {
    w.close();
  }
});

test('rename-and-create with delays: the writer keeps writing the old file until it reopens', async () => {
  const path = logPath();
  const w = new LogWriter(path);
  const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map((p) => evictionLines(p, 2)) as [string[], string[], string[], string[], string[]];
  try {
    await withTail({ path }, async (run) => {
      w.lines(a);
      await expectLines(run, a);
      w.lines(b);
      await sleep(60);
      rotate.rename(path);
      await sleep(120); // the tail sees no file at the path
      w.lines(c); // written to the renamed file, as a not-yet-reopened writer does
      await sleep(120);
      rotate.create(path); // logrotate's `create`, before the writer reopens
      await sleep(120);
      w.lines(d); // still the old file
      await sleep(120);
      w.reopen();
      w.lines(e);
      await expectLines(run, [...a, ...b, ...c, ...d, ...e]);
      const rotated = notice(run, 'tail.rotated');
      assert.ok(rotated);
      assert.equal((rotated.previous as TailPosition).offset, statSync(`${path}.1`).size);
    });
  } finally {
    w.close();
  }
});

const TURNOVER = 'Dec  4 00:00:00 mac newsyslog[123]: logfile turned over';
/** newsyslog's rotation: rename, create, and (without its B flag) a line of its own. */
function newsyslogRotate(path: string): void {
  renameSync(path, `${path}.0`);
  writeFileSync(path, `${TURNOVER}\n`);
}
const isWorkerLine = (line: string) => parseLogLine(line) !== null;

test('newsyslog under launchd: the new file holds only the turnover line, the worker goes on writing the renamed one', async () => {
  const path = logPath();
  const w = new LogWriter(path); // launchd opened the job's stdout once; it is never reopened
  const [a, b, z, c] = [evictionLines('a', 2), evictionLines('b', 2), evictionLines('z', 2), evictionLines('c', 2)];
  try {
    await withTail({ path, isWriterLine: isWorkerLine }, async (run) => {
      w.lines(a);
      await expectLines(run, a);
      newsyslogRotate(path);
      await sleep(200);
      w.lines(b); // the worker still writes the renamed file
      await expectLines(run, [...a, ...b]);
      unlinkSync(`${path}.0`); // compressed away (newsyslog Z): the worker's fd and ours live on
      w.lines(z);
      await expectLines(run, [...a, ...b, ...z]);
      assert.equal(events(run).filter((e) => e === 'tail.rotated').length, 0, 'still on the renamed file');
      w.reopen(); // the worker restarted: launchd opens the path anew
      w.lines(c);
      await expectLines(run, [...a, ...b, ...z, TURNOVER, ...c]);
      // The file it leaves is deleted by then: "recreated", as after delete-and-recreate.
      assert.deepEqual(events(run).filter((e) => e === 'tail.rotated' || e === 'tail.recreated'), ['tail.recreated']);
    });
  } finally {
    w.close();
  }
});

test('writes to the renamed file wake the tail at once, not at the next poll', async () => {
  const path = logPath();
  const w = new LogWriter(path);
  const [a, b] = [evictionLines('a', 1), evictionLines('b', 1)];
  try {
    await withTail({ path, pollMs: 10_000, isWriterLine: isWorkerLine }, async (run) => {
      w.lines(a);
      await expectLines(run, a);
      newsyslogRotate(path);
      await sleep(300);
      w.lines(b); // to the renamed file
      assert.ok(await waitFor(() => run.lines.length === 2, 2000), 'read within 2 s with a 10 s poll');
    });
  } finally {
    w.close();
  }
});

test('copy-and-truncate: lines written just before the copy are read from the copy, then the new lines', async () => {
  const path = logPath();
  const w = new LogWriter(path);
  const [a, b, c] = [evictionLines('a', 3), evictionLines('b', 2), ['short']];
  try {
    await withTail({ path }, async (run) => {
      w.lines(a);
      await expectLines(run, a);
      w.lines(b); // not read yet when the copy is made
      rotate.copyTruncate(path);
      w.lines(c); // O_APPEND: lands at the new end, 0
      await expectLines(run, [...a, ...b, ...c]);
      const t = notice(run, 'tail.truncated');
      assert.equal(t?.copy, 'worker.out.log.1');
      w.lines(['after']);
      await expectLines(run, [...a, ...b, ...c, 'after']);
    });
  } finally {
    w.close();
  }
});

test('truncated and regrown past the old offset before we looked: caught by the fingerprint', async () => {
  const path = logPath();
  const w = new LogWriter(path);
  const [a, b] = [evictionLines('a', 2), evictionLines('b', 5)];
  try {
    // No polling to speak of: the wake-up must come from chokidar, after the whole change.
    await withTail({ path, pollMs: 60_000 }, async (run) => {
      w.lines(a);
      await expectLines(run, a);
      await sleep(100);
      // `: > log` with no copy, then more than was there, in one tick.
      truncateSync(path, 0);
      w.lines(b);
      assert.ok(statSync(path).size > a.join('\n').length + 1);
      await expectLines(run, [...a, ...b]);
      const t = notice(run, 'tail.truncated');
      assert.equal(t?.detectedBy, 'fingerprint');
      assert.equal(run.tail.position?.offset, statSync(path).size);
    });
  } finally {
    w.close();
  }
});

test('delete-and-recreate: the unlinked file is drained, then the new one', async () => {
  const path = logPath();
  const w = new LogWriter(path);
  const [a, b, c] = [evictionLines('a', 2), evictionLines('b', 2), evictionLines('c', 2)];
  try {
    await withTail({ path }, async (run) => {
      w.lines(a);
      await expectLines(run, a);
      w.lines(b);
      rotate.remove(path);
      await sleep(100);
      w.reopen();
      w.lines(c);
      await expectLines(run, [...a, ...b, ...c]);
      assert.ok(notice(run, 'tail.recreated'));
    });
  } finally {
    w.close();
  }
});

test('file missing at start: waiting, then read from its start once created', async () => {
  const path = join(logPath(), '..', 'later', 'worker.out.log'); // its directory is missing too
  await withTail({ path }, async (run) => {
    assert.deepEqual(events(run), ['tail.waiting']);
    assert.equal(run.tail.position, null);
    mkdirSync(join(path, '..'));
    writeFileSync(path, 'first\nsecond\n');
    await expectLines(run, ['first', 'second']);
    assert.ok(notice(run, 'tail.opened'));
  });
});

test('restart from a checkpoint: only the lines written since, a partial line completed later included', async () => {
  const path = logPath();
  const w = new LogWriter(path);
  try {
    const pos = await withTail({ path }, async (run) => {
      w.lines(['a1', 'a2']);
      w.write('a3-part');
      await expectLines(run, ['a1', 'a2']);
    });
    assert.equal(pos?.offset, 6);
    w.write('ial\n');
    w.lines(['b1']);
    await withTail({ path, from: pos }, async (run) => {
      await expectLines(run, ['a3-partial', 'b1']);
      assert.equal(notice(run, 'tail.opened')?.offset, 6);
      w.lines(['b2']);
      await expectLines(run, ['a3-partial', 'b1', 'b2']);
    });
  } finally {
    w.close();
  }
});

/** Read `before`, stop, let `whileDown` change the log, then start again from the checkpoint. */
async function restartAcross(before: string[], whileDown: (w: LogWriter, path: string) => void, after: (run: Run) => Promise<void>): Promise<void> {
  const path = logPath();
  const w = new LogWriter(path);
  try {
    const pos = await withTail({ path }, async (run) => {
      w.lines(before);
      await expectLines(run, before);
    });
    whileDown(w, path);
    await withTail({ path, from: pos }, after);
  } finally {
    w.close();
  }
}

test('restart after a rename rotation while stopped: the rest of the old file, then the new one', async () => {
  const [a, a2, b] = [evictionLines('a', 3), evictionLines('a-down', 2), evictionLines('b', 3)];
  await restartAcross(
    a,
    (w, path) => {
      w.lines(a2);
      rotate.rename(path);
      w.reopen();
      w.lines(b);
    },
    async (run) => {
      await expectLines(run, [...a2, ...b]);
      const r = notice(run, 'tail.rotated');
      assert.equal(r?.whileStopped, true);
      assert.equal(r?.rotatedTo, 'worker.out.log.1');
    },
  );
});

test('restart after copy-and-truncate while stopped: the rest from the copy, then the truncated file', async () => {
  const [a, a2, b] = [evictionLines('a', 3), evictionLines('a-down', 2), evictionLines('b', 6)];
  await restartAcross(
    a,
    (w, path) => {
      w.lines(a2);
      rotate.copyTruncate(path, `${path}-20261203`);
      w.lines(b); // longer than before: only the fingerprint tells
    },
    async (run) => {
      await expectLines(run, [...a2, ...b]);
      const t = notice(run, 'tail.truncated');
      assert.equal(t?.whileStopped, true);
      assert.equal(t?.copy, 'worker.out.log-20261203');
    },
  );
});

test('restart when the checkpointed file is gone (compressed away): the current file from 0, said so', async () => {
  await restartAcross(
    ['a1'],
    (w, path) => {
      rotate.rename(path);
      w.reopen();
      w.lines(['b1', 'b2']);
      unlinkSync(`${path}.1`); // after the new file exists, so ext4 cannot hand its inode number on
    },
    async (run) => {
      await expectLines(run, ['b1', 'b2']);
      assert.equal(notice(run, 'tail.rotated')?.checkpointFound, false);
    },
  );
});

test('a checkpoint whose inode number was reused by a new file: the fingerprint says it is another file', async () => {
  const path = logPath();
  writeFileSync(path, 'b1\nb2\n');
  const { dev, ino } = statSync(path);
  // As ext4 does after `rm` + a new file: same dev+ino, other content.
  const from: TailPosition = { dev, ino, fingerprint: createHash('sha1').update('a1\n').digest('hex'), fingerprintBytes: 3, offset: 3 };
  await withTail({ path, from }, async (run) => {
    await expectLines(run, ['b1', 'b2']);
    assert.equal(notice(run, 'tail.truncated')?.detectedBy, 'fingerprint');
  });
});

test('the path becomes a directory: error notice, old lines kept, recovery when a file reappears', async () => {
  const path = logPath();
  const w = new LogWriter(path);
  try {
    await withTail({ path }, async (run) => {
      w.lines(['a1']);
      await expectLines(run, ['a1']);
      rotate.remove(path);
      mkdirSync(path);
      assert.ok(await waitNotice(run, 'tail.error', (n) => n.reason === 'is a directory'));
      w.lines(['a2']); // the writer still has the unlinked file
      await expectLines(run, ['a1', 'a2']);
      rmdirSync(path);
      w.reopen();
      w.lines(['b1']);
      await expectLines(run, ['a1', 'a2', 'b1']);
    });
  } finally {
    w.close();
  }
});

test('a FIFO at the path is never opened: error notice at start and later, then recovery', async () => {
  const path = logPath();
  execFileSync('mkfifo', [path]);
  await withTail({ path }, async (run) => {
    // start() resolved although opening a FIFO for reading would block.
    assert.equal(notice(run, 'tail.error')?.reason, 'is a FIFO');
    unlinkSync(path);
    writeFileSync(path, 'a1\n');
    await expectLines(run, ['a1']);
    unlinkSync(path);
    execFileSync('mkfifo', [path]);
    assert.ok(await waitNotice(run, 'tail.error', (n) => n.reason === 'is a FIFO' && run.notices.indexOf(n) > 1));
    unlinkSync(path);
    writeFileSync(path, 'b1\n');
    await expectLines(run, ['a1', 'b1']);
  });
});

test('a symlink loop at the path: error notice, no crash, recovery', async () => {
  const path = logPath();
  symlinkSync('worker.out.log', path);
  await withTail({ path }, async (run) => {
    assert.ok(await waitNotice(run, 'tail.error', (n) => n.reason === 'symlink loop'));
    unlinkSync(path);
    writeFileSync(path, 'a1\n');
    await expectLines(run, ['a1']);
  });
});

test('permission denied: error notice, then recovery', { skip: process.getuid?.() === 0 && 'root reads any file' }, async () => {
  const path = logPath();
  writeFileSync(path, 'a1\n');
  chmodSync(path, 0o000);
  await withTail({ path }, async (run) => {
    assert.equal(notice(run, 'tail.error')?.code, 'EACCES');
    chmodSync(path, 0o644);
    await expectLines(run, ['a1']);
  });
});

test('a 2 MB line is skipped and counted; the next line arrives; offset covers both', async () => {
  const path = logPath();
  const w = new LogWriter(path);
  try {
    await withTail({ path }, async (run) => {
      w.lines(['before']);
      await expectLines(run, ['before']);
      w.write(`${'x'.repeat(2 << 20)}\n`);
      w.lines(['after']);
      await expectLines(run, ['before', 'after']);
      assert.equal(run.tail.counts.oversize, 1);
      assert.equal(run.tail.position?.offset, statSync(path).size);
    });
  } finally {
    w.close();
  }
});
