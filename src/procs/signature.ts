import { basename } from 'node:path';
import type { Signature } from '../config/schema.js';
import type { ProcessInfo } from './types.js';

/** What a worker child carries in its argv. */
export interface CellIdentity {
  sid: string;
  bridgePort: number;
  /** 0.31.18: `--session-id` / `--resume` uuid, derived from the sid. */
  sessionUuid: string | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The sid and bridge port of a worker child, or null when argv is not the worker-child signature. */
export function matchWorkerChild(argv: readonly string[], sig: Signature): CellIdentity | null {
  for (const token of sig.requiredArgs) if (!argv.includes(token)) return null;
  const flagAt = argv.indexOf(sig.mcpConfigFlag);
  const json = flagAt >= 0 ? argv[flagAt + 1] : undefined;
  if (json === undefined) return null;
  const url = hummingUrl(json, sig.mcpServerName);
  if (!url) return null;
  // hum's bridge is always local: http://127.0.0.1:<port>/s/<sid>
  const m = /^http:\/\/(?:127\.0\.0\.1|localhost|\[::1\]):(\d{1,5})\/s\/([^/?#\s]+)$/.exec(url);
  if (!m) return null;
  const bridgePort = Number(m[1]);
  const sid = m[2]!;
  if (bridgePort < 1 || bridgePort > 65535 || !sid.startsWith(sig.sidPrefix)) return null;
  return { sid, bridgePort, sessionUuid: sessionUuidOf(argv) };
}

function hummingUrl(json: string, server: string): string | null {
  let cfg: unknown;
  try {
    cfg = JSON.parse(json);
  } catch {
    return null;
  }
  const url = (cfg as { mcpServers?: Record<string, { url?: unknown }> } | null)?.mcpServers?.[server]?.url;
  return typeof url === 'string' ? url : null;
}

function sessionUuidOf(argv: readonly string[]): string | null {
  for (const flag of ['--session-id', '--resume']) {
    const v = argv[argv.indexOf(flag) + 1];
    if (argv.includes(flag) && v !== undefined && UUID.test(v)) return v.toLowerCase();
  }
  return null;
}

/** The worker runs as `claude-cli-worker` with no arguments; Linux truncates comm to 15 bytes. */
export function isWorkerProcess(p: ProcessInfo, sig: Signature): boolean {
  if (sig.workerNames.includes(p.name)) return true;
  const argv0 = p.argv[0];
  return argv0 !== undefined && sig.workerNames.includes(basename(argv0));
}
