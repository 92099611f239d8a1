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
import { RING_CAPACITY_BYTES_MAX, RING_CAPACITY_BYTES_MIN } from '../shm/layout.js';
import type { DatabaseOptions, WalReply } from '../shm/messages.js';
import { Memtable } from '../shm/memtable.js';
import { createRingBuffer } from '../shm/ring.js';
import { ControlBlock } from '../shm/signals.js';
import { BlockCache, planBlockCache } from '../sst/block-cache.js';
import { Maintenance } from './maintenance.js';
import { acquireRuntime, type Runtime, type RuntimeClient } from './runtime.js';
import { VersionSet } from './version-set.js';
import type { RepairReport } from '../tools/repair.js';
import type { VerifyResult } from '../tools/verify.js';
import { SnapshotScanner, type ScanRange } from './scanner.js';
import { TableCache, Version, type MemtableRef } from './version.js';
import { WriteChannel } from './write-channel.js';
import { errorFromWire } from '../common/errors.js';
import { compareInternalKeys, TRAILER_BYTES } from '../common/keys.js';
import { levelBytes, overlappingFiles } from './compaction-picker.js';

export interface StemeDBOptions {
  keyEncoding?: string;
  valueEncoding?: string;
  /** Create the database if it does not exist. Default true. */
  createIfMissing?: boolean;
  /** Fail to open if the database exists. Default false. */
  errorIfExists?: boolean;
  /** Memtable size in bytes before it is flushed to an SST. Default 4 MiB. */
  writeBufferSize?: number;
  /**
   * Block cache bytes, both tiers together (see src/sst/block-cache.ts): 1/8 for decoded
   * blocks on the caller's thread, the rest for a shared-memory cache that flushes warm.
   * 0 disables caching. Default 8 MiB.
   */
  cacheSize?: number;
  /** Flushes put the blocks they write into the shared block cache. Default true. */
  prepopulateBlockCache?: boolean;
  /** Uncompressed SST data block size. Default 4096. */
  blockSize?: number;
  /** 'lz4' (default; classic-level's 'snappy' and true are read as lz4) or 'none'/false. */
  compression?: boolean | string;
  /** Write ring capacity in bytes, a power of two. Default 4 MiB. */
  ringBytes?: number;
  /** Immutable memtables allowed to wait for a flush before writes stall. Default 2. */
  immutableMemtablesMax?: number;
  /** Flush/compaction threads in the shared pool. Default: availableParallelism() - 1, clamped to 2..4. */
  maintenanceThreads?: number;
  /** Compact levels automatically. Default true. */
  autoCompaction?: boolean;
  /** Level-0 files that trigger a compaction. Default 4. */
  level0CompactionTrigger?: number;
  /** Level-0 files at which each write is delayed 1 ms. Default 8. */
  level0SlowdownTrigger?: number;
  /** Level-0 files at which writes wait for compaction. Default 12. */
  level0StopTrigger?: number;
  /** Target size of level 1 in bytes; each deeper level is levelSizeMultiplier times larger. Default 10 MiB. */
  levelBaseBytes?: number;
  levelSizeMultiplier?: number;
  /** Compaction output files are cut at this size. Default 2 MiB. */
  targetFileBytes?: number;
  /** Pending compaction bytes from which each write is delayed 1 ms. Default 1 GiB. */
  pendingCompactionBytesSoft?: number;
  /** Pending compaction bytes at which writes wait for compaction. Default 4 GiB. */
  pendingCompactionBytesHard?: number;
  /** The MANIFEST is rewritten as a single snapshot once it passes this many bytes. Default 4 MiB. */
  manifestBytesMax?: number;
  /** Test hook: each compaction sleeps this long per output file. Default 0. */
  compactionThrottleMs?: number;
  [key: string]: unknown;
}

const DEFAULTS = {
  writeBufferSize: 4 * 1024 * 1024,
  cacheSize: 8 * 1024 * 1024,
  blockSize: 4096,
  ringBytes: 4 * 1024 * 1024,
  immutableMemtablesMax: 2,
};


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
const SnapshotBase = AbstractSnapshot as unknown as new (options: AnyOptions) => AbstractSnapshot & { _close(): Promise<void> };

/** An explicit snapshot pins its Version (and so its files) until it is closed. */
class StemeSnapshot extends SnapshotBase {
  constructor(options: AnyOptions, readonly view: ReadView, private readonly versions: VersionSet) {
    super(options);
  }
  override async _close(): Promise<void> {
    this.versions.unref(this.view.version);
  }
}

