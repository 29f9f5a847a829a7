import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { ReaperError, errnoCode } from '../errors.js';
import { writeFileAtomic } from '../service/atomic.js';

// The sid→pid ledger: every worker child the daemon has seen and every action it took, so an
// eviction line is resolved to its pid from memory, without a full `ps` on the hot path.
//
// The ledger is never trusted alone. A pid read from it is only a candidate: the daemon
// re-reads that pid's live identity (pid + start key + argv) right before any signal, so a
// stale, forged or recycled entry can cost a wasted read, never a wrong kill.
//
// On disk: append-only JSON lines, compacted (write-temp + fsync + rename) when the file
// outgrows maxBytes and at least once per retention period.

const time = z.number().nonnegative();
const count = z.number().int().nonnegative();
const pid = z.number().int().positive();
const startKey = z.string().min(1);

// z.object, not strictObject: a field added by a newer version must not turn its lines into
// "corrupt" ones for an older one reading the same file.
export const CellRecordSchema = z.object({
  t: z.literal('cell'),
  sid: z.string().min(1),
  sessionUuid: z.string().nullable(),
  bridgePort: z.number().int().min(1).max(65535),
  pid,
  startKey,
  startedAt: time,
  ppid: z.number().int().nonnegative(),
  firstSeen: time,
  lastSeen: time,
});

export const ActionRecordSchema = z.object({
  t: z.literal('action'),
  action: z.enum(['killed', 'failed', 'gone', 'skipped', 'would-kill']),
  pid,
  startKey,
  sid: z.string().min(1),
  /** An OrphanReason, or why it was skipped; a plain string so new reasons stay readable. */
  reason: z.string().min(1),
  at: time,
  signal: z.enum(['SIGTERM', 'SIGKILL']).optional(),
  rssBytes: count.optional(),
  /** From the log line's own timestamp to the signal. */
  latencyMs: z.number().optional(),
  error: z.string().optional(),
});

export const SweepRecordSchema = z.object({
  t: z.literal('sweep'),
  at: time,
  durationMs: time,
  orphans: count,
  killed: count,
});

/** Lifetime counts. A totals line covers every action before it in the file. */
export const TotalsRecordSchema = z.object({
  t: z.literal('totals'),
  since: time,
  killedByReason: z.record(z.string(), count),
  failed: count,
  gone: count,
  skipped: count,
  wouldKill: count,
  rssFreedBytes: count,
});

/** The process is gone: a restart must not resurrect it into the sid index. */
export const ForgetRecordSchema = z.object({ t: z.literal('forget'), pid, startKey, at: time });

export const LedgerLineSchema = z.discriminatedUnion('t', [
  CellRecordSchema,
  ActionRecordSchema,
  SweepRecordSchema,
  TotalsRecordSchema,
  ForgetRecordSchema,
]);

export type CellRecord = z.infer<typeof CellRecordSchema>;
export type ActionRecord = z.infer<typeof ActionRecordSchema>;
export type SweepRecord = z.infer<typeof SweepRecordSchema>;
export type TotalsRecord = z.infer<typeof TotalsRecordSchema>;
export type ForgetRecord = z.infer<typeof ForgetRecordSchema>;
export type LedgerLine = z.infer<typeof LedgerLineSchema>;

/** A worker child as seen in the process table (ProcessInfo fields plus its CellIdentity). */
export type CellSighting = Omit<CellRecord, 't' | 'firstSeen' | 'lastSeen'>;
export type ActionEntry = Omit<ActionRecord, 't'>;
export type SweepEntry = Omit<SweepRecord, 't'>;
export type Totals = Omit<TotalsRecord, 't'>;

export interface LedgerOptions {
  now?: () => number;
  /** Compact when the file grows past this (default 8 MiB). */
  maxBytes?: number;
  /** Drop cells not seen for this long at compaction (default 24 h). */
  retentionMs?: number;
  /** Non-fatal trouble and housekeeping: `ledger.corrupt-line`, `ledger.write-failed`, `ledger.compacted`, … */
  onNotice?: (event: string, fields: object) => void;
  /** Test seam for disk errors: one write of `data` at the end of the file; returns bytes written. */
  writeChunk?: (fh: FileHandle, data: Uint8Array) => Promise<number>;
}

