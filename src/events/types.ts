import { z } from 'zod';

/** One line of the worker's log, whatever its format (compact plain, ANSI, or JSON). */
export const LogLineSchema = z.object({
  /** Epoch milliseconds with the microsecond fraction kept. */
  at: z.number(),
  level: z.enum(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR']),
  message: z.string(),
  fields: z.record(z.string(), z.string()),
  /** Compact lines: each value exactly as written, quotes and all (sids are Display, bare). */
  raw: z.record(z.string(), z.string()).optional(),
});
export type LogLine = z.infer<typeof LogLineSchema>;

const base = { at: z.number(), seq: z.number() };

/** The worker lifecycle events the reaper acts on. `seq` orders events as the log holds them. */
export const WorkerEventSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('evicted'), sid: z.string(), ...base }),
  z.object({ kind: z.literal('idle-killed'), sid: z.string(), ...base }),
  z.object({ kind: z.literal('spawned-pid'), pid: z.number().int().positive(), ...base }),
  z.object({ kind: z.literal('cell-spawned'), sid: z.string(), ...base }),
  z.object({ kind: z.literal('cell-reused'), sid: z.string(), ...base }),
  z.object({ kind: z.literal('cell-exit'), sid: z.string(), ...base }),
  z.object({ kind: z.literal('bridge-up'), port: z.number().int().min(1).max(65535), ...base }),
  z.object({ kind: z.literal('connecting'), ...base }),
  z.object({ kind: z.literal('reconnecting'), ...base }),
]);
export type WorkerEvent = z.infer<typeof WorkerEventSchema>;
export type EventKind = WorkerEvent['kind'];

/** Events that say a sid's cell was dropped from the table (its process left running). */
export type DropEvent = Extract<WorkerEvent, { kind: 'evicted' | 'idle-killed' }>;
export const isDropEvent = (e: WorkerEvent): e is DropEvent => e.kind === 'evicted' || e.kind === 'idle-killed';
