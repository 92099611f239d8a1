// Threads: all (test use only). An error-injecting FileSystem: wraps the Node file system and
// fails chosen operations with an errno, chosen by operation, path pattern and count, the
// way Pebble's vfs/errorfs and LevelDB's fault_injection_test do.
//
// Every thread builds its own instance from the same plain spec, so a fault reaches the WAL
// worker and the pool threads too. Tests set STEMEDB_FAULTS (JSON of FaultRule[]) before the
// first database opens; fs.ts installs it at load in every thread.

import type { FileSystem } from './fs.js';

export type FaultOp = 'open' | 'read' | 'write' | 'fdatasync' | 'fsync' | 'syncDir' | 'rename' | 'unlink' | 'truncate';

export interface FaultRule {
  op: FaultOp;
  /** Regular expression matched against the file path (for fd operations, the path it was opened with). */
  path?: string;
  /** errno code to fail with, e.g. 'EIO' or 'ENOSPC'. */
  code: string;
  /** Matching calls to let through before failing. Default 0. */
  skip?: number;
  /** Matching calls to fail after the skipped ones. Default: all of them. */
  times?: number;
}

function errnoError(code: string, op: string, file: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: injected fault, ${op} '${file}'`) as NodeJS.ErrnoException;
  e.code = code;
  e.syscall = op;
  e.path = file;
  e.errno = code === 'ENOSPC' ? -28 : code === 'EIO' ? -5 : -1;
  return e;
}

export function faultyFileSystem(base: FileSystem, rules: FaultRule[]): FileSystem {
  const seen = rules.map(() => 0);
  const paths = new Map<number, string>();
  const patterns = rules.map((r) => (r.path ? new RegExp(r.path) : undefined));
  const check = (op: FaultOp, file: string) => {
    rules.forEach((rule, i) => {
      if (rule.op !== op || (patterns[i] && !patterns[i]!.test(file))) return;
      const n = seen[i]++;
      const skip = rule.skip ?? 0;
      if (n >= skip && n < skip + (rule.times ?? Infinity)) throw errnoError(rule.code, op, file);
    });
  };
  const pathOf = (fd: number) => paths.get(fd) ?? `fd:${fd}`;
  return {
    ...base,
    openSync: (file, flags) => { check('open', file); const fd = base.openSync(file, flags); paths.set(fd, file); return fd; },
    closeSync: (fd) => { paths.delete(fd); base.closeSync(fd); },
    readSync: (fd, buf, off, len, pos) => { check('read', pathOf(fd)); return base.readSync(fd, buf, off, len, pos); },
    read: async (fd, buf, off, len, pos) => { check('read', pathOf(fd)); return base.read(fd, buf, off, len, pos); },
    writeSync: (fd, buf, off, len, pos) => { check('write', pathOf(fd)); return base.writeSync(fd, buf, off, len, pos); },
    fdatasyncSync: (fd) => { check('fdatasync', pathOf(fd)); base.fdatasyncSync(fd); },
    fsyncSync: (fd) => { check('fsync', pathOf(fd)); base.fsyncSync(fd); },
    ftruncateSync: (fd, length) => { check('truncate', pathOf(fd)); base.ftruncateSync(fd, length); },
    syncDirSync: (dir) => { check('syncDir', dir); base.syncDirSync(dir); },
    renameSync: (a, b) => { check('rename', a); base.renameSync(a, b); },
    unlinkSync: (file) => { check('unlink', file); base.unlinkSync(file); },
  };
}
