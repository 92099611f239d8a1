// Threads: WAL worker only. One open database as the WAL worker sees it: its write ring, its
// WAL segment, its active memtable and its MANIFEST.
//
// Group commit, per call of service():
//   1. Collect every record published in the ring since the last call (bounded by the ring).
//   2. Split them into sub-groups that each fit the active memtable; a Rotate record or a full
//      memtable ends a sub-group and makes the memtable immutable (unless too many immutable
//      memtables already wait for a flush: then the database stalls and its ring fills up,
//      which backs pressure up to the caller's thread).
//   3. Per sub-group: copy the batches into one buffer of WAL records, write() it at the end
//      of the segment, fdatasync() if any batch asked for sync, apply the batches to the
//      memtable, and only then publish AckedTickets. So an acknowledged write is in the OS
//      (survives a process crash) and, when sync, on the device (survives power loss).
//   4. A failed write or fdatasync is sticky. Retrying fsync after a failure can report
//      success for data the kernel already dropped, so the database stops acknowledging
//      writes for good: it marks Failed, rejects everything from the failed group on, and
//      keeps serving reads from what was already acknowledged.
//
// Memtable i holds exactly the batches of WAL segments firstSegment(i) ..< firstSegment(i+1),
// so once memtable i is in an SST, segments below firstSegment(i+1) can be deleted.

import * as path from 'node:path';
import { CorruptionError, errorToWire, ioError, StemeError } from '../../common/errors.js';
import { fileSystem, writeAllSync } from '../../common/fs.js';
import { kvDir, segmentPath, tableNumberOf, tablePath, walDir } from '../../common/files.js';
import { readBatchHeader } from '../../log/batch.js';
import { loadManifest, ManifestWriter, readCurrent, emptyVersionState, type VersionEdit, type VersionState, applyEdit } from '../../log/manifest.js';
import { RECORD_HEADER_BYTES, RecordType, sealRecord } from '../../log/record.js';
import { Control, RingRecord } from '../../shm/layout.js';
import type { DatabaseOptions, MemtableHandle, WalReply } from '../../shm/messages.js';
import { Memtable } from '../../shm/memtable.js';
import { RingConsumer, type RingRecordView } from '../../shm/ring.js';
import { ControlBlock } from '../../shm/signals.js';
import { acquireLock, releaseLock } from './lock.js';
import { applyBatch, batchMemtableBytes, recoverWal } from './recovery.js';

/** A batch waiting in the current group. `data` views the ring or an assembled fragment buffer. */
interface PendingBatch {
  kind: 'batch';
  data: Uint8Array;
  sync: boolean;
  memtableBytes: number;
  /** Ring position after the batch's last record. */
  end: number;
}


/**
 * Memtable buffers of databases closed on this WAL worker, reused by databases opened later
 * (see WalDatabase.close). Bounded so a process that opens many databases with different
 * write buffer sizes cannot grow the list without end.
 */
const closedDatabaseSpares: SharedArrayBuffer[] = [];
const CLOSED_DATABASE_SPARES_MAX = 64;

export class WalDatabase {
  readonly ring: RingConsumer;
  readonly control: ControlBlock;
  state!: VersionState;
  private manifest!: ManifestWriter;
  private active!: Memtable;
  private activeGeneration = 0;
  private segmentNumber = 0;
  private segmentFd = -1;
  private segmentBytes = 0;
  private tickets = 0;
  private failed = false;
  private fragments: Uint8Array[] = [];
  private assembled: { end: number; data: Uint8Array } | undefined;
  private scratch = new Uint8Array(1 << 20);
  /** Buffers of memtables handed to the caller's thread and not yet released, by generation. */
  private readonly handedOut = new Map<number, SharedArrayBuffer>();
  /** Released buffers of the standard size (writeBufferSize), reused by the next memtables. */
  private readonly spares: SharedArrayBuffer[] = [];
  closed = false;

  constructor(
    readonly id: number,
    readonly location: string,
    readonly options: DatabaseOptions,
    ring: SharedArrayBuffer,
    control: SharedArrayBuffer,
    private readonly post: (reply: WalReply) => void,
  ) {
    this.ring = new RingConsumer(ring);
    this.control = new ControlBlock(control);
  }

