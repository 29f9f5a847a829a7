import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../service/atomic.js';
import { FINGERPRINT_BYTES, type TailPosition } from './file-tail.js';
import { openLog } from './open-log.js';

export const CHECKPOINT_FILE = 'checkpoint.json';

const PositionSchema = z.object({
  dev: z.number(),
  ino: z.number(),
  fingerprint: z.string(),
  fingerprintBytes: z.number().int().nonnegative(),
  offset: z.number().int().nonnegative(),
});
const CheckpointSchema = z.object({
  version: z.literal(1),
  path: z.string(),
  position: PositionSchema,
  savedAt: z.number(),
});
export type Checkpoint = z.infer<typeof CheckpointSchema>;

/** The saved position, or null (none yet, or unreadable: then say why and start afresh). */
export async function loadCheckpoint(stateDir: string): Promise<{ checkpoint: Checkpoint | null; problem?: string }> {
  const path = join(stateDir, CHECKPOINT_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return (err as { code?: string }).code === 'ENOENT' ? { checkpoint: null } : { checkpoint: null, problem: `${path}: ${String(err)}` };
  }
  try {
    return { checkpoint: CheckpointSchema.parse(JSON.parse(text)) };
  } catch (err) {
    return { checkpoint: null, problem: `${path}: not a valid checkpoint (${(err as Error).message.split('\n')[0]})` };
  }
}

export async function saveCheckpoint(stateDir: string, logPath: string, position: TailPosition): Promise<void> {
  const cp: Checkpoint = { version: 1, path: logPath, position, savedAt: Date.now() };
  await writeFileAtomic(join(stateDir, CHECKPOINT_FILE), `${JSON.stringify(cp)}\n`);
}

/** A tail position at `offset` of the file now at `path` (as FileTail fingerprints files). */
export async function positionAt(path: string, offset: number): Promise<TailPosition | null> {
  let fh;
  try {
    fh = await openLog(path);
  } catch {
    return null;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return null;
    const bytes = Math.min(FINGERPRINT_BYTES, offset, st.size);
    const head = Buffer.alloc(bytes);
    if (bytes > 0) await fh.read(head, 0, bytes, 0);
    return { dev: st.dev, ino: st.ino, fingerprint: createHash('sha1').update(head).digest('hex'), fingerprintBytes: bytes, offset: Math.min(offset, st.size) };
  } finally {
    await fh.close();
  }
}
