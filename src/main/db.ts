// Threads: the caller's (main) thread. StemeDB, the public class: an abstract-level 3 database,
// a drop-in for classic-level's ClassicLevel.
//
// Like every abstract-level implementation it is a thin layer: abstract-level checks that the
// database is open, validates and encodes arguments, then calls the hooks below. Writes go
// to the WAL worker through the write ring (write-channel.ts); reads go straight to shared
// memory and SST files (version.ts) without a thread round trip.

import { AbstractIterator, AbstractLevel, AbstractSnapshot } from 'abstract-level';
import { StemeError } from '../common/errors.js';
import { EntryKind, KEY_BYTES_MAX, VALUE_BYTES_MAX } from '../common/keys.js';
import type { BatchOp } from '../log/batch.js';
import { LEVEL_COUNT, type FileMeta } from '../log/manifest.js';
import { Control, RING_CAPACITY_BYTES_MAX, RING_CAPACITY_BYTES_MIN } from '../shm/layout.js';
import type { DatabaseOptions, WalReply } from '../shm/messages.js';
import { Memtable } from '../shm/memtable.js';
import { createRingBuffer } from '../shm/ring.js';
import { ControlBlock } from '../shm/signals.js';
import { BlockCache } from '../sst/block-cache.js';
import { acquireRuntime, type Runtime, type RuntimeClient } from './runtime.js';
import { SnapshotScanner, type ScanRange } from './scanner.js';
import { TableCache, Version, type MemtableRef } from './version.js';
import { WriteChannel } from './write-channel.js';
import { errorFromWire } from '../common/errors.js';
import { compareInternalKeys } from '../common/keys.js';

export interface StemeDBOptions {
  keyEncoding?: string;
  valueEncoding?: string;
  /** Create the database if it does not exist. Default true. */
  createIfMissing?: boolean;
  /** Fail to open if the database exists. Default false. */
  errorIfExists?: boolean;
  /** Memtable size in bytes before it is flushed to an SST. Default 4 MiB. */
  writeBufferSize?: number;
  /** Block cache capacity in bytes. Default 8 MiB. */
  cacheSize?: number;
  /** Uncompressed SST data block size. Default 4096. */
  blockSize?: number;
  /** 'lz4' (default; classic-level's 'snappy' and true are read as lz4) or 'none'/false. */
  compression?: boolean | string;
  /** Write ring capacity in bytes, a power of two. Default 4 MiB. */
  ringBytes?: number;
  /** Immutable memtables allowed to wait for a flush before writes stall. Default 2. */
  immutableMemtablesMax?: number;
  /** Flush/compaction threads in the shared pool. Default: availableParallelism() - 1, 1..4. */
  maintenanceThreads?: number;
  [key: string]: unknown;
}

const DEFAULTS = {
  writeBufferSize: 4 * 1024 * 1024,
  cacheSize: 8 * 1024 * 1024,
  blockSize: 4096,
  ringBytes: 4 * 1024 * 1024,
  immutableMemtablesMax: 2,
};

const FLUSH_RETRY_MS_MAX = 5000;

type AnyOptions = Record<string, any>;

function boundedInteger(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new TypeError(`The '${name}' option must be an integer between ${min} and ${max}`);
  }
  return value;
}

function checkKey(key: Uint8Array): void {
  if (key.length > KEY_BYTES_MAX) throw new StemeError('LEVEL_INVALID_KEY', `key is ${key.length} bytes; the limit is ${KEY_BYTES_MAX}`);
}
function checkValue(value: Uint8Array): void {
  if (value.length > VALUE_BYTES_MAX) throw new StemeError('LEVEL_INVALID_VALUE', `value is ${value.length} bytes; the limit is ${VALUE_BYTES_MAX}`);
}

function asBytes(x: unknown): Uint8Array {
  if (x instanceof Uint8Array) return x;
  if (typeof x === 'string') return Buffer.from(x, 'utf8');
  throw new TypeError('expected a Buffer, Uint8Array or string');
}

