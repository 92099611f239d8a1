// Threads: the caller's (main) thread. Coordinates a database's background work: flushing
// immutable memtables, compacting levels, stalling writers, and deleting obsolete files.
// The work itself runs in the pool (flush, compaction) and the WAL worker (MANIFEST edits,
// file deletion); this class decides what runs when and installs the results.
//
// Invariants:
//   - At most one flush and one compaction run at a time per database.
//   - Every MANIFEST edit is made by the WAL worker, and is durable before the caller's thread
//     installs the Version it describes.
//   - A compaction's inputs stay pinned (a Version reference) until its edit is installed.
//   - With automatic compaction on, writers are slowed by 1 ms per write past a soft limit
//     and wait (never fail) at a hard limit. The limits: level-0 file count (slowdown and stop
//     triggers) and pending compaction bytes (soft and hard); immutable memtables slow writers
//     at immutableMemtablesMax - 1 when that max is 3 or more (RocksDB's rule), and the WAL
//     worker holds them at the max.

import { compareInternalKeys } from '../common/keys.js';
import type { FileMeta } from '../log/manifest.js';
import { LEVEL_COUNT } from '../log/manifest.js';
import { Control } from '../shm/layout.js';
import type { CompactionResult } from '../shm/messages.js';
import { keyRange, levelBytes, overlappingFiles, pendingCompactionBytes, pickCompaction, type CompactionOptions, type CompactionPlan } from './compaction-picker.js';
import type { Runtime } from './runtime.js';
import type { TableCache, Version } from './version.js';
import { Version as VersionClass } from './version.js';
import type { VersionSet } from './version-set.js';
import type { WriteChannel } from './write-channel.js';

const RETRY_MS_MAX = 5000;
const SLOWDOWN_MS = 1;

export interface MaintenanceOptions extends CompactionOptions {
  location: string;
  blockSize: number;
  compression: boolean;
  targetFileBytes: number;
  autoCompaction: boolean;
  level0SlowdownTrigger: number;
  level0StopTrigger: number;
  /** Pending compaction bytes from which each write is delayed. */
  pendingCompactionBytesSoft: number;
  /** Pending compaction bytes at which writes wait for compaction. */
  pendingCompactionBytesHard: number;
  immutableMemtablesMax: number;
  /** Test hook: milliseconds each compaction sleeps per output file. */
  compactionThrottleMs: number;
  /** Flushes insert the blocks they write into the database's shared block cache. */
  prepopulateBlockCache: boolean;
}

export interface MaintenanceStats {
  flushes: number;
  flushBytesWritten: number;
  compactions: number;
  compactionBytesRead: number;
  compactionBytesWritten: number;
  compactionMillisTotal: number;
  compactionMillisMax: number;
  trivialMoves: number;
  stallCount: number;
  stallMillis: number;
  slowdownCount: number;
  obsoleteFilesDeleted: number;
  errors: { flush: number; compaction: number };
}

function sortLevel(level: number, files: FileMeta[]): FileMeta[] {
  return level === 0
    ? files.sort((a, b) => b.largestSequence - a.largestSequence || b.fileNumber - a.fileNumber)
    : files.sort((a, b) => compareInternalKeys(a.smallestKey, b.smallestKey));
}

export class Maintenance {
  private flushing: Promise<void> | undefined;
  private compacting: Promise<void> | undefined;
  private manualCompactions = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = 0;
  private lastError: Error | undefined;
  private readonly progress: (() => void)[] = [];
  private readonly cursors: (Uint8Array | undefined)[] = new Array(LEVEL_COUNT).fill(undefined);
  private closing = false;
  readonly stats: MaintenanceStats = {
    flushes: 0, flushBytesWritten: 0, compactions: 0, compactionBytesRead: 0, compactionBytesWritten: 0,
    compactionMillisTotal: 0, compactionMillisMax: 0, trivialMoves: 0, stallCount: 0, stallMillis: 0,
    slowdownCount: 0, obsoleteFilesDeleted: 0, errors: { flush: 0, compaction: 0 },
  };

