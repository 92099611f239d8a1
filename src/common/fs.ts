// Threads: all. The one file-system interface every file operation goes through.
//
// Workers cannot receive functions, so a file system is described by a plain FileSystemSpec
// that each thread turns into an implementation with installFileSystem(). The default is
// the Node file system. Test implementations (error injection, power loss) plug in here.

import * as nodeFs from 'node:fs';
import { faultyFileSystem, type FaultRule } from './fault-fs.js';
import { powerLossFileSystem, type PowerLossSpec } from './power-loss-fs.js';

export interface FileSystem {
  openSync(file: string, flags: string): number;
  closeSync(fd: number): void;
  readSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number;
  writeSync(fd: number, buf: Uint8Array, offset: number, length: number, position?: number | null): number;
  fdatasyncSync(fd: number): void;
  fsyncSync(fd: number): void;
  fstatSizeSync(fd: number): number;
  /** Truncates an open file and makes the new length durable. */
  ftruncateSync(fd: number, length: number): void;
  renameSync(from: string, to: string): void;
  unlinkSync(file: string): void;
  mkdirSync(dir: string): void;
  readdirSync(dir: string): string[];
  existsSync(file: string): boolean;
  readFileSync(file: string): Buffer;
  /** fsync a directory so that entries created or renamed in it survive power loss. */
  syncDirSync(dir: string): void;
  read(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
}

export type FileSystemSpec = { kind: 'node' } | { kind: 'faulty'; rules: FaultRule[] } | PowerLossSpec;

export const nodeFileSystem: FileSystem = {
  openSync: (f, flags) => nodeFs.openSync(f, flags),
  closeSync: (fd) => nodeFs.closeSync(fd),
  readSync: (fd, buf, off, len, pos) => nodeFs.readSync(fd, buf, off, len, pos),
  writeSync: (fd, buf, off, len, pos) => nodeFs.writeSync(fd, buf, off, len, pos ?? null),
  fdatasyncSync: (fd) => nodeFs.fdatasyncSync(fd),
  fsyncSync: (fd) => nodeFs.fsyncSync(fd),
  fstatSizeSync: (fd) => nodeFs.fstatSync(fd).size,
  ftruncateSync: (fd, length) => nodeFs.ftruncateSync(fd, length),
  renameSync: (a, b) => nodeFs.renameSync(a, b),
  unlinkSync: (f) => nodeFs.unlinkSync(f),
  mkdirSync: (d) => { nodeFs.mkdirSync(d, { recursive: true }); },
  readdirSync: (d) => nodeFs.readdirSync(d),
  existsSync: (f) => nodeFs.existsSync(f),
  readFileSync: (f) => nodeFs.readFileSync(f),
  syncDirSync: (d) => {
    const fd = nodeFs.openSync(d, 'r');
    try { nodeFs.fsyncSync(fd); } finally { nodeFs.closeSync(fd); }
  },
  read: (fd, buf, off, len, pos) =>
    new Promise((resolve, reject) => nodeFs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)))),
};

let current: FileSystem = nodeFileSystem;
let currentSpec: FileSystemSpec = { kind: 'node' };

export function fileSystem(): FileSystem {
  return current;
}

export function fileSystemSpec(): FileSystemSpec {
  return currentSpec;
}

export function installFileSystem(spec: FileSystemSpec, impl?: FileSystem): void {
  currentSpec = spec;
  current = impl ?? (spec.kind === 'faulty' ? faultyFileSystem(nodeFileSystem, spec.rules)
    : spec.kind === 'power-loss' ? powerLossFileSystem(nodeFileSystem, spec) : nodeFileSystem);
}

// Test hook: every thread (workers inherit the environment) installs the same injected faults.
if (typeof process !== 'undefined' && process.env.STEMEDB_FAULTS) {
  installFileSystem({ kind: 'faulty', rules: JSON.parse(process.env.STEMEDB_FAULTS) as FaultRule[] });
}
// Test hook: STEMEDB_POWER_LOSS = JSON of { root, shadow } journals durability (power-loss-fs.ts).
if (typeof process !== 'undefined' && process.env.STEMEDB_POWER_LOSS) {
  installFileSystem({ ...(JSON.parse(process.env.STEMEDB_POWER_LOSS) as Omit<PowerLossSpec, 'kind'>), kind: 'power-loss' });
}

/** Reads exactly length bytes or fails; short reads mean the file is shorter than its metadata says. */
export function readExactSync(fd: number, buf: Uint8Array, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = current.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

export async function readExact(fd: number, buf: Uint8Array, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const n = await current.read(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

export function writeAllSync(fd: number, buf: Uint8Array, position?: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = current.writeSync(fd, buf, done, buf.length - done, position === undefined ? null : position + done);
    done += n;
  }
}

