import { loadConfig } from '../config/load.js';
import { defaultProcessReader } from '../procs/reader.js';
import { Daemon } from '../service/daemon.js';
import { createLogger } from '../service/logger.js';
import type { CommonArgs } from './args.js';
import type { CommandIO } from './reap.js';

/** `hum-reaper run`: the daemon, until SIGTERM/SIGINT. SIGHUP reloads the config. */
export async function runCommand(args: CommonArgs, io: CommandIO): Promise<number> {
  const { config, warnings } = loadConfig({ flags: args.flags });
  const log = createLogger({ level: process.env.HUM_REAPER_LOG_LEVEL ?? 'info' });
  warnings.forEach((w) => log.warn({ event: 'config.warning', warning: w }));
  const daemon = new Daemon({ config, reader: io.reader ?? defaultProcessReader(), log });

  let stopping: Promise<void> | null = null;
  const stop = (signal: string) => {
    log.info({ event: 'reaper.signal', signal });
    stopping ??= daemon.stop();
  };
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGTERM', () => { stop('SIGTERM'); void stopping!.then(resolve); });
    process.once('SIGINT', () => { stop('SIGINT'); void stopping!.then(resolve); });
  });
  process.on('SIGHUP', () => {
    try {
      daemon.reload(loadConfig({ flags: args.flags }).config);
    } catch (err) {
      log.error({ event: 'reaper.reload-failed', error: (err as Error).message });
    }
  });
  // A bad line, a failed ps or EPERM is logged where it happens; anything that still gets
  // here is logged and survived rather than taking the sidecar down.
  process.on('unhandledRejection', (err) => log.error({ event: 'reaper.unhandled', error: String(err) }));

  await daemon.start();
  await stopped;
  return 0;
}