  constructor(
    private readonly dbId: number,
    private readonly runtime: Runtime,
    private readonly versions: VersionSet,
    private readonly tables: TableCache,
    private readonly writes: WriteChannel,
    private readonly options: MaintenanceOptions,
    public nextFileNumber: number,
    private lastFlushedSequence: number,
    private readonly onError: (e: Error) => void,
  ) {}

  get error(): Error | undefined {
    return this.lastError;
  }

  /** Resolves at the next flush or compaction completion (or failure). */
  private nextProgress(): Promise<void> {
    return new Promise((resolve) => this.progress.push(resolve));
  }

  private notifyProgress(): void {
    for (const w of this.progress.splice(0)) w();
  }

  /** Starts whatever background work is due. Idempotent. */
  schedule(): void {
    if (this.closing || this.retryTimer) return;
    const version = this.versions.current;
    if (!this.flushing && version.immutables.length > 0) {
      this.flushing = this.flushOldest().finally(() => {
        this.flushing = undefined;
        this.notifyProgress();
        this.schedule();
      });
    }
    if (!this.compacting && this.options.autoCompaction && this.manualCompactions === 0) {
      const plan = pickCompaction(version.levels, this.options, this.cursors);
      if (plan) {
        this.compacting = this.runCompaction(plan).catch((e) => this.failed('compaction', e)).finally(() => {
          this.compacting = undefined;
          this.notifyProgress();
          this.schedule();
        });
      }
    }
  }