const MIB = 1024 * 1024;
/** Actions kept through a compaction; older ones live on only in the totals. */
const KEEP_ACTIONS = 1000;
/** Corrupt lines reported one by one at open; the rest only in the `ledger.loaded` count. */
const MAX_CORRUPT_NOTICES = 100;
const COMPACT_RETRY_MS = 60_000;

const OPEN_FLAGS = constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;
/** Read-only: never creates; O_NONBLOCK so a FIFO swapped in after the lstat cannot hang the open (the fstat then refuses it). */
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

const defaultWriteChunk = async (fh: FileHandle, data: Uint8Array) => (await fh.write(data)).bytesWritten;

/** A ledger loaded by Ledger.read (status, doctor): what it says, and no way to write it. */
export type LedgerView = Readonly<Pick<Ledger, 'path' | 'corruptLines' | 'cellsOfSid' | 'cellOf' | 'find' | 'recentActions' | 'totals' | 'lastSweep'>>;

export class Ledger {
  /** Lines skipped at open because they were torn or did not parse. */
  corruptLines = 0;

  private fh: FileHandle | null;
  /** File size as far as our own writes know it. */
  private bytes: number;
  private readonly byPid = new Map<number, CellRecord>();
  /** Newest (latest startedAt) first. */
  private readonly bySid = new Map<string, CellRecord[]>();
  private actions: ActionRecord[] = [];
  private sums: TotalsRecord;
  private sweep: SweepRecord | null = null;
  /** Lines recorded but not yet written. */
  private pending: string[] = [];
  private pendingChars = 0;
  /** The tail of a write that failed part-way: it goes out first next time, completing the torn line. */
  private unwritten: Buffer | null = null;
  /** The file ends in a torn line from a crash: start our next write on a fresh line. */
  private needsNewline = false;
  /** The backlog was dropped (its effects are all in memory): the next flush rewrites the file. */
  private mustCompact = false;
  private lastCompactAt: number;
  /** After a failed compaction, automatic ones wait a while (appends go on meanwhile). */
  private compactRetryAt = 0;
  private compactedBytes = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Loaded by Ledger.read: nothing is ever appended, flushed or compacted. */
  private readOnly = false;

  private readonly now: () => number;
  private readonly maxBytes: number;
  private readonly retentionMs: number;
  private readonly notice: (event: string, fields: object) => void;
  private readonly writeChunk: (fh: FileHandle, data: Uint8Array) => Promise<number>;

  private constructor(readonly path: string, fh: FileHandle | null, size: number, opts: LedgerOptions) {
    this.fh = fh;
    this.bytes = size;
    this.now = opts.now ?? Date.now;
    this.maxBytes = opts.maxBytes ?? 8 * MIB;
    this.retentionMs = opts.retentionMs ?? 24 * 60 * 60 * 1000;
    this.notice = opts.onNotice ?? (() => undefined);
    this.writeChunk = opts.writeChunk ?? defaultWriteChunk;
    this.lastCompactAt = this.now();
    this.sums = emptyTotals(this.now());
  }

  /** Open (creating it 0600 if missing) and load a ledger; E_LEDGER_UNSAFE when the path is not safely ours. */
  static async open(path: string, opts: LedgerOptions = {}): Promise<Ledger> {
    const dir = dirname(path);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw stateDirError(dir, err);
    }
    await checkDir(path, dir);
    const existing = await lstat(path).catch((err: unknown) => {
      if (errnoCode(err) === 'ENOENT') return null;
      throw stateDirError(dir, err);
    });
    if (existing) checkFile(path, existing);