  /** Opens or creates the database and replays its WAL. Returns the memtables for the caller's thread. */
  open(ownerThreadId: number, locksHeld: Set<string>): { memtables: MemtableHandle[]; lastSequence: number; recoveredBatches: number } {
    const fs = fileSystem();
    const { location, options } = this;
    const exists = fs.existsSync(location);
    if (exists && !isDirectory(location)) {
      throw ioError(`${location} exists and is not a directory`, Object.assign(new Error(`ENOTDIR: not a directory, '${location}'`), { code: 'ENOTDIR', path: location }));
    }
    if (!exists) {
      if (!options.createIfMissing) throw new StemeError('LEVEL_DATABASE_NOT_OPEN', `${location} does not exist (createIfMissing is false)`);
      fs.mkdirSync(location);
      // The new directory's entry must survive power loss before anything in it counts.
      fs.syncDirSync(path.dirname(path.resolve(location)));
    }
    acquireLock(location, ownerThreadId, locksHeld);
    try {
      const current = fs.existsSync(kvDir(location)) ? readCurrent(kvDir(location)) : undefined;
      if (!current) this.refuseIfDataWithoutCurrent();
      if (current && options.errorIfExists) throw new StemeError('LEVEL_DATABASE_NOT_OPEN', `${location} already exists (errorIfExists is true)`);
      if (!current && !options.createIfMissing) throw new StemeError('LEVEL_DATABASE_NOT_OPEN', `${location} is not a database (createIfMissing is false)`);
      const created = !fs.existsSync(walDir(location)) || !fs.existsSync(kvDir(location));
      fs.mkdirSync(walDir(location));
      fs.mkdirSync(kvDir(location));
      // wal/ and kv/ themselves are entries of the database directory: make them durable.
      if (created) fs.syncDirSync(location);
      let manifestNumber = 1;
      if (current) {
        const loaded = loadManifest(kvDir(location), current);
        this.state = loaded.state;
        manifestNumber = Number(current.slice('MANIFEST-'.length));
        this.manifest = ManifestWriter.reopen(kvDir(location), current, loaded.bytes);
        if (loaded.bytes > options.manifestBytesMax) this.rewriteManifest();
      } else {
        this.state = emptyVersionState();
        this.state.nextFileNumber = 2;
        this.manifest = ManifestWriter.create(kvDir(location), manifestNumber, this.state);
      }
      this.removeOrphanTables();
      const recovered = recoverWal(location, this.state.logNumber, options.writeBufferSize, this.state.lastSequence);
      this.state.lastSequence = recovered.lastSequence;
      this.segmentNumber = Math.max(recovered.newestSegment, this.state.logNumber - 1, 0);
      const handles: MemtableHandle[] = [];
      let generation = 0;
      const last = recovered.memtables[recovered.memtables.length - 1];
      for (const m of recovered.memtables) {
        generation++;
        this.handedOut.set(generation, m.memtable.buffer);
        if (m !== last) {
          handles.push({ generation, buffer: m.memtable.buffer, firstSegment: m.firstSegment, immutable: true });
        }
      }
      const immutableCount = handles.length;
      this.openNextSegment();
      if (last) {
        this.active = last.memtable;
        handles.push({ generation, buffer: last.memtable.buffer, firstSegment: last.firstSegment, immutable: false });
      } else {
        generation++;
        this.active = this.newMemtable(options.writeBufferSize);
        this.handedOut.set(generation, this.active.buffer);
        handles.push({ generation, buffer: this.active.buffer, firstSegment: this.segmentNumber, immutable: false });
      }
      this.activeGeneration = generation;
      this.control.store(Control.MemtableGeneration, generation);
      this.control.store(Control.ImmutableCount, immutableCount);
      this.control.store(Control.ImmutableCountMax, options.immutableMemtablesMax);
      this.tickets = this.control.load(Control.AckedTickets);
      return { memtables: handles, lastSequence: recovered.lastSequence, recoveredBatches: recovered.batches };
    } catch (e) {
      this.closeFiles();
      releaseLock(location, locksHeld);
      throw e;
    }
  }

  /**
   * Without CURRENT, a directory that still holds tables, MANIFESTs or WAL records is a damaged
   * database, not a new one: creating a fresh one over it would treat every SST as an orphan
   * and delete it. Refuse, and point at repair.
   */
  private refuseIfDataWithoutCurrent(): void {
    const fs = fileSystem();
    const kv = kvDir(this.location);
    const wal = walDir(this.location);
    const kvData = fs.existsSync(kv) && fs.readdirSync(kv).some((f) => tableNumberOf(f) !== undefined || f.startsWith('MANIFEST-'));
    const walData = fs.existsSync(wal) && fs.readdirSync(wal).some((f) => fs.readFileSync(path.join(wal, f)).length > 0);
    if (kvData || walData) {
      throw new CorruptionError(path.join(kv, 'CURRENT'), 0, 'CURRENT is missing but the database holds data; run StemeDB.repair() (stemedb repair <dir>)');
    }
  }