function rangeOf(options: AnyOptions): ScanRange {
  const r: ScanRange = {};
  if (options.gt != null) r.gt = asBytes(options.gt);
  if (options.gte != null) r.gte = asBytes(options.gte);
  if (options.lt != null) r.lt = asBytes(options.lt);
  if (options.lte != null) r.lte = asBytes(options.lte);
  return r;
}

interface ReadView {
  version: Version;
  sequence: number;
}

// The published typings omit AbstractSnapshot's constructor(options), which the runtime requires.
const SnapshotBase = AbstractSnapshot as unknown as new (options: AnyOptions) => AbstractSnapshot;

class StemeSnapshot extends SnapshotBase {
  constructor(options: AnyOptions, readonly view: ReadView) {
    super(options);
  }
}

class StemeIterator extends AbstractIterator<StemeDB<any, any>, any, any> {
  private readonly scanner: SnapshotScanner;
  constructor(db: StemeDB<any, any>, options: AnyOptions, scanner: SnapshotScanner) {
    super(db, options as any);
    this.scanner = scanner;
  }
  async _next(): Promise<[Buffer, Buffer] | undefined> {
    return this.scanner.next();
  }
  async _nextv(size: number): Promise<[Buffer, Buffer][]> {
    const out: [Buffer, Buffer][] = [];
    while (out.length < size) {
      const e = this.scanner.next();
      if (!e) break;
      out.push(e);
    }
    return out;
  }
  async _all(): Promise<[Buffer, Buffer][]> {
    const out: [Buffer, Buffer][] = [];
    for (let e = this.scanner.next(); e; e = this.scanner.next()) out.push(e);
    return out;
  }
  _seek(target: Uint8Array): void {
    this.scanner.seek(target);
  }
  async _close(): Promise<void> {
    this.scanner.close();
  }
}

export class StemeDB<KDefault = string, VDefault = string> extends AbstractLevel<Buffer | Uint8Array, KDefault, VDefault> implements RuntimeClient {
  readonly location: string;
  private readonly config: Omit<DatabaseOptions, 'createIfMissing' | 'errorIfExists'> & { cacheSize: number; blockSize: number; compression: boolean; ringBytes: number; maintenanceThreads?: number };
  private runtime: Runtime | undefined;
  private dbId = 0;
  private writes: WriteChannel | undefined;
  private version: Version | undefined;
  private tables: TableCache | undefined;
  private nextFileNumber = 0;
  private lastFlushedSequence = 0;
  private flushing: Promise<void> | undefined;
  private flushError: Error | undefined;
  private flushRetryMs = 0;
  private flushRetryTimer: NodeJS.Timeout | undefined;
  private flushWaiters: (() => void)[] = [];
  private closing = false;

  constructor(location: string, options: StemeDBOptions = {}) {
    super({
      encodings: { buffer: true, view: true },
      has: true,
      getSync: true,
      seek: true,
      createIfMissing: true,
      errorIfExists: true,
      implicitSnapshots: true,
      explicitSnapshots: true,
      permanence: true,
      additionalMethods: { flush: true, compactRange: true, stats: true, approximateSize: true, getProperty: true },
    } as any, options as any);
    if (typeof location !== 'string' || location === '') throw new TypeError("The first argument 'location' must be a non-empty string");
    this.location = location;
    const compression = options.compression === undefined ? true : !(options.compression === false || options.compression === 'none');
    this.config = {
      writeBufferSize: boundedInteger('writeBufferSize', options.writeBufferSize, DEFAULTS.writeBufferSize, 64 * 1024, 1024 * 1024 * 1024),
      cacheSize: boundedInteger('cacheSize', options.cacheSize, DEFAULTS.cacheSize, 0, 64 * 1024 * 1024 * 1024),
      blockSize: boundedInteger('blockSize', options.blockSize, DEFAULTS.blockSize, 256, 4 * 1024 * 1024),
      compression,
      ringBytes: boundedInteger('ringBytes', options.ringBytes, DEFAULTS.ringBytes, RING_CAPACITY_BYTES_MIN, RING_CAPACITY_BYTES_MAX),
      immutableMemtablesMax: boundedInteger('immutableMemtablesMax', options.immutableMemtablesMax, DEFAULTS.immutableMemtablesMax, 1, 64),
      walPreallocateBytes: 0,
      maintenanceThreads: options.maintenanceThreads === undefined ? undefined : boundedInteger('maintenanceThreads', options.maintenanceThreads, 1, 1, 64),
    };
    if ((this.config.ringBytes & (this.config.ringBytes - 1)) !== 0) throw new TypeError("The 'ringBytes' option must be a power of two");
  }