    const fh = await openLedgerFile(path);
    try {
      const raw = await fh.readFile();
      const ledger = new Ledger(path, fh, raw.length, opts);
      ledger.load(raw.toString('utf8'));
      if (ledger.bytes > ledger.maxBytes) await ledger.compact();
      return ledger;
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /**
   * Load a ledger without touching it, for readers beside a running daemon (status, doctor):
   * opened O_RDONLY and closed again before this returns; never creates the file or its
   * directory, never compacts, never writes (the daemon appends through its own descriptor,
   * so a rewrite here would swap the inode under it). The same parsing as open() and the same
   * E_LEDGER_UNSAFE refusals. Null when there is no ledger (or no directory) at `path`.
   */
  static async read(path: string, opts: Pick<LedgerOptions, 'now' | 'onNotice'> = {}): Promise<LedgerView | null> {
    const dir = dirname(path);
    const existing = await lstat(path).catch((err: unknown) => {
      if (errnoCode(err) === 'ENOENT') return null;
      throw stateDirError(dir, err);
    });
    if (!existing) return null;
    await checkDir(path, dir);
    checkFile(path, existing);
    const fh = await openLedgerFile(path, READ_FLAGS);
    let raw: Buffer;
    try {
      raw = await fh.readFile();
    } finally {
      await fh.close();
    }
    const ledger = new Ledger(path, null, raw.length, opts);
    ledger.readOnly = true;
    ledger.closed = true;
    ledger.load(raw.toString('utf8'));
    return ledger;
  }

  // ---- cells -------------------------------------------------------------------------------

  /**
   * Upsert a sighting (at = when it was seen). Appends a line only for a process not known
   * yet (or whose sid/port changed); lastSeen and ppid of a known one change in memory only
   * and reach the file at compaction. True when a line was appended.
   */
  observe(s: CellSighting, at = this.now()): boolean {
    const known = this.cellAt(s.pid, s.startKey);
    if (known) {
      known.lastSeen = Math.max(known.lastSeen, at);
      known.ppid = s.ppid;
      if (known.sid === s.sid && known.bridgePort === s.bridgePort && known.sessionUuid === s.sessionUuid) return false;
    }
    const cell: CellRecord = {
      t: 'cell',
      sid: s.sid,
      sessionUuid: s.sessionUuid,
      bridgePort: s.bridgePort,
      pid: s.pid,
      startKey: s.startKey,
      startedAt: s.startedAt,
      ppid: s.ppid,
      firstSeen: known?.firstSeen ?? at,
      lastSeen: at,
    };
    this.index(cell);
    this.append(cell);
    return true;
  }

  /** Cells last seen with this sid, newest start first. */
  cellsOfSid(sid: string): readonly Readonly<CellRecord>[] {
    return [...(this.bySid.get(sid) ?? [])];
  }

  /** The cell last seen at this pid, whatever process holds the pid now. */
  cellOf(pid: number): Readonly<CellRecord> | undefined {
    return this.byPid.get(pid);
  }

  /** The cell for exactly this process (pid + start key). */
  find(pid: number, startKey: string): Readonly<CellRecord> | undefined {
    return this.cellAt(pid, startKey);
  }

  /**
   * The process is gone. Drops it from memory and appends a small tombstone: without it a
   * restart would reload the cell into the sid index until the next compaction, and every
   * eviction of that sid would spend a /proc read (and an identity check on a possibly
   * recycled pid) on it. ~70 bytes per cell, gone again at compaction.
   */
  forget(pid: number, startKey: string, at = this.now()): boolean {
    if (!this.find(pid, startKey)) return false;
    this.unindex(pid);
    this.append({ t: 'forget', pid, startKey, at } satisfies ForgetRecord);
    return true;
  }

  // ---- actions, sweeps, totals ---------------------------------------------------------------

  recordAction(a: ActionEntry): void {
    const parsed = ActionRecordSchema.safeParse(asReloaded({ ...a, t: 'action' }));
    if (!parsed.success) return this.notice('ledger.invalid-record', { path: this.path, record: a, error: parsed.error.message });
    this.pushAction(parsed.data);
    this.append(parsed.data);
  }

  recordSweep(s: SweepEntry): void {
    const parsed = SweepRecordSchema.safeParse(asReloaded({ ...s, t: 'sweep' }));
    if (!parsed.success) return this.notice('ledger.invalid-record', { path: this.path, record: s, error: parsed.error.message });
    this.sweep = parsed.data;
    this.append(parsed.data);
  }

  /** The last n actions, oldest first (up to 1000 survive a compaction or restart). */
  recentActions(n: number): ActionRecord[] {
    return n > 0 ? this.actions.slice(-n).map((a) => ({ ...a })) : [];
  }

  totals(): Totals {
    const { t: _t, ...rest } = this.sums;
    return { ...rest, killedByReason: { ...rest.killedByReason } };
  }

  lastSweep(): SweepEntry | null {
    if (!this.sweep) return null;
    const { t: _t, ...rest } = this.sweep;
    return rest;
  }

  // ---- writing -------------------------------------------------------------------------------

  /**
   * Write everything recorded since the last flush in one write, then fdatasync; compact when
   * the file has outgrown maxBytes. Never throws: a failed write is reported as
   * `ledger.write-failed` and retried at the next flush. Resolves true when all is on disk.
   */
  flush(): Promise<boolean> {
    return this.serial(() => this.writePending());
  }

  /** Rewrite the file as live cells + last 1000 actions + last sweep + totals. Never throws. */
  compact(): Promise<boolean> {
    return this.serial(() => this.compactNow());
  }

  async close(): Promise<void> {
    await this.flush();
    await this.serial(async () => {
      this.closed = true;
      await this.fh?.close().catch(() => undefined);
      this.fh = null;
    });
  }

  // ---- internals -----------------------------------------------------------------------------

  /** One flush or compaction at a time, in call order. */
  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.queue.then(op);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private append(rec: LedgerLine): void {
    if (this.readOnly) return;
    const line = `${JSON.stringify(rec)}\n`;
    this.pending.push(line);
    this.pendingChars += line.length;
    // A backlog larger than the file may be (disk failing for long, or a huge burst between
    // flushes) is dropped: everything it says is in memory, and a compaction writes it compactly.
    if (this.pendingChars > this.maxBytes) {
      this.pending = [];
      this.pendingChars = 0;
      this.unwritten = null;
      this.mustCompact = true;
    }
  }

  private async writePending(): Promise<boolean> {
    if (this.closed) return false;
    await this.appendPending();
    if (this.compactionDue()) await this.compactNow();
    return this.pending.length === 0 && this.unwritten === null && !this.mustCompact;
  }

  private compactionDue(): boolean {
    const now = this.now();
    if (now < this.compactRetryAt) return false;
    // Twice the last compacted size at least, so live state near maxBytes does not rewrite the file at every flush.
    const limit = Math.max(this.maxBytes, 2 * this.compactedBytes);
    return this.mustCompact || this.bytes > limit || now - this.lastCompactAt >= this.retentionMs;
  }

  /** One write of the backlog at the end of the file, then fdatasync. */
  private async appendPending(): Promise<void> {
    if (this.pending.length === 0 && this.unwritten === null) return;
    const head = this.unwritten ?? Buffer.from(this.needsNewline ? '\n' : '');
    const data = Buffer.concat([head, Buffer.from(this.pending.join(''))]);
    this.pending = [];
    this.pendingChars = 0;
    let written = 0;
    let failure: { err: unknown } | null = null;
    try {
      const fh = this.fh ?? (this.fh = await openLedgerFile(this.path));
      while (written < data.length) {
        const n = await this.writeChunk(fh, data.subarray(written));
        if (n <= 0) throw new Error('write made no progress');
        written += n;
      }
      await fh.datasync();
    } catch (err) {
      failure = { err };
    }
    this.bytes += written;
    // What did not reach the file goes out first next time, finishing the line it tore.
    this.unwritten = written < data.length ? data.subarray(written) : null;
    if (this.unwritten === null) this.needsNewline = false;
    if (failure) {
      // Reopen next time: an EIO'd descriptor may stay broken, and the path may have been replaced.
      const broken = this.fh;
      this.fh = null;
      await broken?.close().catch(() => undefined);
      this.reportWriteFailure('append', failure.err);
    }
  }

  private async compactNow(): Promise<boolean> {
    if (this.closed) return false;
    const at = this.now();
    const droppedCells = this.dropCellsNotSeenSince(at - this.retentionMs);
    const cells = [...this.byPid.values()];
    const actions = this.actions.slice(-KEEP_ACTIONS);
    const lines: LedgerLine[] = [...cells, ...actions, ...(this.sweep ? [this.sweep] : []), this.sums];
    const text = lines.map((l) => `${JSON.stringify(l)}\n`).join('');
    // Everything recorded so far is in `text`; what is recorded during the write stays pending.
    const backlog = { pending: this.pending, chars: this.pendingChars, unwritten: this.unwritten };
    this.pending = [];
    this.pendingChars = 0;
    this.unwritten = null;
    const bytesBefore = this.bytes;
    try {
      await writeFileAtomic(this.path, text, 0o600);
    } catch (err) {
      this.pending = [...backlog.pending, ...this.pending];
      this.pendingChars += backlog.chars;
      this.unwritten = backlog.unwritten;
      this.compactRetryAt = at + COMPACT_RETRY_MS;
      this.reportWriteFailure('compact', err);
      return false;
    }
    this.bytes = this.compactedBytes = Buffer.byteLength(text);
    this.needsNewline = false;
    this.mustCompact = false;
    this.lastCompactAt = at;
    const old = this.fh;
    this.fh = null;
    await old?.close().catch(() => undefined);
    try {
      this.fh = await openLedgerFile(this.path);
    } catch (err) {
      this.reportWriteFailure('reopen', err); // the next flush opens it again
    }
    this.notice('ledger.compacted', { path: this.path, bytesBefore, bytesAfter: this.bytes, cells: cells.length, actions: actions.length, droppedCells });
    return this.fh !== null;
  }

  private reportWriteFailure(op: string, err: unknown): void {
    this.notice('ledger.write-failed', {
      path: this.path,
      op,
      code: errnoCode(err),
      error: err instanceof Error ? err.message : String(err),
      pendingBytes: this.pendingChars + (this.unwritten?.length ?? 0),
    });
  }

  private load(text: string): void {
    const lines = text.split('\n');
    let first = Infinity;
    let sawTotals = false;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (line.trim() === '') continue;
      const rec = parseLine(line);
      if (typeof rec === 'string') {
        this.corruptLines++;
        if (this.corruptLines <= MAX_CORRUPT_NOTICES) this.notice('ledger.corrupt-line', { path: this.path, line: i + 1, error: rec });
        continue;
      }
      switch (rec.t) {
        case 'cell': {
          const known = this.cellAt(rec.pid, rec.startKey);
          if (known) {
            rec.firstSeen = Math.min(known.firstSeen, rec.firstSeen);
            rec.lastSeen = Math.max(known.lastSeen, rec.lastSeen);
          }
          this.index(rec);
          first = Math.min(first, rec.firstSeen);
          break;
        }
        case 'forget':
          if (this.find(rec.pid, rec.startKey)) this.unindex(rec.pid);
          break;
        case 'action':
          this.pushAction(rec);
          first = Math.min(first, rec.at);
          break;
        case 'sweep':
          this.sweep = rec;
          break;
        case 'totals':
          this.sums = rec;
          sawTotals = true;
          break;
      }
    }
    this.needsNewline = text.length > 0 && !text.endsWith('\n');
    if (!sawTotals) {
      // A new file, or one that lost its totals line: start counting now (or at its oldest record).
      this.sums.since = Math.min(this.sums.since, first);
      this.append(this.sums);
    }
    this.notice('ledger.loaded', {
      path: this.path,
      bytes: this.bytes,
      cells: this.byPid.size,
      actions: this.actions.length,
      corruptLines: this.corruptLines,
    });
  }