  /** Files in kv/ that no version references: leftovers of a flush, compaction or MANIFEST rewrite that did not finish. */
  private removeOrphanTables(): void {
    const fs = fileSystem();
    const live = new Set(this.state.levels.flat().map((f) => f.fileNumber));
    for (const name of fs.readdirSync(kvDir(this.location))) {
      const n = tableNumberOf(name);
      if (n !== undefined && !live.has(n) && n >= 0) fs.unlinkSync(path.join(kvDir(this.location), name));
      if (name.endsWith('.tmp')) fs.unlinkSync(path.join(kvDir(this.location), name));
      // MANIFESTs other than the live one are leftovers of an interrupted rewrite.
      if (name.startsWith('MANIFEST-') && name !== this.manifest.name) fs.unlinkSync(path.join(kvDir(this.location), name));
    }
  }

  private openNextSegment(): void {
    const fs = fileSystem();
    if (this.segmentFd >= 0) {
      // Sync before moving on: recovery treats a torn tail in any segment but the newest as
      // corruption, so an older segment must never end torn after power loss.
      fs.fdatasyncSync(this.segmentFd);
      fs.closeSync(this.segmentFd);
    }
    this.segmentFd = -1;
    this.segmentNumber++;
    this.segmentFd = fs.openSync(segmentPath(this.location, this.segmentNumber), 'w');
    this.segmentBytes = 0;
    // The new directory entry must survive power loss before any sync write in it is acknowledged.
    fs.syncDirSync(walDir(this.location));
  }