  private failed(kind: 'flush' | 'compaction', e: unknown): void {
    this.stats.errors[kind]++;
    this.lastError = e as Error;
    this.retryMs = Math.min(RETRY_MS_MAX, Math.max(50, this.retryMs * 2));
    if (!this.closing && !this.retryTimer) {
      this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.schedule(); }, this.retryMs);
    }
    this.onError(e as Error);
  }

  private edit(edit: Parameters<Runtime['request']>[0] extends infer R ? (R extends { type: 'edit'; edit: infer E } ? E : never) : never): Promise<unknown> {
    return this.runtime.request({ type: 'edit', dbId: this.dbId, edit });
  }

  /** Writes the oldest immutable memtable to a level-0 SST and records it in the MANIFEST. */
  private async flushOldest(): Promise<void> {
    const target = this.versions.current.immutables[0];
    const fileNumber = this.nextFileNumber++;
    try {
      const result = await this.runtime.flush({
        type: 'flush', location: this.options.location, fileNumber, memtable: target.memtable.buffer,
        blockSize: this.options.blockSize, compression: this.options.compression,
        blockCache: this.options.prepopulateBlockCache ? this.tables.blockCache.shared?.buffer : undefined,
      });
      const now = this.versions.current;
      const after = now.immutables[now.immutables.indexOf(target) + 1] ?? now.active;
      const file: FileMeta = { level: 0, ...result };
      const lastSequence = Math.max(this.lastFlushedSequence, result.largestSequence);
      try {
        await this.edit({ added: [file], logNumber: after.firstSegment, nextFileNumber: this.nextFileNumber, lastSequence });
      } catch (e) {
        // The MANIFEST does not name the file, so nothing can read it: free its space now
        // (on a full disk that matters) rather than at the next open.
        await this.deleteObsolete([fileNumber]);
        throw e;
      }
      this.lastFlushedSequence = lastSequence;
      const current = this.versions.current;
      const levels = current.levels.map((files, level) => (level === 0 ? sortLevel(0, [file, ...files]) : files));
      this.versions.install(new VersionClass(current.active, current.immutables.filter((m) => m !== target), levels));
      this.stats.flushes++;
      this.stats.flushBytesWritten += result.fileSize;
      this.retryMs = 0;
      this.writes.control.add(Control.ImmutableCount, -1);
      this.runtime.doorbell.ring(); // a WAL worker stalled on immutable memtables may continue
    } catch (e) {
      this.failed('flush', e);
    }
  }

  private async runCompaction(plan: CompactionPlan): Promise<void> {
    const pinned = this.versions.acquire();
    const started = performance.now();
    try {
      if (plan.trivialMove) {
        const f = plan.inputs[0];
        const moved: FileMeta = { ...f, level: plan.outputLevel };
        await this.edit({ deleted: [{ level: plan.level, fileNumber: f.fileNumber }], added: [moved] });
        this.installCompaction(plan, [moved]);
        this.stats.trivialMoves++;
        this.cursors[plan.level] = f.largestKey.subarray(0, f.largestKey.length - 8);
        return;
      }
      const all = [...plan.inputs, ...plan.overlapping];
      const inputBytes = levelBytes(all);
      const reserve = Math.ceil(inputBytes / this.options.targetFileBytes) * 2 + 4;
      const outputFileNumbers = Array.from({ length: reserve }, () => this.nextFileNumber++);
      const deeperRanges = [];
      for (let level = plan.outputLevel + 1; level < LEVEL_COUNT; level++) {
        for (const f of pinned.levels[level]) deeperRanges.push({ smallest: f.smallestKey.subarray(0, f.smallestKey.length - 8), largest: f.largestKey.subarray(0, f.largestKey.length - 8) });
      }
      const result = (await this.runtime.runTask({
        type: 'compact', location: this.options.location,
        inputs: all.map((f) => ({ level: f.level, fileNumber: f.fileNumber })),
        outputLevel: plan.outputLevel, outputFileNumbers, targetFileBytes: this.options.targetFileBytes,
        deeperRanges, blockSize: this.options.blockSize, compression: this.options.compression,
        throttleMs: this.options.compactionThrottleMs || undefined,
      })) as CompactionResult;
      const added: FileMeta[] = result.outputs.map((o) => ({ level: plan.outputLevel, ...o }));
      await this.edit({
        added,
        deleted: all.map((f) => ({ level: f.level, fileNumber: f.fileNumber })),
        nextFileNumber: this.nextFileNumber,
      });
      this.installCompaction(plan, added);
      const ms = performance.now() - started;
      this.stats.compactions++;
      this.stats.compactionBytesRead += result.bytesRead;
      this.stats.compactionBytesWritten += result.bytesWritten;
      this.stats.compactionMillisTotal += ms;
      this.stats.compactionMillisMax = Math.max(this.stats.compactionMillisMax, ms);
      const range = keyRange(plan.inputs);
      if (range && plan.level > 0) this.cursors[plan.level] = range.largest;
      this.retryMs = 0;
    } finally {
      this.versions.unref(pinned);
    }
  }

  private installCompaction(plan: CompactionPlan, added: FileMeta[]): void {
    const gone = new Set([...plan.inputs, ...plan.overlapping].map((f) => f.fileNumber));
    const current = this.versions.current;
    const levels = current.levels.map((files, level) => {
      let next = files.filter((f) => !gone.has(f.fileNumber));
      if (level === plan.outputLevel) next = [...next, ...added];
      return next === files ? files : sortLevel(level, next);
    });
    this.versions.install(new VersionClass(current.active, current.immutables, levels));
  }

  /** Deletes files no Version references any more (called by the VersionSet). */
  async deleteObsolete(fileNumbers: number[]): Promise<void> {
    for (const n of fileNumbers) this.tables.evict(n);
    try {
      await this.runtime.request({ type: 'delete', dbId: this.dbId, fileNumbers });
      this.stats.obsoleteFilesDeleted += fileNumbers.length;
    } catch {
      // Left on disk; the next open removes files the MANIFEST does not name.
    }
  }

  /** Waits until every immutable memtable with generation < `generation` is flushed. */
  async waitFlushed(generation: number): Promise<void> {
    for (;;) {
      if (!this.versions.current.immutables.some((m) => m.generation < generation)) return;
      if (this.lastError && !this.flushing && this.retryTimer) throw this.lastError;
      await this.nextProgress();
    }
  }

  /**
   * Manual compaction of [start, end] (open bounds when undefined): pushes every file that
   * overlaps the range down to the deepest non-empty level, level by level.
   */
  async compactRange(start: Uint8Array | undefined, end: Uint8Array | undefined): Promise<void> {
    this.manualCompactions++;
    try {
      while (this.compacting) await this.compacting;
      const deepest = (): number => {
        const levels = this.versions.current.levels;
        for (let l = LEVEL_COUNT - 1; l >= 1; l--) if (levels[l].length > 0) return l;
        return 1;
      };
      for (let level = 0; level < deepest() || (level === 0 && this.versions.current.levels[0].length > 0); level++) {
        const levels = this.versions.current.levels;
        const inputs = level === 0 ? (overlappingFiles(levels[0], start, end).length > 0 ? [...levels[0]] : []) : overlappingFiles(levels[level], start, end);
        if (inputs.length === 0) continue;
        const range = keyRange(inputs)!;
        const overlapping = overlappingFiles(levels[level + 1], range.smallest, range.largest);
        const plan: CompactionPlan = { level, outputLevel: level + 1, inputs, overlapping, trivialMove: false };
        const run = this.runCompaction(plan);
        this.compacting = run.finally(() => { this.compacting = undefined; this.notifyProgress(); });
        await run;
        this.compacting = undefined;
      }
    } finally {
      this.manualCompactions--;
      this.schedule();
    }
  }

  /**
   * Called before each write: undefined when the write may go ahead now (the fast path
   * allocates nothing), else a promise that resolves when it may.
   */
  admit(): Promise<void> | undefined {
    if (!this.options.autoCompaction) return undefined;
    const pressure = this.pressure();
    return pressure === 'none' ? undefined : this.stall(pressure);
  }

  /** How hard the tree pushes back on writers right now. */
  private pressure(): 'none' | 'slow' | 'stop' {
    const version = this.versions.current;
    const o = this.options;
    const l0 = version.levels[0].length;
    const pending = this.pendingCompactionBytes(version);
    if (l0 >= o.level0StopTrigger || pending >= o.pendingCompactionBytesHard) return 'stop';
    if (l0 >= o.level0SlowdownTrigger || pending >= o.pendingCompactionBytesSoft) return 'slow';
    if (o.immutableMemtablesMax >= 3 && version.immutables.length >= o.immutableMemtablesMax - 1) return 'slow';
    return 'none';
  }

  private async stall(pressure: 'slow' | 'stop'): Promise<void> {
    const started = performance.now();
    if (pressure === 'stop') {
      this.stats.stallCount++;
      while (!this.closing && this.pressure() === 'stop') {
        this.schedule();
        await this.nextProgress();
      }
    } else {
      this.stats.slowdownCount++;
      await new Promise((r) => setTimeout(r, SLOWDOWN_MS));
    }
    this.stats.stallMillis += performance.now() - started;
  }

  /** Pending compaction bytes of a Version, computed once per Version (admit() asks on every write). */
  pendingCompactionBytes(version: Version = this.versions.current): number {
    if (this.pendingMemo?.version !== version) this.pendingMemo = { version, bytes: pendingCompactionBytes(version.levels, this.options) };
    return this.pendingMemo.bytes;
  }

  private pendingMemo: { version: Version; bytes: number } | undefined;

  get busy(): boolean {
    return this.flushing !== undefined || this.compacting !== undefined;
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.retryTimer) { clearTimeout(this.retryTimer); this.retryTimer = undefined; }
    this.notifyProgress();
    while (this.flushing || this.compacting) await Promise.allSettled([this.flushing, this.compacting]);
  }
}