  // ---- open / close ----

  async _open(options: AnyOptions): Promise<void> {
    const runtime = acquireRuntime(this.config.maintenanceThreads);
    const dbId = runtime.newDbId();
    const ring = createRingBuffer(this.config.ringBytes);
    const control = new ControlBlock();
    let reply: WalReply;
    try {
      reply = await runtime.request({
        type: 'open',
        dbId,
        location: this.location,
        ring,
        control: control.buffer,
        ownerThreadId: runtime.ownerThreadId,
        options: {
          createIfMissing: options.createIfMissing !== false,
          errorIfExists: options.errorIfExists === true,
          writeBufferSize: this.config.writeBufferSize,
          immutableMemtablesMax: this.config.immutableMemtablesMax,
          walPreallocateBytes: this.config.walPreallocateBytes,
        },
      });
    } catch (e) {
      runtime.unacquire();
      throw e;
    }
    if (reply.type !== 'opened') throw new Error('stemedb assertion failed: unexpected open reply');
    const refs: MemtableRef[] = reply.memtables.map((m) => ({ generation: m.generation, memtable: Memtable.attach(m.buffer), firstSegment: m.firstSegment }));
    const active = refs[refs.length - 1];
    const levels = reply.state.levels.map((files, level) => (level === 0 ? files : [...files].sort((a, b) => compareInternalKeys(a.smallestKey, b.smallestKey))));
    this.runtime = runtime;
    this.dbId = dbId;
    this.closing = false;
    this.flushError = undefined;
    this.version = new Version(active, refs.slice(0, -1), levels);
    this.tables = new TableCache(this.location, new BlockCache(this.config.cacheSize));
    this.writes = new WriteChannel(ring, control.buffer, runtime, reply.lastSequence, active.generation);
    this.nextFileNumber = reply.state.nextFileNumber;
    this.lastFlushedSequence = reply.state.lastSequence;
    runtime.attach(dbId, this);
    this.scheduleFlush();
  }

  async _close(): Promise<void> {
    const runtime = this.runtime;
    if (!runtime) return;
    this.closing = true;
    if (this.flushRetryTimer) { clearTimeout(this.flushRetryTimer); this.flushRetryTimer = undefined; }
    // Let writes already handed to us settle, and a running flush finish its MANIFEST edit.
    while (this.writes && this.writes.pendingCount > 0) await new Promise((r) => setTimeout(r, 1));
    while (this.flushing) await this.flushing;
    try {
      await runtime.request({ type: 'close', dbId: this.dbId });
    } finally {
      runtime.detach(this.dbId);
      this.tables?.closeAll();
      this.runtime = undefined;
      this.writes = undefined;
      this.version = undefined;
      this.tables = undefined;
      runtime.unacquire();
    }
  }

  // ---- events from the WAL worker ----

  onRotated(reply: Extract<WalReply, { type: 'rotated' }>): void {
    const version = this.version;
    if (!version || !this.writes) return;
    const next: MemtableRef = { generation: reply.memtable.generation, memtable: Memtable.attach(reply.memtable.buffer), firstSegment: reply.memtable.firstSegment };
    const old = version.active;
    // An immutable old memtable waits for its flush; an empty one that was merely too small is dropped.
    const immutables = old.memtable.isImmutable ? [...version.immutables, old] : version.immutables;
    this.version = new Version(next, immutables, version.levels);
    this.writes.generationArrived(next.generation);
    this.scheduleFlush();
  }

