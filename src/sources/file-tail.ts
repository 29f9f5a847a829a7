// Follows one log file path forever and hands over each complete line exactly once, across
// rotations and restarts. chokidar only says "look now" (a poll timer backs it up, since fs
// events can be missed); every decision comes from our own stat/fstat and byte-offset reads.
import { watch, type FSWatcher } from 'chokidar';
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { LineSplitter, DEFAULT_MAX_LINE_BYTES, type LineCounts } from './lines.js';
import { errnoCode } from '../errors.js';
import { openLog } from './open-log.js';

export interface TailPosition {
  dev: number;
  ino: number;
  /** sha1 hex of the first fingerprintBytes bytes */
  fingerprint: string;
  fingerprintBytes: number;
  offset: number;
}

export interface TailBatch {
  lines: string[];
  /** position just after the last line of this batch */
  position: TailPosition;
  /** Date.now() when the batch was read */
  readAt: number;
}

export type TailNotice = {
  event: 'tail.waiting' | 'tail.opened' | 'tail.rotated' | 'tail.truncated' | 'tail.recreated' | 'tail.error' | 'tail.caught-up';
  path: string;
  [k: string]: unknown;
};

export interface FileTailOptions {
  path: string;
  /** A checkpoint from an earlier run: continue after it (in a rotated-away file if need be). */
  from?: TailPosition | null;
  onBatch: (b: TailBatch) => Promise<void>;
  onNotice?: (n: TailNotice) => void;
  pollMs?: number;
  maxLineBytes?: number;
  chunkBytes?: number;
  /** Hand over only lines holding one of these (LineSplitter markers); all lines if absent. */
  markers?: readonly string[];
  /**
   * Whether a line is the writer's own. A new file at the path is switched to only once it
   * holds one: newsyslog writes "logfile turned over" into the file it creates, while a
   * launchd job goes on writing the renamed one until it restarts. Default: any line.
   */
  isWriterLine?: (line: string) => boolean;
}

/** How much of a new file's head is searched for a writer's line before switching anyway. */
const WRITER_PROBE_BYTES = 64 * 1024;

/** How much of a file's head identifies it (beyond dev+ino, which the OS reuses). */
export const FINGERPRINT_BYTES = 1024;
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
export const MAX_BATCH_LINES = 4000;
const DEFAULT_POLL_MS = 1000;
/** Rotated files that are compressed are not logs we can read. */
const COMPRESSED = /\.(gz|bz2|xz|zst|lz4|Z|zip)$/;

/** The file being read. Once the path names another file it is "detached" but still read. */
interface Followed {
  fh: FileHandle;
  dev: number;
  ino: number;
  /** The file's first bytes as we read them (up to FINGERPRINT_BYTES), to notice a rewrite. */
  head: Buffer;
  /** Just after the last complete line whose batch was acted on. */
  offset: number;
  /** Where the next read starts: offset plus the bytes of a pending partial line. */
  readPos: number;
  /** A copytruncate copy being drained (then the truncated file at the path is next). */
  copy: boolean;
}

interface Opened {
  fh: FileHandle;
  dev: number;
  ino: number;
  size: number;
}

interface Found extends Opened {
  name: string;
}

type AtPath =
  | { kind: 'file'; dev: number; ino: number; size: number }
  | { kind: 'missing' }
  | { kind: 'unusable'; reason: string; code?: string };

export class FileTail {
  readonly path: string;
  private readonly dir: string;
  private readonly base: string;
  private readonly onBatch: (b: TailBatch) => Promise<void>;
  private readonly onNotice: (n: TailNotice) => void;
  private readonly pollMs: number;
  private readonly splitter: LineSplitter;
  private readonly buf: Buffer;
  private readonly isWriterLine: (line: string) => boolean;
  /** The file at the path last probed for a writer's line and found without one (dev:ino:size). */
  private probedWithout: string | null = null;

  /** The checkpoint still to be resolved against the files on disk (until a file is found). */
  private from: TailPosition | null;
  private searched: TailPosition | null = null;
  private committed: TailPosition | null;
  private cur: Followed | null = null;
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private wakePending = false;
  private started = false;
  private stopped = false;
  /** Last waiting/error condition reported, so a retry every pollMs does not repeat it. */
  private reported: string | null = null;
  private readonly watcherErrors = new Set<string>();