  private pushAction(a: ActionRecord): void {
    this.actions.push(a);
    if (this.actions.length > 2 * KEEP_ACTIONS) this.actions = this.actions.slice(-KEEP_ACTIONS);
    const s = this.sums;
    switch (a.action) {
      case 'killed':
        s.killedByReason[a.reason] = (s.killedByReason[a.reason] ?? 0) + 1;
        s.rssFreedBytes += a.rssBytes ?? 0;
        break;
      case 'failed':
        s.failed++;
        break;
      case 'gone':
        s.gone++;
        break;
      case 'skipped':
        s.skipped++;
        break;
      case 'would-kill':
        s.wouldKill++;
        break;
    }
  }

  private cellAt(pid: number, startKey: string): CellRecord | undefined {
    const cell = this.byPid.get(pid);
    return cell?.startKey === startKey ? cell : undefined;
  }

  /** Index a cell under its pid (replacing whatever process had the pid before) and its sid. */
  private index(cell: CellRecord): void {
    this.unindex(cell.pid);
    this.byPid.set(cell.pid, cell);
    const list = this.bySid.get(cell.sid);
    if (!list) return void this.bySid.set(cell.sid, [cell]);
    const at = list.findIndex((c) => c.startedAt < cell.startedAt);
    if (at < 0) list.push(cell);
    else list.splice(at, 0, cell);
  }