class StemeIterator extends AbstractIterator<StemeDB<any, any>, any, any> {
  private readonly scanner: SnapshotScanner;
  private released = false;
  constructor(db: StemeDB<any, any>, options: AnyOptions, scanner: SnapshotScanner, private readonly version: Version, private readonly versions: VersionSet) {
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
    if (!this.released) { this.released = true; this.versions.unref(this.version); }
  }
}

export class StemeDB<KDefault = string, VDefault = string> extends AbstractLevel<Buffer | Uint8Array, KDefault, VDefault> implements RuntimeClient {
  readonly location: string;
  private readonly config: Omit<DatabaseOptions, 'createIfMissing' | 'errorIfExists'> & {
    cacheSize: number; blockSize: number; compression: boolean; ringBytes: number; maintenanceThreads?: number;
    autoCompaction: boolean; level0CompactionTrigger: number; level0SlowdownTrigger: number; level0StopTrigger: number;
    levelBaseBytes: number; levelSizeMultiplier: number; targetFileBytes: number; compactionThrottleMs: number;
    pendingCompactionBytesSoft: number; pendingCompactionBytesHard: number; manifestBytesMax: number;
    prepopulateBlockCache: boolean;
  };
  private runtime: Runtime | undefined;
  private dbId = 0;
  private writes: WriteChannel | undefined;
  private versions: VersionSet | undefined;
  private tables: TableCache | undefined;
  private maintenance: Maintenance | undefined;
  private userBytesWritten = 0;
  private readonly operationErrors = { put: 0, get: 0, flush: 0, compaction: 0, sync: 0 };

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
      maintenanceThreads: options.maintenanceThreads === undefined ? undefined : boundedInteger('maintenanceThreads', options.maintenanceThreads, 1, 1, 64),
      autoCompaction: options.autoCompaction !== false,
      level0CompactionTrigger: boundedInteger('level0CompactionTrigger', options.level0CompactionTrigger, 4, 1, 1000),
      level0SlowdownTrigger: boundedInteger('level0SlowdownTrigger', options.level0SlowdownTrigger, 8, 1, 1000),
      level0StopTrigger: boundedInteger('level0StopTrigger', options.level0StopTrigger, 12, 1, 1000),
      levelBaseBytes: boundedInteger('levelBaseBytes', options.levelBaseBytes, 10 * 1024 * 1024, 64 * 1024, 2 ** 40),
      levelSizeMultiplier: boundedInteger('levelSizeMultiplier', options.levelSizeMultiplier, 10, 2, 100),
      targetFileBytes: boundedInteger('targetFileBytes', options.targetFileBytes, 2 * 1024 * 1024, 16 * 1024, 2 ** 32),
      compactionThrottleMs: boundedInteger('compactionThrottleMs', options.compactionThrottleMs, 0, 0, 60_000),
      pendingCompactionBytesSoft: boundedInteger('pendingCompactionBytesSoft', options.pendingCompactionBytesSoft, 2 ** 30, 1, 2 ** 50),
      pendingCompactionBytesHard: boundedInteger('pendingCompactionBytesHard', options.pendingCompactionBytesHard, 2 ** 32, 1, 2 ** 50),
      manifestBytesMax: boundedInteger('manifestBytesMax', options.manifestBytesMax, 4 * 1024 * 1024, 1024, 2 ** 32),
      prepopulateBlockCache: options.prepopulateBlockCache !== false,
    };
    if (this.config.pendingCompactionBytesHard < this.config.pendingCompactionBytesSoft) throw new TypeError('pendingCompactionBytesHard must be >= pendingCompactionBytesSoft');
    if (this.config.level0SlowdownTrigger < this.config.level0CompactionTrigger || this.config.level0StopTrigger < this.config.level0SlowdownTrigger) {
      throw new TypeError('Level-0 triggers must satisfy compaction <= slowdown <= stop');
    }
    if ((this.config.ringBytes & (this.config.ringBytes - 1)) !== 0) throw new TypeError("The 'ringBytes' option must be a power of two");
  }

  // ---- offline tools ----

  /**
   * Reads every file of a (closed) database and reports each bad block or record with its
   * file and offset. Runs in the pool thread, off the event loop.
   */
  static async verify(location: string): Promise<VerifyResult> {
    return StemeDB.tool('verify', location) as Promise<VerifyResult>;
  }

  /**
   * Rebuilds a damaged (closed) database: keeps every SST that verifies, sets the rest aside
   * in <location>/lost/, cuts WAL segments at their first bad record, and writes a fresh
   * MANIFEST so the next open replays every surviving WAL record. Returns what was lost.
   */
  static async repair(location: string): Promise<RepairReport> {
    return StemeDB.tool('repair', location) as Promise<RepairReport>;
  }

  private static async tool(type: 'verify' | 'repair', location: string): Promise<unknown> {
    if (typeof location !== 'string' || location === '') throw new TypeError("The first argument 'location' must be a non-empty string");
    const runtime = acquireRuntime();
    try {
      return await runtime.runTask({ type, location });
    } finally {
      runtime.unacquire();
    }
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
          manifestBytesMax: this.config.manifestBytesMax,
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
    // Per database: its own tier 2, so cache keys need no database id; flushes get its buffer.
    const tables = new TableCache(this.location, BlockCache.fromPlan(planBlockCache(this.config.cacheSize, this.config.blockSize)));
    const writes = new WriteChannel(ring, control.buffer, runtime, reply.lastSequence, active.generation);
    let maintenance: Maintenance | undefined;
    const versions = new VersionSet(
      new Version(active, refs.slice(0, -1), levels),
      (files) => void maintenance?.deleteObsolete(files),
      (generations) => runtime.send({ type: 'release', dbId, generations }),
    );
    maintenance = new Maintenance(dbId, runtime, versions, tables, writes, { location: this.location, ...this.config }, reply.state.nextFileNumber, reply.state.lastSequence, (e) => this.backgroundError(e));
    this.tables = tables;
    this.writes = writes;
    this.versions = versions;
    this.maintenance = maintenance;
    runtime.attach(dbId, this);
    maintenance.schedule();
  }

  /** Flush and compaction failures (counted by Maintenance) reach listeners of 'error'. */
  private backgroundError(e: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', e);
  }

  async _close(): Promise<void> {
    const runtime = this.runtime;
    if (!runtime) return;
    // Let writes already handed to us settle, and running jobs finish their MANIFEST edits.
    while (this.writes && this.writes.pendingCount > 0) await new Promise((r) => setTimeout(r, 1));
    await this.maintenance?.close();
    try {
      await runtime.request({ type: 'close', dbId: this.dbId });
    } finally {
      runtime.detach(this.dbId);
      this.tables?.closeAll();
      this.runtime = undefined;
      this.writes = undefined;
      this.versions = undefined;
      this.maintenance = undefined;
      this.tables = undefined;
      runtime.unacquire();
    }
  }

  // ---- events from the WAL worker ----

  onRotated(reply: Extract<WalReply, { type: 'rotated' }>): void {
    const version = this.versions?.current;
    if (!version || !this.writes) return;
    const next: MemtableRef = { generation: reply.memtable.generation, memtable: Memtable.attach(reply.memtable.buffer), firstSegment: reply.memtable.firstSegment };
    const old = version.active;
    // An immutable old memtable waits for its flush; an empty one that was merely too small is dropped.
    const immutables = old.memtable.isImmutable ? [...version.immutables, old] : version.immutables;
    this.versions!.install(new Version(next, immutables, version.levels));
    this.writes.generationArrived(next.generation);
    this.maintenance!.schedule();
  }

  onFailed(reply: Extract<WalReply, { type: 'failed' }>): void {
    const error = errorFromWire(reply.error);
    this.operationErrors.sync++;
    this.writes?.setFailure(error);
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  // ---- flush and compaction ----

  private assertOpen(): void {
    if (this.status !== 'open') throw new StemeError('LEVEL_DATABASE_NOT_OPEN', 'Database is not open');
  }

  /** Persists the active memtable (and any waiting immutable ones) to SSTs. */
  async flush(): Promise<void> {
    this.assertOpen();
    await this.writes!.rotate();
    await this.maintenance!.waitFlushed(this.writes!.knownGeneration);
  }

  private encodeKey(key: unknown): Uint8Array | undefined {
    if (key === undefined || key === null) return undefined;
    const encoding = (this as any).keyEncoding();
    return asBytes(encoding.encode(key));
  }

  /**
   * Compacts every key in [start, end] (the whole database when both are omitted) down to
   * the deepest level: overwritten versions and deletes in the range are dropped from disk.
   */
  async compactRange(start?: unknown, end?: unknown): Promise<void> {
    this.assertOpen();
    await this.flush();
    await this.maintenance!.compactRange(this.encodeKey(start), this.encodeKey(end));
  }

  /** Approximate on-disk bytes of SST files holding keys in [start, end) (whole-file granularity). */
  async approximateSize(start: unknown, end: unknown): Promise<number> {
    this.assertOpen();
    const lo = this.encodeKey(start), hi = this.encodeKey(end);
    let bytes = 0;
    for (const files of this.versions!.current.levels) bytes += levelBytes(overlappingFiles(files, lo, hi));
    return bytes;
  }

  /**
   * LevelDB-style properties, as strings: 'stemedb.stats' (JSON of stats()),
   * 'stemedb.num-files-at-level<N>' (also spelled 'leveldb.num-files-at-level<N>'),
   * 'stemedb.sstables' (one line per level with its file numbers).
   */
  getProperty(name: string): string {
    this.assertOpen();
    if (typeof name !== 'string') throw new TypeError("The first argument 'property' must be a string");
    const levels = this.versions!.current.levels;
    const m = /^(?:stemedb|leveldb)\.num-files-at-level(\d+)$/.exec(name);
    if (m) return String(levels[Number(m[1])]?.length ?? 0);
    if (name === 'stemedb.stats' || name === 'leveldb.stats') return JSON.stringify(this.stats());
    if (name === 'stemedb.sstables' || name === 'leveldb.sstables') {
      return levels.map((files, level) => `level ${level}: ${files.map((f) => `${f.fileNumber}(${f.fileSize})`).join(' ')}`).join('\n');
    }
    throw new StemeError('LEVEL_NOT_SUPPORTED', `unknown property '${name}'`);
  }

  // ---- writes ----

  private write(ops: BatchOp[], options: AnyOptions | undefined): Promise<void> {
    for (const op of ops) this.userBytesWritten += op.key.length + (op.value?.length ?? 0);
    const sync = options?.sync === true;
    const writes = this.writes!;
    const gate = this.maintenance!.admit();
    const written = gate ? gate.then(() => writes.write(ops, sync)) : writes.write(ops, sync);
    return written.catch((e) => {
      this.operationErrors.put++;
      throw e;
    });
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

  /** The snapshot's view, or the current one pinned for the caller; release with unpin(). */
  private pin(options: AnyOptions | undefined): ReadView {
    const snapshot = options?.snapshot as StemeSnapshot | undefined;
    const version = snapshot ? snapshot.view.version : this.versions!.current;
    this.versions!.ref(version);
    return snapshot ? snapshot.view : { version, sequence: this.writes!.visibleSequence };
  }

  private unpin(view: ReadView): void {
    this.versions?.unref(view.version);
  }

  private readFailed(e: unknown): never {
    this.operationErrors.get++;
    throw e;
  }

  _getSync(key: Uint8Array, options: AnyOptions): Buffer | undefined {
    // Synchronous: nothing can delete a file before it returns, so no pin is needed.
    const snapshot = options?.snapshot as StemeSnapshot | undefined;
    const version = snapshot ? snapshot.view.version : this.versions!.current;
    const sequence = snapshot ? snapshot.view.sequence : this.writes!.visibleSequence;
    try {
      return version.getSync(key, sequence, this.tables!) as Buffer | undefined;
    } catch (e) {
      return this.readFailed(e);
    }
  }

  async _get(key: Uint8Array, options: AnyOptions): Promise<Buffer | undefined> {
    const v = this.pin(options);
    try {
      return (await v.version.get(key, v.sequence, this.tables!)) as Buffer | undefined;
    } catch (e) {
      return this.readFailed(e);
    } finally {
      this.unpin(v);
    }
  }

  async _getMany(keys: Uint8Array[], options: AnyOptions): Promise<(Buffer | undefined)[]> {
    const v = this.pin(options);
    try {
      const out: (Buffer | undefined)[] = new Array(keys.length);
      for (let i = 0; i < keys.length; i++) out[i] = (await v.version.get(keys[i], v.sequence, this.tables!)) as Buffer | undefined;
      return out;
    } catch (e) {
      return this.readFailed(e);
    } finally {
      this.unpin(v);
    }
  }

  async _has(key: Uint8Array, options: AnyOptions): Promise<boolean> {
    return (await this._get(key, options)) !== undefined;
  }

  async _hasMany(keys: Uint8Array[], options: AnyOptions): Promise<boolean[]> {
    return (await this._getMany(keys, options)).map((v) => v !== undefined);
  }

  /** A scanner over a pinned view; the caller unpins view.version when done. */
  private scanner(options: AnyOptions, v: ReadView): SnapshotScanner {
    try {
      return new SnapshotScanner(v.version.iterators(this.tables!), v.sequence, options.reverse === true, rangeOf(options), options.limit ?? Infinity);
    } catch (e) {
      this.unpin(v);
      throw e;
    }
  }

  _iterator(options: AnyOptions): StemeIterator {
    const v = this.pin(options);
    return new StemeIterator(this, options, this.scanner(options, v), v.version, this.versions!);
  }

  _snapshot(options: AnyOptions): StemeSnapshot {
    const version = this.versions!.acquire();
    return new StemeSnapshot(options, { version, sequence: this.writes!.visibleSequence }, this.versions!);
  }

  async _clear(options: AnyOptions): Promise<void> {
    const v = this.pin(options);
    const scanner = this.scanner(options, v);
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
      this.unpin(v);
    }
  }

  // ---- introspection ----

  /** A plain object of counters; docs/operations.md documents every field. */
  stats(): Record<string, unknown> {
    this.assertOpen();
    const version = this.versions!.current;
    const m = this.maintenance!.stats;
    const levels = version.levels.map((files, level) => ({ level, fileCount: files.length, bytes: levelBytes(files) }));
    const cache = this.tables!.blockCache.stats;
    const mem = version.memtableBytes;
    const wal = this.writes!.walStats();
    const bytesWrittenToDisk = wal.bytesWritten + m.flushBytesWritten + m.compactionBytesWritten;
    return {
      levels,
      sstFileCount: version.fileCount,
      sstBytes: levels.reduce((n, l) => n + l.bytes, 0),
      walSegmentCount: version.immutables.length + 1,
      walBytesWritten: wal.bytesWritten,
      walSyncs: wal.syncs,
      walGroups: wal.groups,
      memtableBuffersAllocated: wal.memtableBuffersAllocated,
      memtableActiveBytes: mem.active,
      memtableImmutableBytes: mem.immutable,
      immutableMemtableCount: version.immutables.length,
      blockCacheCapacityBytes: cache.capacityBytes,
      blockCacheBytes: cache.bytes,
      blockCacheHits: cache.hits,
      blockCacheMisses: cache.misses,
      blockCacheLocalCapacityBytes: cache.localCapacityBytes,
      blockCacheLocalBytes: cache.localBytes,
      blockCacheLocalHits: cache.localHits,
      blockCacheSharedCapacityBytes: cache.sharedCapacityBytes,
      blockCacheSharedBytes: cache.sharedBytes,
      blockCacheSharedHits: cache.sharedHits,
      blockCacheSharedInsertsSkipped: cache.sharedInsertsSkipped,
      openTables: this.tables!.openCount,
      pendingCompactionBytes: this.maintenance!.pendingCompactionBytes(version),
      flushes: m.flushes,
      compactions: m.compactions,
      trivialMoves: m.trivialMoves,
      compactionBytesRead: m.compactionBytesRead,
      compactionBytesWritten: m.compactionBytesWritten,
      compactionMillisTotal: Math.round(m.compactionMillisTotal),
      compactionMillisMax: Math.round(m.compactionMillisMax),
      obsoleteFilesDeleted: m.obsoleteFilesDeleted,
      liveVersions: this.versions!.liveVersionCount,
      userBytesWritten: this.userBytesWritten,
      bytesWrittenToDisk,
      writeAmplification: this.userBytesWritten > 0 ? bytesWrittenToDisk / this.userBytesWritten : 0,
      stallCount: m.stallCount,
      slowdownCount: m.slowdownCount,
      stallMillis: Math.round(m.stallMillis),
      storageOperationErrors: { ...this.operationErrors, flush: m.errors.flush, compaction: m.errors.compaction },
      lastSequence: this.writes!.visibleSequence,
      pendingWrites: this.writes!.pendingCount,
      writesFailed: this.writes!.failed !== undefined,
    };
  }
}
