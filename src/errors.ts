// Every user-facing error has a code and is defined here, so messages stay consistent and
// tests can assert on codes (the fastify lib/errors.js pattern).

export type ErrorCode =
  | 'E_USAGE'
  | 'E_CONFIG_FILE'
  | 'E_CONFIG_JSON'
  | 'E_CONFIG_VALUE'
  | 'E_ENV_VALUE'
  | 'E_STATE_DIR'
  | 'E_LOCKED'
  | 'E_LEDGER_UNSAFE'
  | 'E_LOG_SOURCE'
  | 'E_METRICS_PORT'
  | 'E_SERVICE_TEMPLATE'
  | 'E_SERVICE_EXISTS'
  | 'E_SERVICE_FILE'
  | 'E_SERVICE_MANAGER';

export class ReaperError extends Error {
  readonly code: ErrorCode;
  /** Process exit code the CLI uses when this error ends a command. */
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, exitCode = 2) {
    super(message);
    this.name = 'ReaperError';
    this.code = code;
    this.exitCode = exitCode;
  }
}

export const usageError = (message: string) => new ReaperError('E_USAGE', message);

export const configError = (where: string, key: string, value: unknown, expected: string) =>
  new ReaperError(
    'E_CONFIG_VALUE',
    `${where}: key "${key}" has value ${JSON.stringify(value)}; expected ${expected}`,
  );

export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err
    ? String((err as { code: unknown }).code)
    : undefined;
}
