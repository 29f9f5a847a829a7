import { z } from 'zod';

// Node's timers hold at most 2^31-1 ms (~24.8 days); a longer one fires at once, in a loop.
const durationMs = z.number().int().nonnegative().max(2_147_483_647);

/** How a worker child is recognised in the process table: hum's own argv by default. */
export const SignatureSchema = z.strictObject({
  /** Tokens that must all appear in argv (position-free: old installs run `node cli.js …`). */
  requiredArgs: z.array(z.string().min(1)).min(1),
  mcpConfigFlag: z.string().min(1),
  /** Key under `mcpServers` whose url carries `/s/<sid>`. */
  mcpServerName: z.string().min(1),
  /** Only processes whose sid starts with this are ever considered ('' = any sid). */
  sidPrefix: z.string(),
  /** The worker's process name (Linux truncates comm to 15 bytes, so both spellings). */
  workerNames: z.array(z.string().min(1)).min(1),
  /** Parents that mean "the worker died and we were reparented" (pid 1 always counts). */
  reparentTargets: z.array(z.string().min(1)),
});

export const LogSourceSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('file'), path: z.string().min(1) }),
  z.strictObject({
    type: z.literal('command'),
    /** One-shot read (reap/ps): the command's stdout is the log. */
    argv: z.array(z.string().min(1)).min(1),
    /** Follow mode for the daemon (`run`). */
    followArgv: z.array(z.string().min(1)).min(1),
  }),
  z.strictObject({ type: z.literal('none') }),
]);

export const ConfigSchema = z.strictObject({
  log: LogSourceSchema,
  stateDir: z.string().min(1),
  signature: SignatureSchema,
  /** SIGTERM → SIGKILL wait. */
  graceMs: durationMs,
  /** Never touch a process younger than this. */
  minAgeMs: durationMs,
  /** Safety valve: more orphans than this at once means something is off; kill nothing. */
  maxOrphans: z.number().int().positive(),
  sweepIntervalMs: durationMs.min(1000),
  dryRun: z.boolean(),
  force: z.boolean(),
  /** Serve /metrics on 127.0.0.1:<port> (0 = only the metrics.prom file). */
  metricsPort: z.number().int().min(0).max(65535),
  /** Commands (argv, no shell) run on kills and when the safety valve trips; null = none. */
  notify: z.strictObject({
    onKill: z.array(z.string().min(1)).min(1).nullable(),
    onValve: z.array(z.string().min(1)).min(1).nullable(),
    minIntervalMs: durationMs,
  }),
});

export type Config = z.infer<typeof ConfigSchema>;
export type Signature = z.infer<typeof SignatureSchema>;
export type LogSource = z.infer<typeof LogSourceSchema>;
