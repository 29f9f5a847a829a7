import { link, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { ReaperError, errnoCode } from '../errors.js';
import { createFileExclusive, siblingName } from './atomic.js';

// One daemon per state dir. The lock is a file naming its holder by pid + start key, so a
// crash never blocks a restart: a holder that is gone, or whose pid now belongs to another
// process, is stale and its lock is taken over.

export const LOCK_FILE = 'daemon.lock';

export const LockRecordSchema = z.object({
  pid: z.number().int().positive(),
  startKey: z.string().min(1),
  /** When the holder took the lock (epoch ms). */
  startedAt: z.number(),
});
export type LockRecord = z.infer<typeof LockRecordSchema>;

export interface ProcessIdentity {
  pid: number;
  startKey: string;
}

/** Reads one pid's live identity (a ProcessReader's `read` fits); null when there is no such process. */
export type ReadProcess = (pid: number) => Promise<(ProcessIdentity & { zombie?: boolean }) | null>;

export type StaleReason = 'dead' | 'pid-reused' | 'unreadable';

export interface Lock {
  readonly path: string;
  readonly holder: LockRecord;
  /** The stale lock this one replaced, for the start-up log; null when the file was free. */
  readonly replaced: { reason: StaleReason; previous: LockRecord | null } | null;
  /** Remove the lock file if it still names us. */
  release(): Promise<void>;
}

/** Several daemons starting at once each get a few tries; all but one end with E_LOCKED. */
const MAX_ATTEMPTS = 5;

export async function acquireLock(
  stateDir: string,
  self: ProcessIdentity,
  readProcess: ReadProcess,
  opts: { now?: () => number } = {},
): Promise<Lock> {
  const path = join(stateDir, LOCK_FILE);
  const holder: LockRecord = { pid: self.pid, startKey: self.startKey, startedAt: (opts.now ?? Date.now)() };
  const body = `${JSON.stringify(holder)}\n`;
  let replaced: Lock['replaced'] = null;

  await inStateDir(stateDir, () => mkdir(stateDir, { recursive: true, mode: 0o700 }));
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (await inStateDir(stateDir, () => createFileExclusive(path, body))) return heldLock(path, holder, replaced);
    const found = await readLockFile(path);
    if (found === null) continue; // released between our create and our read
    const reason = await staleness(path, found.record, readProcess);
    if (reason === null) throw lockedError(path, found.record!);
    replaced = { reason, previous: found.record };
    await inStateDir(stateDir, () => removeIfUnchanged(path, found.bytes));
  }
  throw new ReaperError('E_LOCKED', `${path}: could not take the lock; several hum-reaper daemons are starting on ${stateDir} at once`);
}

function heldLock(path: string, holder: LockRecord, replaced: Lock['replaced']): Lock {
  return {
    path,
    holder,
    replaced,
    async release() {
      const found = await readLockFile(path).catch(() => null);
      const ours = found?.record?.pid === holder.pid && found.record.startKey === holder.startKey;
      if (ours) await rm(path, { force: true });
    },
  };
}

/** Why the recorded holder no longer holds the lock, or null when it is alive. */
async function staleness(path: string, record: LockRecord | null, readProcess: ReadProcess): Promise<StaleReason | null> {
  if (record === null) return 'unreadable';
  let live;
  try {
    live = await readProcess(record.pid);
  } catch (err) {
    // Unknown is not dead: taking over would risk two daemons.
    throw new ReaperError('E_LOCKED', `${path}: cannot tell whether lock holder pid ${record.pid} is alive: ${String(err)}`);
  }
  if (live === null || live.zombie === true) return 'dead';
  if (live.startKey !== record.startKey) return 'pid-reused';
  return null;
}

/**
 * Take a stale lock file out of the way, but only the one we judged: rename whatever is at
 * `path` aside and compare bytes. If another starter already replaced the stale lock with its
 * own, we moved a live lock: link it back (never clobbering a newer one) and let the caller
 * retry, where it finds that holder alive.
 */
async function removeIfUnchanged(path: string, judged: Buffer): Promise<void> {
  const aside = siblingName(path, 'stale');
  try {
    await rename(path, aside);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  const moved = await readFile(aside).catch(() => null);
  if (moved === null || !moved.equals(judged)) await link(aside, path).catch(() => undefined);
  await rm(aside, { force: true });
}

async function readLockFile(path: string): Promise<{ record: LockRecord | null; bytes: Buffer } | null> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw new ReaperError('E_STATE_DIR', `${path}: cannot read the lock file: ${errnoCode(err) ?? String(err)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { record: null, bytes };
  }
  const parsed = LockRecordSchema.safeParse(json);
  return { record: parsed.success ? parsed.data : null, bytes };
}

const lockedError = (path: string, holder: LockRecord) =>
  new ReaperError(
    'E_LOCKED',
    `another hum-reaper (pid ${holder.pid}, running since ${isoOrRaw(holder.startedAt)}) holds ${path}`,
  );

const isoOrRaw = (ms: number): string => (Number.isFinite(new Date(ms).getTime()) ? new Date(ms).toISOString() : String(ms));

/** File-system failures while taking the lock mean the state dir is unusable: exit 2, path named. */
async function inStateDir<T>(stateDir: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof ReaperError) throw err;
    throw new ReaperError('E_STATE_DIR', `state dir ${stateDir} is not usable: ${err instanceof Error ? err.message : String(err)}`);
  }
}