  constructor(opts: FileTailOptions) {
    this.path = resolve(opts.path);
    this.dir = dirname(this.path);
    this.base = basename(this.path);
    this.from = opts.from ?? null;
    this.committed = this.from;
    this.onBatch = opts.onBatch;
    this.onNotice = opts.onNotice ?? (() => undefined);
    this.pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
    this.splitter = new LineSplitter(opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES, opts.markers);
    this.buf = Buffer.allocUnsafe(Math.max(1, opts.chunkBytes ?? DEFAULT_CHUNK_BYTES));
    this.isWriterLine = opts.isWriterLine ?? (() => true);
  }

  /**
   * Last position whose batch's onBatch resolved: what the caller checkpoints. (It also
   * moves past oversize lines skipped after the last batch: they carry nothing to act on.)
   */
  get position(): TailPosition | null {
    return this.committed;
  }

  get counts(): Readonly<LineCounts> {
    return this.splitter.counts;
  }

  /** Resolves once the catch-up from `from` is done, or the file was found missing. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const t0 = Date.now();
    await this.ensureWatcher();
    if (this.stopped) return;
    this.timer = setInterval(() => this.kick(), this.pollMs);
    this.kick();
    await this.running;
    if (this.cur) {
      this.notice('tail.caught-up', { offset: this.cur.offset, ms: Date.now() - t0, ...this.splitter.counts });
    }
  }

  /** Stops watching; waits for an in-flight onBatch. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    // wake() does nothing once stopped, and a pass ends after its current onBatch.
    await this.running;
    await this.watcher?.close().catch(() => undefined);
    this.watcher = null;
    await this.cur?.fh.close().catch(() => undefined);
    this.cur = null;
  }

  /**
   * Watch the directory, not the file: a file watch dies with the inode it was set on.
   * chokidar 4 never notices a directory that did not exist when watched, so the watcher
   * is only made once the directory exists (until then the poll timer alone wakes us).
   */
  private async ensureWatcher(): Promise<void> {
    if (this.watcher || this.stopped) return;
    try {
      if (!(await stat(this.dir)).isDirectory()) return;
    } catch {
      return;
    }
    if (this.stopped) return;
    const { dir, base } = this;
    const watcher = watch(dir, {
      ignoreInitial: true,
      depth: 0,
      // The default atomic mode holds an unlink back 100 ms to merge it with a re-add; we
      // only want the wake-up, the sooner the better.
      atomic: false,
      // The log and its rotated siblings (`x.log.0` …): a launchd job goes on writing the renamed file.
      ignored: (p: string) => p !== dir && !basename(p).startsWith(base),
    });
    this.watcher = watcher;
    watcher.on('all', () => this.wake());
    // chokidar drops a 'change' that comes within 50 ms of the previous one for the same
    // file (and does not emit it later), so a line written just after another would wait
    // for the poll. Its 'raw' event is every native fs.watch event, unthrottled; it also
    // fires for the directory's other files, hence the name check.
    watcher.on('raw', (_event: string, evPath: string | null) => {
      if (!evPath || basename(evPath).startsWith(base)) this.wake();
    });
    // Must be listened to: chokidar emits e.g. ELOOP for a symlink loop at the path, or
    // ENOSPC when inotify watches run out. The poll timer goes on regardless.
    watcher.on('error', (err: unknown) => {
      const code = errnoCode(err) ?? String(err);
      if (this.watcherErrors.has(code)) return;
      this.watcherErrors.add(code);
      this.notice('tail.error', { reason: 'watcher error (the poll timer goes on)', code, message: String(err) });
    });
    // Changes before 'ready' are not reported (ignoreInitial); bounded, the poll backs it up.
    await new Promise<void>((done) => {
      const timer = setTimeout(done, 2000);
      watcher.once('ready', () => {
        clearTimeout(timer);
        done();
      });
    });
  }

  /** One event burst (the directory's and the file's watches both fire), one look. */
  private wake(): void {
    if (this.stopped || this.wakePending) return;
    this.wakePending = true;
    setImmediate(() => {
      this.wakePending = false;
      this.kick();
    });
  }

