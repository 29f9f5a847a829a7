import { setTimeout as sleep } from 'node:timers/promises';
import { errnoCode } from '../errors.js';
import { sameArgv, sameIdentity, type ProcessInfo, type ProcessReader } from '../procs/types.js';

export type KillOutcome = 'killed' | 'gone' | 'failed' | 'skipped';
type Sig = 'SIGTERM' | 'SIGKILL';

export interface KillResult {
  pid: number;
  outcome: KillOutcome;
  /** The strongest signal the target got. */
  signal: Sig | null;
  /** Why it failed or was skipped. */
  error?: string;
  /** When the first SIGTERM went out (epoch ms). */
  signalledAt?: number;
  /** Descendants that were signalled, including ones forked during the kill. */
  descendants: number[];
}

export interface KillOptions {
  reader: ProcessReader;
  graceMs: number;
  /** Injected so tests can watch signals; process.kill in production. */
  send?: (pid: number, signal: Sig) => void;
  pollMs?: number;
  /** Called once the SIGTERM wave is out, before the grace wait (the daemon's hot path
   *  moves on then; the rest of the kill finishes in the background). */
  onTermSent?: () => void;
}

type SendResult = 'sent' | 'gone' | 'changed' | 'eperm' | 'error';

/**
 * Kill an orphan and its descendants: SIGTERM leaves first, wait up to graceMs, SIGKILL the
 * survivors. Identity (pid + start time + uid, and argv for the orphan itself) is re-read
 * right before every signal, so a recycled pid is never hit. Never signals a process group.
 */
export async function killTree(target: ProcessInfo, descendants: readonly ProcessInfo[], opts: KillOptions): Promise<KillResult> {
  const { reader, graceMs, pollMs = 20 } = opts;
  const send = opts.send ?? ((pid, sig) => process.kill(pid, sig));
  const members = new Map<number, ProcessInfo>([...descendants, target].map((p) => [p.pid, p]));
  const result: KillResult = { pid: target.pid, outcome: 'killed', signal: null, descendants: descendants.map((d) => d.pid) };
  let failure: string | undefined;

  const signal = async (m: ProcessInfo, sig: Sig): Promise<SendResult> => {
    const now = await reader.read(m.pid);
    if (!now || now.zombie || !sameIdentity(now, m)) return 'gone';
    if (m.pid === target.pid && !sameArgv(now, m)) return 'changed';
    try {
      send(m.pid, sig);
      return 'sent';
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ESRCH') return 'gone';
      if (m.pid === target.pid || failure === undefined) failure = `${sig} to pid ${m.pid}: ${code ?? String(err)}`;
      return code === 'EPERM' ? 'eperm' : 'error';
    }
  };

  // The orphan is checked before anything in its tree is touched.
  const first = await reader.read(target.pid);
  if (!first || first.zombie || !sameIdentity(first, target)) return { ...result, outcome: 'gone' };
  if (!sameArgv(first, target)) return { ...result, outcome: 'skipped', error: `pid ${target.pid} changed its argv since the snapshot` };

  result.signalledAt = Date.now();
  let sentAny = false;
  for (const m of members.values()) {
    const r = await signal(m, 'SIGTERM');
    sentAny ||= r === 'sent';
    if (m.pid === target.pid) {
      if (r === 'sent' || (r === 'gone' && sentAny)) result.signal = 'SIGTERM';
      // Gone after its children got SIGTERM is our kill (a shell exits when its wait ends).
      if (r === 'gone' && !sentAny) return { ...result, outcome: 'gone' };
      if (r === 'eperm' || r === 'error') return { ...result, outcome: 'failed', error: failure };
      if (r === 'changed') return { ...result, outcome: 'skipped', error: `pid ${target.pid} changed its argv before SIGTERM` };
    }
  }

  opts.onTermSent?.();

  const alive = async (): Promise<ProcessInfo[]> => {
    const states = await Promise.all([...members.values()].map(async (m) => ({ m, now: await reader.read(m.pid) })));
    return states.filter(({ m, now }) => now && !now.zombie && sameIdentity(now, m)).map(({ m }) => m);
  };

  const deadline = Date.now() + graceMs;
  let survivors = await alive();
  while (survivors.length > 0 && Date.now() < deadline) {
    await sleep(pollMs);
    // A process may fork while it handles SIGTERM: adopt its new children into the kill.
    for (const m of survivors) {
      for (const pid of await reader.children(m.pid)) {
        if (members.has(pid)) continue;
        const child = await reader.read(pid);
        if (!child || child.ppid !== m.pid) continue;
        members.set(pid, child);
        result.descendants.push(pid);
        await signal(child, 'SIGTERM');
      }
    }
    survivors = await alive();
  }

  if (survivors.length > 0) {
    for (const m of survivors) {
      const r = await signal(m, 'SIGKILL');
      if (m.pid === target.pid && r === 'sent') result.signal = 'SIGKILL';
    }
    const killDeadline = Date.now() + 2000;
    while ((survivors = await alive()).length > 0 && Date.now() < killDeadline) await sleep(pollMs);
  }

  if (survivors.some((s) => s.pid === target.pid)) {
    return { ...result, outcome: 'failed', error: failure ?? `pid ${target.pid} survived SIGKILL` };
  }
  if (survivors.length > 0 || failure) {
    const left = survivors.map((s) => s.pid).join(', ');
    return { ...result, error: failure ?? `descendants still alive: ${left}` };
  }
  return result;
}

/** Kill many orphans at once, a bounded number in flight; one failure never stops the rest. */
export async function killAll<T>(items: readonly T[], kill: (item: T) => Promise<KillResult>, parallel = 64): Promise<KillResult[]> {
  const results: KillResult[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await kill(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, lane));
  return results;
}