  private unindex(pid: number): void {
    const cell = this.byPid.get(pid);
    if (!cell) return;
    this.byPid.delete(pid);
    const rest = (this.bySid.get(cell.sid) ?? []).filter((c) => c !== cell);
    if (rest.length > 0) this.bySid.set(cell.sid, rest);
    else this.bySid.delete(cell.sid);
  }

  private dropCellsNotSeenSince(cutoff: number): number {
    let dropped = 0;
    for (const cell of [...this.byPid.values()]) {
      if (cell.lastSeen < cutoff) {
        this.unindex(cell.pid);
        dropped++;
      }
    }
    return dropped;
  }
}

/** The record as a reopen will read it (undefined keys gone, NaN → null and so refused), so memory and file agree. */
const asReloaded = (rec: object): unknown => JSON.parse(JSON.stringify(rec));

function parseLine(line: string): LedgerLine | string {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return 'not JSON (torn or garbage)';
  }
  const parsed = LedgerLineSchema.safeParse(json);
  return parsed.success ? parsed.data : `not a ledger record: ${parsed.error.issues[0]?.message ?? 'invalid'}`;
}

const emptyTotals = (since: number): TotalsRecord => ({
  t: 'totals',
  since,
  killedByReason: {},
  failed: 0,
  gone: 0,
  skipped: 0,
  wouldKill: 0,
  rssFreedBytes: 0,
});