  // One drain at a time; a wake-up during a drain asks for one more pass.
  private kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain();
  }

  private async drain(): Promise<void> {
    try {
      do {
        this.again = false;
        try {
          await this.pass();
        } catch (err) {
          // Unexpected I/O failure (EIO, ESTALE …): say it, let go of the file and find it
          // again from the last checkpointable position on the next wake-up.
          this.report('tail.error', { reason: 'read failed', code: errnoCode(err), message: String(err) });
          await this.release();
        }
      } while (this.again && !this.stopped);
    } finally {
      this.running = null;
    }
  }

  private async pass(): Promise<void> {
    if (!this.watcher) await this.ensureWatcher();
    if (!this.cur && !(await this.acquire())) return;
    for (;;) {
      if (!this.cur || this.stopped) return;
      await this.checkRewritten(this.cur);
      const cur = this.cur;
      // Look at the path before draining: if it names a new file holding the writer's lines,
      // the writer has moved on, so whatever the old file holds after this drain is all it
      // will ever hold.
      const atPath = await lookAt(this.path);
      const same = atPath.kind === 'file' && atPath.dev === cur.dev && atPath.ino === cur.ino;
      const moved = !same && atPath.kind === 'file' && atPath.size > 0 && (await this.writerMovedTo(atPath));
      if (!(await this.readToEnd(cur))) return;
      if (same) {
        this.reported = null;
        return;
      }
      if (moved) {
        if (!(await this.switchTo(cur))) return;
        continue;
      }
      // The path is gone, empty, unusable, or holds no line of the writer yet: keep reading
      // the old file meanwhile. A writer that never reopens its stdout (launchd) goes on
      // writing there, and logrotate's `create` makes the new file before the writer reopens.
      if (atPath.kind === 'unusable') this.report('tail.error', { reason: atPath.reason, code: atPath.code, following: 'the previous file' });
      else if (atPath.kind === 'missing') this.report('tail.waiting', { following: 'the previous file' });
      return;
    }
  }

  private async release(): Promise<void> {
    const cur = this.cur;
    if (!cur) return;
    this.cur = null;
    this.splitter.reset();
    this.from = this.committed;
    await cur.fh.close().catch(() => undefined);
  }

  /** Find the file to read when none is open; false when there is none yet. */
  private async acquire(): Promise<boolean> {
    const from = this.from;
    const opened = await openRegular(this.path);
    if ('kind' in opened) {
      // Nothing usable at the path; the checkpointed file renamed away may still be read.
      // Looked for once: a renamed file does not come back (and the poll repeats this).
      const old = from && this.searched !== from ? await this.findElsewhere(from) : null;
      this.searched = from;
      if (old) return this.resume(old, from!, 'tail.rotated', { whileStopped: true });
      if (opened.kind === 'missing') this.report('tail.waiting', {});
      else this.report('tail.error', { reason: opened.reason, code: opened.code });
      return false;
    }
    this.reported = null;
    if (!from) return this.begin(opened, 'tail.opened', { size: opened.size });
    if (opened.dev === from.dev && opened.ino === from.ino) {
      const fits = await matches(opened.fh, from, opened.size);
      if (fits) return this.resume({ ...opened, name: this.base }, from, 'tail.opened', { size: opened.size });
      // Truncated while we were down; with copytruncate the copy holds what we missed.
      const copy = await this.findElsewhere(from);
      const why = { whileStopped: true, detectedBy: fits === null ? 'size' : 'fingerprint', size: opened.size, previousOffset: from.offset };
      if (copy) {
        await opened.fh.close();
        return this.resume(copy, from, 'tail.truncated', why);
      }
      return this.begin(opened, 'tail.truncated', why);
    }
    const old = await this.findElsewhere(from);
    if (old) {
      // Read the old file first; pass() switches to the path once that one is drained.
      await opened.fh.close();
      return this.resume(old, from, 'tail.rotated', { whileStopped: true });
    }
    // Lines written to it after the checkpoint are lost (compressed or deleted meanwhile).
    return this.begin(opened, 'tail.rotated', {
      whileStopped: true,
      checkpointFound: false,
      message: `checkpointed file (dev ${from.dev}, inode ${from.ino}) not found in ${this.dir}; reading ${this.base} from the start`,
      previous: { dev: from.dev, ino: from.ino, offset: from.offset },
    });
  }

  /** Follow an opened file from its start. */
  private async begin(f: Opened, event: TailNotice['event'], fields: Record<string, unknown>): Promise<true> {
    this.from = null;
    this.cur = await follow(f, 0, false);
    this.notice(event, { ...fields, dev: f.dev, ino: f.ino, offset: 0 });
    return true;
  }

  /** Follow the checkpointed content, found at the path or under another name. */
  private async resume(f: Found, from: TailPosition, event: TailNotice['event'], fields: Record<string, unknown>): Promise<true> {
    this.from = null;
    const copy = f.dev !== from.dev || f.ino !== from.ino;
    this.cur = await follow(f, from.offset, copy);
    const where = f.name === this.base ? {} : copy ? { copy: f.name } : { rotatedTo: f.name };
    this.notice(event, { ...fields, ...where, dev: f.dev, ino: f.ino, offset: from.offset });
    return true;
  }

  /**
   * The given content under another name in the same directory: the same inode renamed
   * (logrotate `x.log.1`, newsyslog `x.log.0`, dateext `x.log-20261203`), else a copy
   * (copytruncate) — same first bytes and at least `offset` long; the longest copy wins.
   */
  private async findElsewhere(known: TailPosition): Promise<Found | null> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return null;
    }
    let best: Found | null = null;
    for (const name of names) {
      if (name === this.base) continue;
      const full = join(this.dir, name);
      const at = await lookAt(full);
      if (at.kind !== 'file') continue;
      const sameInode = at.dev === known.dev && at.ino === known.ino;
      // A copy is recognised by its first bytes only, so there must be some.
      if (!sameInode && (known.fingerprintBytes === 0 || at.size < known.offset || (best && at.size <= best.size))) continue;
      const opened = await openRegular(full);
      if ('kind' in opened) continue;
      const fits = opened.dev === at.dev && opened.ino === at.ino && (await matches(opened.fh, known, opened.size));
      if (fits && sameInode) {
        await best?.fh.close();
        return { ...opened, name };
      }
      if (fits && (!best || opened.size > best.size)) {
        await best?.fh.close();
        best = { ...opened, name };
        continue;
      }
      await opened.fh.close();
    }
    return best;
  }

  /**
   * Copy-and-truncate: shorter than what we read, or (grown back past it) other first
   * bytes. What was written after our last read and before the copy is in the copy: read
   * it there first (what was written between copy and truncate is lost by logrotate).
   */
  private async checkRewritten(cur: Followed): Promise<void> {
    const { size } = await cur.fh.stat();
    let detectedBy: string | null = size < cur.readPos ? 'size' : null;
    if (!detectedBy && cur.head.length > 0) {
      const now = await readHead(cur.fh, cur.head.length);
      if (!now.equals(cur.head)) detectedBy = 'fingerprint';
    }
    if (!detectedBy) return;
    const why = { detectedBy, size, previousOffset: cur.offset };
    const known = { dev: cur.dev, ino: cur.ino, fingerprint: sha1(cur.head), fingerprintBytes: cur.head.length, offset: cur.offset };
    const copy = await this.findElsewhere(known);
    if (copy) {
      this.splitter.reset(); // a partial line is read again from the copy
      await cur.fh.close().catch(() => undefined);
      this.cur = await follow(copy, cur.offset, true);
      this.notice('tail.truncated', { ...why, copy: copy.name, dev: copy.dev, ino: copy.ino, offset: cur.offset });
      return;
    }
    this.notice('tail.truncated', { ...why, offset: 0, ...this.dropPartial(cur) });
    cur.offset = 0;
    cur.readPos = 0;
    cur.head = Buffer.alloc(0);
  }

  /** Shorter than what was just read, or other first bytes: truncated (and maybe refilled). */
  private async rewrittenUnder(cur: Followed, readTo: number): Promise<boolean> {
    const { size } = await cur.fh.stat();
    if (size < readTo) return true;
    if (cur.head.length === 0) return false;
    return !(await readHead(cur.fh, cur.head.length)).equals(cur.head);
  }

  /** Whether the new file at the path holds a line of the writer (or more than we probe). */
  private async writerMovedTo(at: { dev: number; ino: number; size: number }): Promise<boolean> {
    const key = `${at.dev}:${at.ino}:${at.size}`;
    if (key === this.probedWithout) return false;
    if (at.size > WRITER_PROBE_BYTES) return true;
    const opened = await openRegular(this.path);
    if ('kind' in opened) return false;
    try {
      const head = await readHead(opened.fh, Math.min(opened.size, WRITER_PROBE_BYTES));
      const complete = head.subarray(0, head.lastIndexOf(10) + 1).toString('utf8').split('\n');
      if (complete.some((line) => line !== '' && this.isWriterLine(line))) return true;
      this.probedWithout = key;
      return false;
    } finally {
      await opened.fh.close();
    }
  }

  /** The old file is drained; now follow the file at the path from 0. */
  private async switchTo(old: Followed): Promise<boolean> {
    const atPath = await openRegular(this.path);
    if ('kind' in atPath) return false; // changed again under us; the next pass looks anew
    // Rotated more than once since `old` was written (the daemon was down, or busy): the
    // files in between come first, oldest first, each from its start.
    const between = await this.rotatedAfter(old, atPath);
    const opened = between ?? atPath;
    if (between) await atPath.fh.close();
    const { nlink } = await old.fh.stat();
    const dropped = this.dropPartial(old);
    await old.fh.close().catch(() => undefined);
    this.cur = await follow(opened, 0, between !== null);
    if (between) {
      this.notice('tail.rotated', { previous: { dev: old.dev, ino: old.ino, offset: old.offset }, between: between.name, dev: between.dev, ino: between.ino, offset: 0, ...dropped });
      return true;
    }
    this.reported = null;
    // After a copy is drained, the truncated file was already announced.
    const event = old.copy ? 'tail.opened' : nlink === 0 ? 'tail.recreated' : 'tail.rotated';
    this.notice(event, {
      previous: { dev: old.dev, ino: old.ino, offset: old.offset },
      dev: opened.dev,
      ino: opened.ino,
      offset: 0,
      ...dropped,
    });
    return true;
  }

  /**
   * The oldest rotated sibling (`x.log.1`, `x.log-20261203`, …; not compressed) written after
   * `old` was last written, other than `old` and the file now at the path; null if none.
   */
  private async rotatedAfter(old: Followed, current: Opened): Promise<Found | null> {
    const oldMtime = (await old.fh.stat()).mtimeMs;
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return null;
    }
    let best: { name: string; mtime: number } | null = null;
    for (const name of names) {
      if (name === this.base || !name.startsWith(this.base) || COMPRESSED.test(name)) continue;
      const st = await stat(join(this.dir, name)).catch(() => null);
      if (!st || !st.isFile() || st.size === 0 || st.mtimeMs <= oldMtime) continue;
      if ((st.dev === old.dev && st.ino === old.ino) || (st.dev === current.dev && st.ino === current.ino)) continue;
      if (!best || st.mtimeMs < best.mtime) best = { name, mtime: st.mtimeMs };
    }
    if (!best) return null;
    const opened = await openRegular(join(this.dir, best.name));
    return 'kind' in opened ? null : { ...opened, name: best.name };
  }

  /** Forget a partial last line (it will never be completed in this file). */
  private dropPartial(cur: Followed): { droppedPartialBytes?: number } {
    const bytes = cur.readPos - cur.offset;
    this.splitter.reset();
    return bytes > 0 ? { droppedPartialBytes: bytes } : {};
  }

  /**
   * Read from readPos to the end, one chunk at a time, handing over complete lines in
   * batches. False when stopped or when onBatch failed (then the batch is read again on
   * the next wake-up: an eviction not acted on must not be skipped).
   */
  private async readToEnd(cur: Followed): Promise<boolean> {
    for (;;) {
      if (this.stopped) return false;
      const chunkStart = cur.readPos;
      const { bytesRead } = await cur.fh.read(this.buf, 0, this.buf.length, chunkStart);
      if (bytesRead === 0) return true;
      const readAt = Date.now();
      // Copytruncate between two reads, refilled past our position: this chunk is the new
      // file's middle. Drop it; the next pass finds the copy (checkRewritten) and reads on.
      if (await this.rewrittenUnder(cur, chunkStart + bytesRead)) {
        this.again = true;
        return true;
      }
      const chunk = this.buf.subarray(0, bytesRead);
      const have = cur.head.length;
      if (have < FINGERPRINT_BYTES && chunkStart <= have && chunkStart + bytesRead > have) {
        cur.head = Buffer.concat([cur.head, chunk.subarray(have - chunkStart, FINGERPRINT_BYTES - chunkStart)]);
      }
      const lines: string[] = [];
      const ends: number[] = [];
      this.splitter.push(chunk, (line, end) => {
        lines.push(line);
        ends.push(chunkStart + end);
      });
      cur.readPos += bytesRead;
      const lastNewline = chunk.lastIndexOf(10);
      if (lastNewline < 0) continue;
      // Past the last newline, including any oversize line skipped after the last emitted one.
      const chunkEnd = chunkStart + lastNewline + 1;
      if (lines.length === 0) {
        cur.offset = chunkEnd;
        this.committed = positionOf(cur, chunkEnd);
        continue;
      }
      for (let i = 0; i < lines.length; i += MAX_BATCH_LINES) {
        const batch = lines.slice(i, i + MAX_BATCH_LINES);
        const end = i + MAX_BATCH_LINES >= lines.length ? chunkEnd : ends[i + batch.length - 1]!;
        const position = positionOf(cur, end);
        try {
          await this.onBatch({ lines: batch, position, readAt });
        } catch (err) {
          this.notice('tail.error', { reason: 'onBatch failed; the batch will be read again', message: String(err), offset: cur.offset });
          this.splitter.reset();
          cur.readPos = cur.offset;
          return false;
        }
        cur.offset = end;
        this.committed = position;
        if (this.stopped) return false;
      }
    }
  }

  private notice(event: TailNotice['event'], fields: Record<string, unknown>): void {
    try {
      this.onNotice({ ...fields, event, path: this.path });
    } catch {
      // A throwing logger must not stop the tail.
    }
  }

  /** A waiting/error condition, said once until it changes or clears. */
  private report(event: 'tail.waiting' | 'tail.error', fields: Record<string, unknown>): void {
    const key = `${event}:${String(fields.reason ?? '')}:${String(fields.code ?? '')}`;
    if (this.reported === key) return;
    this.reported = key;
    this.notice(event, { ...fields, retryMs: this.pollMs });
  }
}

