import type { WorkerEvent } from './types.js';

type Spawn = Extract<WorkerEvent, { kind: 'spawned-pid' }>;
type Drop = Extract<WorkerEvent, { kind: 'evicted' | 'idle-killed' }>;
type Bridge = Extract<WorkerEvent, { kind: 'bridge-up' }>;

/** Events that can matter to a decision; cell-spawned/reused/exit lines are not kept. */
const KEPT = new Set<WorkerEvent['kind']>(['evicted', 'idle-killed', 'spawned-pid', 'bridge-up', 'connecting', 'reconnecting']);

/**
 * The daemon's memory of the log: the evidence the decision needs, bounded. Old events are
 * trimmed once no live worker child is older than them; the latest bridge-up is always kept.
 */
export class EvidenceWindow {
  private events: WorkerEvent[] = [];
  private spawns = new Map<number, Spawn[]>();
  private drops = new Map<string, Drop[]>();
  private bridge: Bridge | null = null;

  // 50k events is hours of a busy trace log; a flood beyond it keeps the newest half.
  constructor(private readonly maxEvents = 50_000) {}

  get size(): number {
    return this.events.length;
  }

  add(e: WorkerEvent): void {
    if (!KEPT.has(e.kind)) return;
    this.events.push(e);
    this.index(e);
    if (this.events.length > this.maxEvents) this.keepLast(Math.floor(this.maxEvents / 2));
  }

  all(): readonly WorkerEvent[] {
    return this.events;
  }

  /** Just what a decision about one process with this pid and sid can use. */
  relevantTo(pid: number, sid: string): WorkerEvent[] {
    const out: WorkerEvent[] = [...(this.spawns.get(pid) ?? []), ...(this.drops.get(sid) ?? [])];
    if (this.bridge) out.push(this.bridge);
    return out.sort((a, b) => a.seq - b.seq);
  }

  /** Forget events logged before `beforeMs` (the oldest live worker child's start, less a margin). */
  trimBefore(beforeMs: number): number {
    const keep = this.events.filter((e) => e.at >= beforeMs || e === this.bridge);
    const dropped = this.events.length - keep.length;
    if (dropped > 0) this.rebuild(keep);
    return dropped;
  }

  private keepLast(n: number): void {
    const keep = this.events.slice(-n);
    if (this.bridge && !keep.includes(this.bridge)) keep.unshift(this.bridge);
    this.rebuild(keep);
  }

  private rebuild(events: WorkerEvent[]): void {
    this.events = events;
    this.spawns.clear();
    this.drops.clear();
    this.bridge = null;
    for (const e of events) this.index(e);
  }

  private index(e: WorkerEvent): void {
    if (e.kind === 'spawned-pid') push(this.spawns, e.pid, e);
    else if (e.kind === 'evicted' || e.kind === 'idle-killed') push(this.drops, e.sid, e);
    else if (e.kind === 'bridge-up' && (!this.bridge || e.seq > this.bridge.seq)) this.bridge = e;
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
