import { spawn } from 'node:child_process';
import type { Config } from '../config/schema.js';
import type { Logger } from './logger.js';

export interface KillNote {
  pid: number;
  sid: string;
  reason: string;
  rssBytes: number;
}

type Run = (argv: string[]) => void;

/** Run argv with no shell; placeholders are replaced inside each argument, never parsed. */
export function fill(argv: readonly string[], values: Record<string, string | number>): string[] {
  return argv.map((a) => a.replace(/\{(\w+)\}/g, (m, k: string) => (k in values ? String(values[k]) : m)));
}

/**
 * The optional `notify` commands: one on kills (at most once per minIntervalMs, with the
 * count of kills since the last one) and one when the safety valve trips.
 */
export class Notifier {
  private pending: KillNote[] = [];
  private lastAt = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private cfg: Config['notify'],
    private readonly log: Logger,
    private readonly run: Run = defaultRun(log),
  ) {}

  update(cfg: Config['notify']): void {
    this.cfg = cfg;
  }

  killed(note: KillNote): void {
    if (!this.cfg.onKill) return;
    this.pending.push(note);
    const wait = this.lastAt + this.cfg.minIntervalMs - Date.now();
    if (wait <= 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), wait).unref();
  }

  valve(count: number, max: number): void {
    if (this.cfg.onValve) this.run(fill(this.cfg.onValve, { count, max }));
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const notes = this.pending;
    this.pending = [];
    const last = notes.at(-1);
    if (!last || !this.cfg.onKill) return;
    this.lastAt = Date.now();
    const rssMB = Math.round(notes.reduce((s, n) => s + n.rssBytes, 0) / (1 << 20));
    this.run(fill(this.cfg.onKill, { count: notes.length, pid: last.pid, sid: last.sid, reason: last.reason, rssMB }));
  }
}

function defaultRun(log: Logger): Run {
  return (argv) => {
    const [cmd, ...args] = argv;
    if (!cmd) return;
    try {
      const child = spawn(cmd, args, { stdio: 'ignore', detached: false });
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
      child.on('error', (err) => log.warn({ event: 'notify.failed', argv, error: String(err) }));
      child.on('exit', (code) => {
        clearTimeout(timer);
        if (code !== 0) log.warn({ event: 'notify.failed', argv, code });
      });
    } catch (err) {
      log.warn({ event: 'notify.failed', argv, error: String(err) });
    }
  };
}
