import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { ReaperError, errnoCode } from '../errors.js';
import { writeFileAtomic } from './atomic.js';
import type { DaemonStats } from './daemon.js';

export const METRICS_FILE = 'metrics.prom';
/** Kill latency buckets (seconds), from the log line's timestamp to SIGTERM. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];

/** Kill latencies as a Prometheus histogram: cumulative bucket counts, sum and count. */
export class LatencyHistogram {
  readonly counts = LATENCY_BUCKETS.map(() => 0);
  sum = 0;
  count = 0;

  observe(ms: number): void {
    const s = ms / 1000;
    LATENCY_BUCKETS.forEach((b, i) => {
      if (s <= b) this.counts[i]!++;
    });
    this.sum += s;
    this.count++;
  }
}

type Sample = [labels: Record<string, string>, value: number];

function family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string, samples: Sample[]): string {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
  for (const [labels, value] of samples) {
    const l = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
    lines.push(`${name}${l.length ? `{${l.join(',')}}` : ''} ${Number.isFinite(value) ? value : 0}`);
  }
  return lines.join('\n');
}

/** The Prometheus text exposition of what the daemon has done (node_exporter textfile format). */
export function renderMetrics(stats: DaemonStats, latency: LatencyHistogram, now = Date.now()): string {
  const reasons = ['evicted', 'idle-killed', 'superseded', 'stale-connection', 'unparented'];
  const sec = (ms: number | null) => (ms === null ? 0 : ms / 1000);
  const lagSeconds = stats.tailLagBytes > 0 && stats.lastEventAt !== null ? Math.max(0, (now - stats.lastEventAt) / 1000) : 0;
  return [
    family('hum_reaper_kills_total', 'counter', 'Orphaned claude processes killed, by reason.', reasons.map((r) => [{ reason: r }, stats.kills[r] ?? 0])),
    family('hum_reaper_kill_failures_total', 'counter', 'Kills that failed (EPERM, survived SIGKILL).', [[{}, stats.failures]]),
    family('hum_reaper_rss_freed_bytes_total', 'counter', 'Resident memory of the killed process trees.', [[{}, stats.rssFreedBytes]]),
    family('hum_reaper_evictions_seen_total', 'counter', 'worker.cell.evict.lru and worker.cell.idle.kill lines read.', [[{}, stats.evictionsSeen]]),
    family('hum_reaper_log_events_total', 'counter', 'Worker lifecycle events read from the log.', [[{}, stats.events]]),
    family('hum_reaper_sweeps_total', 'counter', 'Full process-table sweeps.', [[{}, stats.sweeps]]),
    family('hum_reaper_orphans_last_sweep', 'gauge', 'Orphans found by the last sweep.', [[{}, stats.lastSweepOrphans]]),
    family('hum_reaper_sweep_duration_seconds', 'gauge', 'Duration of the last sweep.', [[{}, sec(stats.lastSweepMs)]]),
    family('hum_reaper_last_sweep_timestamp_seconds', 'gauge', 'When the last sweep ended (Unix time).', [[{}, sec(stats.lastSweepAt)]]),
    family('hum_reaper_last_event_timestamp_seconds', 'gauge', 'Log timestamp of the newest worker event read (Unix time).', [[{}, sec(stats.lastEventAt)]]),
    family('hum_reaper_tail_lag_bytes', 'gauge', 'Bytes of worker log not read yet.', [[{}, stats.tailLagBytes]]),
    family('hum_reaper_tail_lag_seconds', 'gauge', 'Age of the newest event read while unread log remains (0 when caught up).', [[{}, lagSeconds]]),
    family('hum_reaper_start_time_seconds', 'gauge', 'When the daemon started (Unix time).', [[{}, sec(stats.startedAt)]]),
    [
      '# HELP hum_reaper_kill_latency_seconds From an eviction line\'s own timestamp to SIGTERM.',
      '# TYPE hum_reaper_kill_latency_seconds histogram',
      ...LATENCY_BUCKETS.map((b, i) => `hum_reaper_kill_latency_seconds_bucket{le="${b}"} ${latency.counts[i]}`),
      `hum_reaper_kill_latency_seconds_bucket{le="+Inf"} ${latency.count}`,
      `hum_reaper_kill_latency_seconds_sum ${latency.sum}`,
      `hum_reaper_kill_latency_seconds_count ${latency.count}`,
    ].join('\n'),
  ].join('\n') + '\n';
}

export async function writeMetricsFile(stateDir: string, text: string): Promise<void> {
  await writeFileAtomic(join(stateDir, METRICS_FILE), text, 0o644);
}

/** GET /metrics on 127.0.0.1 only: never exposed beyond this machine. */
export function serveMetrics(port: number, render: () => string): Promise<Server> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    if (req.method === 'GET' && (path === '/metrics' || path === '/')) {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(render());
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err) =>
      reject(new ReaperError('E_METRICS_PORT', `--metrics-port ${port}: cannot listen on 127.0.0.1:${port} (${errnoCode(err) ?? String(err)})`)),
    );
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}
