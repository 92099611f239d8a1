// Threads: all. Errors that cross the public API or a thread boundary.
//
// Operating errors carry a stable Level code (the semver contract; messages are not).
// Programmer errors are assertion failures (see assert.ts) and are never caught.
// Errors travel between threads as plain { code, message, cause } objects and are
// rebuilt on arrival with errorFromWire().

export type LevelErrorCode =
  | 'LEVEL_DATABASE_NOT_OPEN'
  | 'LEVEL_INVALID_KEY'
  | 'LEVEL_INVALID_VALUE'
  | 'LEVEL_CORRUPTION'
  | 'LEVEL_IO_ERROR'
  | 'LEVEL_LOCKED'
  | 'LEVEL_NOT_SUPPORTED'
  | 'LEVEL_TIMEOUT';

export class StemeError extends Error {
  readonly code: LevelErrorCode;
  constructor(code: LevelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'StemeError';
  }
}

/** A checksum or structural failure in a file; always names the file and byte offset. */
export class CorruptionError extends StemeError {
  readonly file: string;
  readonly offset: number;
  constructor(file: string, offset: number, what: string) {
    super('LEVEL_CORRUPTION', `corruption in ${file} at offset ${offset}: ${what}`);
    this.file = file;
    this.offset = offset;
  }
}

export function ioError(message: string, cause: unknown): StemeError {
  return new StemeError('LEVEL_IO_ERROR', message, { cause });
}

export interface WireError {
  code: string;
  message: string;
  cause?: { code?: string; message?: string; errno?: number; syscall?: string; path?: string };
  file?: string;
  offset?: number;
}

export function errorToWire(err: unknown): WireError {
  const e = err as any;
  const out: WireError = { code: e?.code ?? 'LEVEL_IO_ERROR', message: String(e?.message ?? e) };
  const cause = e?.cause ?? (e?.code && !String(e.code).startsWith('LEVEL_') ? e : undefined);
  if (cause) {
    out.cause = { code: cause.code, message: String(cause.message ?? cause), errno: cause.errno, syscall: cause.syscall, path: cause.path };
  }
  if (e instanceof CorruptionError) { out.file = e.file; out.offset = e.offset; }
  if (!String(out.code).startsWith('LEVEL_')) out.code = 'LEVEL_IO_ERROR';
  return out;
}

export function errorFromWire(w: WireError): StemeError {
  if (w.code === 'LEVEL_CORRUPTION' && w.file !== undefined) {
    const e = new CorruptionError(w.file, w.offset ?? 0, '');
    e.message = w.message;
    return e;
  }
  let cause: Error | undefined;
  if (w.cause) {
    cause = Object.assign(new Error(w.cause.message ?? w.cause.code ?? 'error'), w.cause);
  }
  return new StemeError(w.code as LevelErrorCode, w.message, cause ? { cause } : undefined);
}