  onFailed(reply: Extract<WalReply, { type: 'failed' }>): void {
    const error = errorFromWire(reply.error);
    this.writes?.setFailure(error);
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  // ---- flush ----

  private scheduleFlush(): void {
    if (this.flushing || this.closing || this.flushRetryTimer || !this.version || this.version.immutables.length === 0) return;
    this.flushing = this.flushOldest().finally(() => {
      this.flushing = undefined;
      for (const w of this.flushWaiters.splice(0)) w();
      this.scheduleFlush();
    });
  }

  /** Writes the oldest immutable memtable to a level-0 SST and records it in the MANIFEST. */
  private async flushOldest(): Promise<void> {
    const runtime = this.runtime!;
    const version = this.version!;
    const target = version.immutables[0];
    const fileNumber = this.nextFileNumber++;
    try {
      const result = await runtime.flush({
        type: 'flush',
        location: this.location,
        fileNumber,
        memtable: target.memtable.buffer,
        blockSize: this.config.blockSize,
        compression: this.config.compression,
      });
      const after = version.immutables[1] ?? this.version!.active;
      const file: FileMeta = { level: 0, ...result };
      const lastSequence = Math.max(this.lastFlushedSequence, result.largestSequence);
      await runtime.request({
        type: 'edit',
        dbId: this.dbId,
        edit: { added: [file], logNumber: after.firstSegment, nextFileNumber: this.nextFileNumber, lastSequence },
      });
      this.lastFlushedSequence = lastSequence;
      const current = this.version!;
      const levels = current.levels.map((files, level) => (level === 0 ? [file, ...files] : files));
      this.version = new Version(current.active, current.immutables.filter((m) => m !== target), levels);
      this.flushError = undefined;
      this.flushRetryMs = 0;
      const control = this.writes!.control;
      control.add(Control.ImmutableCount, -1);
      runtime.doorbell.ring(); // a stalled WAL worker may continue
    } catch (e) {
      // The memtable stays immutable and readable; retry with backoff. Writes stall meanwhile
      // once immutableMemtablesMax is reached, rather than growing memory without bound.
      this.flushError = e as Error;
      this.flushRetryMs = Math.min(FLUSH_RETRY_MS_MAX, Math.max(50, this.flushRetryMs * 2));
      if (!this.closing) {
        this.flushRetryTimer = setTimeout(() => { this.flushRetryTimer = undefined; this.scheduleFlush(); }, this.flushRetryMs);
      }
      if (this.listenerCount('error') > 0) this.emit('error', e);
    }
  }

  /** Persists the active memtable (and any waiting immutable ones) to SSTs. */
  async flush(): Promise<void> {
    if (this.status !== 'open') throw new StemeError('LEVEL_DATABASE_NOT_OPEN', 'Database is not open');
    await this.writes!.rotate();
    const generation = this.writes!.knownGeneration;
    for (;;) {
      const version = this.version;
      if (!version) throw new StemeError('LEVEL_DATABASE_NOT_OPEN', 'Database closed during flush');
      if (!version.immutables.some((m) => m.generation < generation)) return;
      if (this.flushError && !this.flushing) throw this.flushError;
      await new Promise<void>((resolve) => this.flushWaiters.push(resolve));
    }
  }

  // ---- writes ----

  private write(ops: BatchOp[], options: AnyOptions | undefined): Promise<void> {
    return this.writes!.write(ops, options?.sync === true);
  }

  async _put(key: Uint8Array, value: Uint8Array, options: AnyOptions): Promise<void> {
    checkKey(key);
    checkValue(value);
    return this.write([{ kind: EntryKind.Put, key, value }], options);
  }

  async _del(key: Uint8Array, options: AnyOptions): Promise<void> {
    checkKey(key);
    return this.write([{ kind: EntryKind.Delete, key }], options);
  }

  async _batch(operations: AnyOptions[], options: AnyOptions): Promise<void> {
    const ops: BatchOp[] = new Array(operations.length);
    let total = 0;
    for (let i = 0; i < operations.length; i++) {
      const op = operations[i];
      checkKey(op.key);
      if (op.type === 'put') {
        checkValue(op.value);
        total += op.value.length;
        ops[i] = { kind: EntryKind.Put, key: op.key, value: op.value };
      } else {
        ops[i] = { kind: EntryKind.Delete, key: op.key };
      }
      total += op.key.length;
    }
    if (total > VALUE_BYTES_MAX) throw new StemeError('LEVEL_INVALID_VALUE', `batch is ${total} bytes; the limit is ${VALUE_BYTES_MAX}`);
    if (ops.length === 0) return;
    return this.write(ops, options);
  }

  // ---- reads ----

  private view(options: AnyOptions | undefined): ReadView {
    const snapshot = options?.snapshot as StemeSnapshot | undefined;
    if (snapshot) return snapshot.view;
    return { version: this.version!, sequence: this.writes!.visibleSequence };
  }

  _getSync(key: Uint8Array, options: AnyOptions): Buffer | undefined {
    const v = this.view(options);
    return v.version.getSync(key, v.sequence, this.tables!) as Buffer | undefined;
  }

  async _get(key: Uint8Array, options: AnyOptions): Promise<Buffer | undefined> {
    const v = this.view(options);
    return (await v.version.get(key, v.sequence, this.tables!)) as Buffer | undefined;
  }

  async _getMany(keys: Uint8Array[], options: AnyOptions): Promise<(Buffer | undefined)[]> {
    const v = this.view(options);
    const out: (Buffer | undefined)[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) out[i] = (await v.version.get(keys[i], v.sequence, this.tables!)) as Buffer | undefined;
    return out;
  }

  async _has(key: Uint8Array, options: AnyOptions): Promise<boolean> {
    return (await this._get(key, options)) !== undefined;
  }

  async _hasMany(keys: Uint8Array[], options: AnyOptions): Promise<boolean[]> {
    return (await this._getMany(keys, options)).map((v) => v !== undefined);
  }

  private scanner(options: AnyOptions): SnapshotScanner {
    const v = this.view(options);
    return new SnapshotScanner(v.version.iterators(this.tables!), v.sequence, options.reverse === true, rangeOf(options), options.limit ?? Infinity);
  }

  _iterator(options: AnyOptions): StemeIterator {
    return new StemeIterator(this, options, this.scanner(options));
  }

  _snapshot(options: AnyOptions): StemeSnapshot {
    return new StemeSnapshot(options, { version: this.version!, sequence: this.writes!.visibleSequence });
  }

  async _clear(options: AnyOptions): Promise<void> {
    const scanner = this.scanner(options);
    try {
      for (;;) {
        const ops: BatchOp[] = [];
        while (ops.length < 1000) {
          const e = scanner.next();
          if (!e) break;
          ops.push({ kind: EntryKind.Delete, key: e[0] });
        }
        if (ops.length === 0) return;
        await this.write(ops, undefined);
        if (ops.length < 1000) return;
      }
    } finally {
      scanner.close();
    }
  }

  // ---- introspection ----

  stats(): Record<string, unknown> {
    if (this.status !== 'open') throw new StemeError('LEVEL_DATABASE_NOT_OPEN', 'Database is not open');
    const version = this.version!;
    const levels = version.levels.map((files, level) => ({ level, fileCount: files.length, bytes: files.reduce((n, f) => n + f.fileSize, 0) }));
    const cache = this.tables!.blockCache.stats;
    const mem = version.memtableBytes;
    return {
      levels,
      sstFileCount: version.fileCount,
      memtableActiveBytes: mem.active,
      memtableImmutableBytes: mem.immutable,
      immutableMemtableCount: version.immutables.length,
      blockCacheBytes: cache.bytes,
      blockCacheHits: cache.hits,
      blockCacheMisses: cache.misses,
      lastSequence: this.writes!.visibleSequence,
      pendingWrites: this.writes!.pendingCount,
      writesFailed: this.writes!.failed !== undefined,
      levelCount: LEVEL_COUNT,
    };
  }
}