/** O_NOFOLLOW closes the gap between the lstat check and the open; the fstat repeats the checks. */
async function openLedgerFile(path: string, flags = OPEN_FLAGS): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(path, flags, 0o600);
  } catch (err) {
    if (errnoCode(err) === 'ELOOP') throw unsafe(path, 'it is a symbolic link');
    throw stateDirError(dirname(path), err);
  }
  try {
    checkFile(path, await fh.stat());
    return fh;
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** The file must be ours alone: not a link, a regular file, not world-writable, owned by us. */
function checkFile(path: string, st: Stats): void {
  if (st.isSymbolicLink()) throw unsafe(path, 'it is a symbolic link');
  if (!st.isFile()) throw unsafe(path, 'it is not a regular file');
  if (st.mode & 0o002) throw unsafe(path, `it is world-writable (mode ${(st.mode & 0o7777).toString(8)})`);
  const uid = process.geteuid?.();
  if (uid !== undefined && st.uid !== uid) throw unsafe(path, `it is owned by uid ${st.uid}, not by us (uid ${uid})`);
}

/** Anyone could swap the file in a world-writable directory, unless the sticky bit stops them. */
async function checkDir(path: string, dir: string): Promise<void> {
  const st = await stat(dir).catch((err: unknown) => {
    throw stateDirError(dir, err);
  });
  if (st.mode & 0o002 && !(st.mode & 0o1000)) throw unsafe(path, `its directory ${dir} is world-writable without the sticky bit`);
}

const unsafe = (path: string, why: string) => new ReaperError('E_LEDGER_UNSAFE', `refusing to use ledger ${path}: ${why}`);

const stateDirError = (dir: string, err: unknown) =>
  err instanceof ReaperError ? err : new ReaperError('E_STATE_DIR', `state dir ${dir} is not usable: ${err instanceof Error ? err.message : String(err)}`);
