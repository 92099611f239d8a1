// Threads: the caller's (main) thread. The read view of a database: its memtables (in shared
// memory, written concurrently by the WAL worker) and its SST files.
//
// A Version is immutable once built. A flush or rotation builds a new one and swaps it in
// with one assignment, so a read sees either the memtable or the SST that replaced it,
// never neither. Iterators and snapshots keep the Version they started with; memtables are
// garbage-collected shared buffers, so an old Version stays readable for as long as it is held.
//
// Read order for a point lookup, newest data first:
//   1. the active memtable, 2. immutable memtables newest first, 3. level-0 files newest
//   first (they overlap), 4. deeper levels (sorted, non-overlapping): one file per level.
// The first entry found with sequence <= snapshot decides: a Put returns its value, a
// Delete returns "absent".

import * as path from 'node:path';
import type { InternalIterator, LookupResult } from '../common/iterator.js';
import { EntryKind, TRAILER_BYTES } from '../common/keys.js';
import { kvDir, tableName } from '../common/files.js';
import type { FileMeta } from '../log/manifest.js';
import { Memtable } from '../shm/memtable.js';
import { compareBytesRange } from '../sst/block.js';
import { bloomHash } from '../sst/bloom.js';
import { BlockCache } from '../sst/block-cache.js';
import { TableReader } from '../sst/table-reader.js';

export interface MemtableRef {
  generation: number;
  memtable: Memtable;
  firstSegment: number;
}


/** Values go to users as Buffers (the 'buffer' format); a view over the same bytes, no copy. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Sign of (user part of internalKey) versus key, without a subarray per call. */
function compareUser(internalKey: Uint8Array, key: Uint8Array): number {
  return compareBytesRange(internalKey, 0, internalKey.length - TRAILER_BYTES, key, 0, key.length);
}

function inRange(file: FileMeta, key: Uint8Array): boolean {
  return compareUser(file.smallestKey, key) <= 0 && compareUser(file.largestKey, key) >= 0;
}

/** The file of a sorted, non-overlapping level whose range holds key, if any. */
function fileAt(files: readonly FileMeta[], key: Uint8Array): FileMeta | undefined {
  let lo = 0, hi = files.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareUser(files[mid].largestKey, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo < files.length && compareUser(files[lo].smallestKey, key) <= 0 ? files[lo] : undefined;
}

/** Open SST readers of one database. Files are opened on first use and stay open until dropped. */
export class TableCache {
  private readonly readers = new Map<number, TableReader>();
  private readonly opening = new Map<number, Promise<TableReader>>();
  constructor(private readonly location: string, readonly blockCache: BlockCache) {}

  private file(n: number): string {
    return path.join(kvDir(this.location), tableName(n));
  }

  getSync(n: number): TableReader {
    let r = this.readers.get(n);
    if (!r) {
      r = TableReader.openSync(this.file(n), n, this.blockCache);
      this.readers.set(n, r);
    }
    return r;
  }

  async get(n: number): Promise<TableReader> {
    const r = this.readers.get(n);
    if (r) return r;
    let p = this.opening.get(n);
    if (!p) {
      p = TableReader.open(this.file(n), n, this.blockCache).then((reader) => {
        this.opening.delete(n);
        const raced = this.readers.get(n);
        if (raced) { reader.close(); return raced; }
        this.readers.set(n, reader);
        return reader;
      }, (e) => { this.opening.delete(n); throw e; });
      this.opening.set(n, p);
    }
    return p;
  }

  /** Closes a table that is about to be deleted and drops its cached blocks. */
  evict(n: number): void {
    const r = this.readers.get(n);
    if (r) { r.close(); this.readers.delete(n); }
    this.blockCache.evictFile(n);
  }

  get openCount(): number {
    return this.readers.size;
  }

  closeAll(): void {
    for (const r of this.readers.values()) r.close();
    this.readers.clear();
    this.blockCache.clear();
  }
}

export class Version {
  constructor(
    readonly active: MemtableRef,
    /** Oldest first: the next to flush is immutables[0]. */
    readonly immutables: readonly MemtableRef[],
    /** levels[0] newest first; deeper levels sorted by smallest key. */
    readonly levels: readonly (readonly FileMeta[])[],
  ) {}

  private lookupMemtables(key: Uint8Array, snapshot: number): LookupResult | undefined {
    const found = this.active.memtable.get(key, snapshot);
    if (found) return found;
    for (let i = this.immutables.length - 1; i >= 0; i--) {
      const r = this.immutables[i].memtable.get(key, snapshot);
      if (r) return r;
    }
    return undefined;
  }

  /** Files that may hold key, in the order they must be probed. */
  *candidateFiles(key: Uint8Array): Generator<FileMeta> {
    for (const f of this.levels[0]) if (inRange(f, key)) yield f;
    for (let level = 1; level < this.levels.length; level++) {
      const f = fileAt(this.levels[level], key);
      if (f) yield f;
    }
  }

  getSync(key: Uint8Array, snapshot: number, tables: TableCache): Uint8Array | undefined {
    const m = this.lookupMemtables(key, snapshot);
    if (m) return m.kind === EntryKind.Put ? asBuffer(m.value) : undefined;
    // candidateFiles() unrolled: a generator costs more than the rest of a cached lookup.
    // One filter hash serves every table probed (they share the seed).
    const levels = this.levels;
    let hash: number | undefined;
    for (const f of levels[0]) {
      if (!inRange(f, key)) continue;
      const r = tables.getSync(f.fileNumber).getSync(key, snapshot, (hash ??= bloomHash(key)));
      if (r) return r.kind === EntryKind.Put ? asBuffer(r.value) : undefined;
    }
    for (let level = 1; level < levels.length; level++) {
      const f = fileAt(levels[level], key);
      if (f === undefined) continue;
      const r = tables.getSync(f.fileNumber).getSync(key, snapshot, (hash ??= bloomHash(key)));
      if (r) return r.kind === EntryKind.Put ? asBuffer(r.value) : undefined;
    }
    return undefined;
  }

  async get(key: Uint8Array, snapshot: number, tables: TableCache): Promise<Uint8Array | undefined> {
    const m = this.lookupMemtables(key, snapshot);
    if (m) return m.kind === EntryKind.Put ? asBuffer(m.value) : undefined;
    for (const f of this.candidateFiles(key)) {
      const r = await (await tables.get(f.fileNumber)).get(key, snapshot);
      if (r) return r.kind === EntryKind.Put ? asBuffer(r.value) : undefined;
    }
    return undefined;
  }

  /** Child iterators for a merged scan, newest source first. */
  iterators(tables: TableCache): InternalIterator[] {
    const out: InternalIterator[] = [this.active.memtable.iterator()];
    for (let i = this.immutables.length - 1; i >= 0; i--) out.push(this.immutables[i].memtable.iterator());
    for (const files of this.levels) for (const f of files) out.push(tables.getSync(f.fileNumber).iterator());
    return out;
  }

  get fileCount(): number {
    let n = 0;
    for (const files of this.levels) n += files.length;
    return n;
  }

  get memtableBytes(): { active: number; immutable: number } {
    let immutable = 0;
    for (const m of this.immutables) immutable += m.memtable.usedBytes;
    return { active: this.active.memtable.usedBytes, immutable };
  }
}