function positionOf(cur: Followed, offset: number): TailPosition {
  const bytes = Math.min(cur.head.length, offset);
  return { dev: cur.dev, ino: cur.ino, fingerprint: sha1(cur.head.subarray(0, bytes)), fingerprintBytes: bytes, offset };
}

async function follow(f: Opened, offset: number, copy: boolean): Promise<Followed> {
  const head = await readHead(f.fh, Math.min(FINGERPRINT_BYTES, offset));
  return { fh: f.fh, dev: f.dev, ino: f.ino, head, offset, readPos: offset, copy };
}

/** Same first bytes as the checkpoint and long enough for its offset; null when too short. */
async function matches(fh: FileHandle, from: TailPosition, size: number): Promise<boolean | null> {
  if (size < from.offset || size < from.fingerprintBytes) return null;
  const head = await readHead(fh, from.fingerprintBytes);
  return head.length === from.fingerprintBytes && sha1(head) === from.fingerprint;
}

async function readHead(fh: FileHandle, bytes: number): Promise<Buffer> {
  const head = Buffer.alloc(bytes);
  let got = 0;
  while (got < bytes) {
    const { bytesRead } = await fh.read(head, got, bytes - got, got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return head.subarray(0, got);
}

function sha1(bytes: Buffer): string {
  return createHash('sha1').update(bytes).digest('hex');
}

/** stat (following symlinks) without opening: opening a FIFO would block. */
async function lookAt(path: string): Promise<AtPath> {
  try {
    const st = await stat(path);
    if (st.isFile()) return { kind: 'file', dev: st.dev, ino: st.ino, size: st.size };
    return { kind: 'unusable', reason: notRegular(st) };
  } catch (err) {
    return unusable(err);
  }
}

/**
 * Open for reading only if it is a regular file. O_NONBLOCK as well as the stat first: a
 * FIFO swapped in between the two must not hang the open (for a regular file it is a no-op).
 */
async function openRegular(path: string): Promise<Opened | Exclude<AtPath, { kind: 'file' }>> {
  const at = await lookAt(path);
  if (at.kind !== 'file') return at;
  let fh: FileHandle;
  try {
    fh = await openLog(path);
  } catch (err) {
    return unusable(err);
  }
  try {
    const st = await fh.stat();
    if (st.isFile()) return { fh, dev: st.dev, ino: st.ino, size: st.size };
    await fh.close();
    return { kind: 'unusable', reason: notRegular(st) };
  } catch (err) {
    await fh.close().catch(() => undefined);
    return unusable(err);
  }
}

function notRegular(st: import('node:fs').Stats): string {
  if (st.isDirectory()) return 'is a directory';
  if (st.isFIFO()) return 'is a FIFO';
  if (st.isSocket()) return 'is a socket';
  return 'is not a regular file';
}

function unusable(err: unknown): Exclude<AtPath, { kind: 'file' }> {
  const code = errnoCode(err);
  if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
  if (code === 'ELOOP') return { kind: 'unusable', reason: 'symlink loop', code };
  if (code === 'EACCES' || code === 'EPERM') return { kind: 'unusable', reason: 'permission denied', code };
  return { kind: 'unusable', reason: String(err), code };
}