  applyEdit(edit: VersionEdit): void {
    this.manifest.append(edit);
    const before = this.state.logNumber;
    applyEdit(this.state, edit);
    if (this.manifest.bytes > this.options.manifestBytesMax) this.rewriteManifest();
    // Segments wholly below logNumber are now covered by SSTs recorded in the MANIFEST.
    const fs = fileSystem();
    for (let n = before; n < this.state.logNumber; n++) {
      if (n === this.segmentNumber) break;
      try { fs.unlinkSync(segmentPath(this.location, n)); } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
  }

  /**
   * Bounds the MANIFEST: writes the whole state as one edit into a new MANIFEST, points CURRENT
   * at it (atomically), then deletes the old one. A crash before the CURRENT swap leaves the old
   * MANIFEST in charge and the new one an orphan that the next rewrite or repair replaces.
   */
  private rewriteManifest(): void {
    const kv = kvDir(this.location);
    const old = this.manifest;
    const number = Number(old.name.slice('MANIFEST-'.length)) + 1;
    this.manifest = ManifestWriter.create(kv, number, this.state);
    old.close();
    try { fileSystem().unlinkSync(path.join(kv, old.name)); } catch { /* removed at the next rewrite */ }
  }

  /** Deletes SST files that the MANIFEST no longer names and no reader holds. */
  deleteTables(fileNumbers: number[]): void {
    const fs = fileSystem();
    const live = new Set(this.state.levels.flat().map((f) => f.fileNumber));
    for (const n of fileNumbers) {
      if (live.has(n)) throw new Error(`stemedb assertion failed: deleting live table ${n}`);
      try { fs.unlinkSync(tablePath(this.location, n)); } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
  }

  /** Drains the ring once. Returns true when it made progress. */
  service(): boolean {
    const head = this.ring.published();
    if (head === this.ring.position) return false;
    const records: RingRecordView[] = [];
    this.ring.scan(this.ring.position, head, (record) => { records.push(record); return true; });
    let progressed = false;
    let i = 0;
    while (i < records.length) {
      const record = records[i];
      if (record.type === RingRecord.WriteFirst || record.type === RingRecord.WriteMiddle) {
        // Fragments of a batch larger than a ring record: copy out and free the ring at once,
        // so the producer can publish the rest.
        this.fragments.push(this.ring.bytes.slice(record.offset, record.offset + record.length));
        this.ring.release(record.end);
        i++;
        progressed = true;
        continue;
      }
      if (record.type === RingRecord.Rotate) {
        if (!this.failed && this.active.entryCount > 0 && !this.rotate()) return progressed; // stalled
        this.tickets++;
        this.publish(record.end);
        i++;
        progressed = true;
        continue;
      }
      if (this.failed) {
        this.fragments = [];
        this.tickets++;
        this.publish(record.end);
        i++;
        progressed = true;
        continue;
      }
      // Gather the longest run of batches that fits the active memtable.
      const first = this.batchAt(record);
      let room = this.active.capacityBytes - this.active.usedBytes;
      if (first.memtableBytes > room) {
        if (this.active.entryCount > 0 && !this.rotate()) return progressed; // stalled: rest stays in the ring
        if (this.failed) continue;
        // A fresh memtable too small for one huge batch is replaced by one sized to fit.
        if (first.memtableBytes > this.active.capacityBytes - this.active.usedBytes) this.replaceEmptyActive(first.memtableBytes);
        room = this.active.capacityBytes - this.active.usedBytes;
      }
      const group: PendingBatch[] = [];
      let j = i;
      while (j < records.length) {
        const next = records[j];
        if (next.type !== RingRecord.Write && next.type !== RingRecord.WriteLast) break;
        const batch = j === i ? first : this.batchAt(next);
        if (batch.memtableBytes > room) break;
        room -= batch.memtableBytes;
        group.push(batch);
        j++;
      }
      this.commitGroup(group);
      i = j;
      progressed = true;
    }
    return progressed;
  }

  /** The batch a Write or WriteLast record completes. Assembled fragments stay until committed. */
  private batchAt(record: RingRecordView): PendingBatch {
    let data = this.ring.bytes.subarray(record.offset, record.offset + record.length);
    if (record.type === RingRecord.WriteLast) {
      if (this.assembled?.end !== record.end) {
        let total = data.length;
        for (const f of this.fragments) total += f.length;
        const whole = new Uint8Array(total);
        let at = 0;
        for (const f of this.fragments) { whole.set(f, at); at += f.length; }
        whole.set(data, at);
        this.fragments = [];
        this.assembled = { end: record.end, data: whole };
      }
      data = this.assembled.data;
    }
    const header = readBatchHeader(data);
    if (!header) throw new Error('stemedb assertion failed: short batch in ring');
    return { kind: 'batch', data, sync: header.sync, memtableBytes: batchMemtableBytes(data), end: record.end };
  }

  private commitGroup(group: PendingBatch[]): void {
    let bytes = 0;
    let sync = false;
    for (const b of group) { bytes += RECORD_HEADER_BYTES + b.data.length; sync ||= b.sync; }
    if (this.scratch.length < bytes) this.scratch = new Uint8Array(Math.max(bytes, this.scratch.length * 2));
    const out = this.scratch;
    let at = 0;
    for (const b of group) {
      out.set(b.data, at + RECORD_HEADER_BYTES);
      at = sealRecord(out, at, RecordType.Batch, b.data.length);
    }
    const fs = fileSystem();
    try {
      writeAllSync(this.segmentFd, out.subarray(0, bytes), this.segmentBytes);
      this.segmentBytes += bytes;
      this.control.addWide(Control.WalBytesLow, bytes);
      this.control.add(Control.WalGroups, 1);
      if (sync) {
        fs.fdatasyncSync(this.segmentFd);
        this.control.add(Control.WalSyncs, 1);
      }
    } catch (e) {
      this.fail(e, group.length, group[group.length - 1].end);
      return;
    }
    // Apply from our copy; the ring bytes may be overwritten once released.
    at = 0;
    for (const b of group) {
      applyBatch(this.active, out.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + b.data.length));
      at += RECORD_HEADER_BYTES + b.data.length;
    }
    this.tickets += group.length;
    this.assembled = undefined;
    this.publish(group[group.length - 1].end);
  }

  /** Publishes acknowledgements up to the current ticket and frees the ring up to `end`. */
  private publish(end: number): void {
    this.ring.release(end);
    this.control.store(Control.AckedTickets, this.tickets);
    // Wake the caller's thread, parked in waitAsync on AckedTickets.
    this.control.notify(Control.AckedTickets);
  }

  private fail(cause: unknown, groupSize: number, end: number): void {
    this.failed = true;
    const error = ioError(`WAL write failed: ${(cause as Error)?.message ?? cause}`, cause);
    this.post({ type: 'failed', dbId: this.id, error: errorToWire(error) });
    this.control.store(Control.FailedFromTicket, this.tickets);
    this.control.store(Control.Failed, 1);
    this.tickets += groupSize;
    this.publish(end);
  }

  private replaceEmptyActive(bytes: number): void {
    this.active = this.newMemtable(Math.max(this.options.writeBufferSize, bytes));
    this.activeGeneration++;
    this.handedOut.set(this.activeGeneration, this.active.buffer);
    this.post({ type: 'rotated', dbId: this.id, memtable: { generation: this.activeGeneration, buffer: this.active.buffer, firstSegment: this.segmentNumber, immutable: false } });
    this.control.store(Control.MemtableGeneration, this.activeGeneration);
  }

  /** Makes the active memtable immutable and starts a new memtable and segment. False when stalled. */
  private rotate(): boolean {
    if (this.control.load(Control.ImmutableCount) >= this.control.load(Control.ImmutableCountMax)) return false;
    try {
      this.openNextSegment();
    } catch (e) {
      this.fail(e, 0, this.ring.position);
      return true;
    }
    this.active.markImmutable();
    this.control.add(Control.ImmutableCount, 1);
    this.active = this.newMemtable(this.options.writeBufferSize);
    this.activeGeneration++;
    this.handedOut.set(this.activeGeneration, this.active.buffer);
    // Post first, then bump the generation: the caller's thread sees the new generation only
    // with (or after) the message that carries the buffer, and waits for it before acking.
    this.post({ type: 'rotated', dbId: this.id, memtable: { generation: this.activeGeneration, buffer: this.active.buffer, firstSegment: this.segmentNumber, immutable: false } });
    this.control.store(Control.MemtableGeneration, this.activeGeneration);
    return true;
  }

  /**
   * The caller's thread no longer reads these memtables (no live Version holds them, and their
   * flushes finished): their buffers may be reused. See Memtable.reuse for why reuse matters.
   */
  releaseMemtables(generations: number[]): void {
    for (const generation of generations) {
      // The active memtable is still written; it is released again after it rotates out.
      // (Only reachable when a Version is released after close; nothing is reused then.)
      const buffer = this.handedOut.get(generation);
      if (buffer === undefined || generation === this.activeGeneration) continue;
      this.handedOut.delete(generation);
      // Every released buffer is kept: dropping one would not free it (it reached the caller's
      // thread, which keeps it alive), so a spare costs nothing extra, and the number of buffers
      // stays at the most ever in use at once (active + immutableMemtablesMax + those pinned by
      // iterators and snapshots).
      this.spares.push(buffer);
    }
  }

  /**
   * A memtable of at least arenaBytes, from a spare buffer when one fits exactly. Sizes above
   * writeBufferSize (a batch larger than the write buffer) round up to writeBufferSize * 2^k,
   * so their buffers can be reused too.
   */
  private newMemtable(arenaBytes: number): Memtable {
    let size = this.options.writeBufferSize;
    while (size < arenaBytes) size *= 2;
    const bytes = Memtable.bufferBytes(size);
    const at = this.spares.findIndex((b) => b.byteLength === bytes);
    if (at >= 0) return Memtable.reuse(this.spares.splice(at, 1)[0], size);
    const closedAt = closedDatabaseSpares.findIndex((b) => b.byteLength === bytes);
    if (closedAt >= 0) return Memtable.reuse(closedDatabaseSpares.splice(closedAt, 1)[0], size);
    this.control.add(Control.MemtableBuffersAllocated, 1);
    return Memtable.create(size);
  }

  close(locksHeld: Set<string>): void {
    this.closed = true;
    this.closeFiles();
    releaseLock(this.location, locksHeld);
    // The caller's thread has closed every iterator and snapshot and waited for flushes before
    // asking to close, so no thread reads these memtables again: later databases on this
    // worker reuse the buffers (a closed database's buffers would otherwise stay allocated).
    for (const buffer of [...this.spares, ...this.handedOut.values()]) {
      if (closedDatabaseSpares.length < CLOSED_DATABASE_SPARES_MAX) closedDatabaseSpares.push(buffer);
    }
    this.spares.length = 0;
    this.handedOut.clear();
  }

  private closeFiles(): void {
    const fs = fileSystem();
    if (this.segmentFd >= 0) { try { fs.closeSync(this.segmentFd); } catch { /* closing anyway */ } this.segmentFd = -1; }
    this.manifest?.close();
  }
}

function isDirectory(p: string): boolean {
  try {
    return fileSystem().readdirSync(p) !== undefined;
  } catch {
    return false;
  }
}
