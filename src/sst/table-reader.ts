// Threads: main thread and workers; each thread opens its own TableReader (a reader holds an
// fd, its decoded index and filter, and scratch iterators, none of which cross threads).
// Within a thread, any number of gets and iterators may use one reader concurrently: sync
// calls run to completion, and async get() does all scratch work between its awaits.
//
// Opening reads the footer, then the index and filter blocks, and keeps them decoded for the
// reader's lifetime. A point lookup:
//   1. asks the bloom filter (user key) and stops on "absent";
//   2. seeks the index to the lookup key userKey ‖ (snapshotSequence, Put), the smallest
//      internal key of userKey visible at the snapshot; the first index key >= it names the
//      only data block that can hold the answer;
//   3. reads that block (the block cache's two tiers, else one read of payload ‖ trailer,
//      verified and decoded, then cached in both tiers);
//   4. seeks in the block; the entry found answers the lookup if its user key matches.
// Every block is checksum-verified and structurally validated before use; any mismatch is a
// CorruptionError naming the file and block offset, never wrong data.
// REQUIRES: close() only after every get and iterator on the reader has finished.

import { assert } from '../common/assert.js';
import { ioError, CorruptionError } from '../common/errors.js';
import { fileSystem, readExact, readExactSync } from '../common/fs.js';
import type { InternalIterator, LookupResult } from '../common/iterator.js';
import { EntryKind, TRAILER_BYTES } from '../common/keys.js';
import { getVarint } from '../common/varint.js';
import { Block, BlockIterator, compareInternalRange } from './block.js';
import type { BlockCache } from './block-cache.js';
import { BloomFilter, bloomHash } from './bloom.js';
import { BLOCK_BYTES_MAX, BLOCK_TRAILER_BYTES, type BlockHandle, decodeBlock, decodeFooter, FOOTER_BYTES, type Footer } from './format.js';

export interface VerifyReport {
  ok: boolean;
  problems: { offset: number; what: string }[];
}

function allocRaw(bytes: number): Uint8Array {
  // Unpooled and not zero-filled: every byte is overwritten by the read or the block is rejected.
  // A plain Uint8Array view (not a Buffer) keeps block byte access monomorphic with LZ4 output.
  const buf = Buffer.allocUnsafeSlow(bytes);
  return new Uint8Array(buf.buffer, buf.byteOffset, bytes);
}

export class TableReader {
  readonly fileSize: number;
  readonly entryCount: number;
  /** Data blocks live in [0, dataEnd). */
  private readonly dataEnd: number;
  private readonly index: Block;
  private readonly filter: BloomFilter | undefined;
  private readonly footer: Footer;
  /** Scratch iterators for point lookups (see the thread note above). */
  private readonly indexScratch: BlockIterator;
  private dataScratch: BlockIterator | undefined;
  private closed = false;

  private constructor(
    readonly file: string,
    readonly fileNumber: number,
    private readonly fd: number,
    fileSize: number,
    footer: Footer,
    indexContents: Uint8Array,
    filterContents: Uint8Array | undefined,
    private readonly cache: BlockCache | undefined,
  ) {
    this.fileSize = fileSize;
    this.footer = footer;
    this.entryCount = footer.entryCount;
    this.dataEnd = footer.filter.size !== 0 ? footer.filter.offset : footer.index.offset;
    this.index = new Block(file, footer.index.offset, indexContents);
    this.filter = filterContents && new BloomFilter(filterContents);
    this.indexScratch = this.index.iterator();
  }

  static openSync(file: string, fileNumber: number, cache?: BlockCache): TableReader {
    const fd = openFile(file);
    try {
      const fileSize = fileSizeOf(file, fd);
      const footer = decodeFooter(file, fileSize, readRangeSync(file, fd, fileSize - FOOTER_BYTES, FOOTER_BYTES));
      const index = decodeBlock(file, footer.index.offset, readRangeSync(file, fd, footer.index.offset, footer.index.size + BLOCK_TRAILER_BYTES));
      const filter = footer.filter.size === 0 ? undefined : decodeBlock(file, footer.filter.offset, readRangeSync(file, fd, footer.filter.offset, footer.filter.size + BLOCK_TRAILER_BYTES));
      return new TableReader(file, fileNumber, fd, fileSize, footer, index, filter, cache);
    } catch (e) {
      fileSystem().closeSync(fd);
      throw e;
    }
  }

  static async open(file: string, fileNumber: number, cache?: BlockCache): Promise<TableReader> {
    const fd = openFile(file);
    try {
      const fileSize = fileSizeOf(file, fd);
      const footer = decodeFooter(file, fileSize, await readRange(file, fd, fileSize - FOOTER_BYTES, FOOTER_BYTES));
      const index = decodeBlock(file, footer.index.offset, await readRange(file, fd, footer.index.offset, footer.index.size + BLOCK_TRAILER_BYTES));
      const filter = footer.filter.size === 0 ? undefined : decodeBlock(file, footer.filter.offset, await readRange(file, fd, footer.filter.offset, footer.filter.size + BLOCK_TRAILER_BYTES));
      return new TableReader(file, fileNumber, fd, fileSize, footer, index, filter, cache);
    } catch (e) {
      fileSystem().closeSync(fd);
      throw e;
    }
  }

  /** False only when userKey is certainly absent from the table. */
  mayContain(userKey: Uint8Array): boolean {
    return this.filter === undefined || this.filter.mayContain(userKey);
  }

  /**
   * Newest entry for userKey with sequence <= snapshotSequence (tombstones included), or
   * undefined. keyHash: bloomHash(userKey), when the caller probes several tables with one key.
   */
  getSync(userKey: Uint8Array, snapshotSequence: number, keyHash?: number): LookupResult | undefined {
    assert(!this.closed, 'TableReader used after close');
    const filter = this.filter;
    if (filter !== undefined && !filter.mayContainHash(keyHash ?? bloomHash(userKey))) return undefined;
    const target = lookupKey(userKey, snapshotSequence);
    const handle = this.seekIndex(target);
    if (handle === undefined) return undefined;
    const cache = this.cache;
    // transient: lookupInBlock is done with the block (it copies the value) before the next cache call.
    const block = cache?.lookup(this.file, this.fileNumber, handle.offset, true) ?? this.readAndAdmitSync(handle);
    return this.lookupInBlock(block, target, userKey);
  }

  async get(userKey: Uint8Array, snapshotSequence: number): Promise<LookupResult | undefined> {
    assert(!this.closed, 'TableReader used after close');
    if (!this.mayContain(userKey)) return undefined;
    const target = lookupKey(userKey, snapshotSequence);
    const handle = this.seekIndex(target);
    if (handle === undefined) return undefined;
    // transient, as in getSync: nothing awaits between a cache hit and lookupInBlock.
    const block = this.cache?.lookup(this.file, this.fileNumber, handle.offset, true) ?? (await this.readDataBlock(handle));
    return this.lookupInBlock(block, target, userKey);
  }

  /** An iterator over all entries; blocks are read synchronously through the cache. */
  iterator(): InternalIterator {
    assert(!this.closed, 'TableReader used after close');
    return new TableIterator(this, this.index.iterator());
  }

  /** Handles of all data blocks in file order (dump tool and tests). */
  dataBlockHandles(): BlockHandle[] {
    const out: BlockHandle[] = [];
    const it = this.index.iterator();
    for (it.seekToFirst(); it.valid(); it.next()) out.push(this.handleAt(it));
    return out;
  }

  /**
   * Re-reads the footer and every block from disk (bypassing the cache) and checks checksums,
   * structure, key order, index keys, the filter and the entry count. Collects problems
   * instead of throwing.
   */
  verifySync(): VerifyReport {
    assert(!this.closed, 'TableReader used after close');
    const problems: { offset: number; what: string }[] = [];
    const note = (e: unknown, offset: number) => {
      if (e instanceof CorruptionError) problems.push({ offset: e.offset, what: e.message });
      else problems.push({ offset, what: String((e as Error)?.message ?? e) });
    };
    let index: Block | undefined;
    try {
      const footer = decodeFooter(this.file, this.fileSize, readRangeSync(this.file, this.fd, this.fileSize - FOOTER_BYTES, FOOTER_BYTES));
      index = new Block(this.file, footer.index.offset, decodeBlock(this.file, footer.index.offset, readRangeSync(this.file, this.fd, footer.index.offset, footer.index.size + BLOCK_TRAILER_BYTES)));
      if (footer.filter.size !== 0) decodeBlock(this.file, footer.filter.offset, readRangeSync(this.file, this.fd, footer.filter.offset, footer.filter.size + BLOCK_TRAILER_BYTES));
    } catch (e) {
      note(e, this.fileSize - FOOTER_BYTES);
    }
    if (index === undefined) return { ok: false, problems };

    let entries = 0;
    let previous: Uint8Array | undefined;
    let expectedOffset = 0;
    const indexIt = index.iterator();
    try {
      for (indexIt.seekToFirst(); indexIt.valid(); indexIt.next()) {
        const handle = this.handleAt(indexIt);
        if (handle.offset !== expectedOffset) problems.push({ offset: handle.offset, what: `data block at ${handle.offset}, expected ${expectedOffset}` });
        expectedOffset = handle.offset + handle.size + BLOCK_TRAILER_BYTES;
        try {
          const it = this.readDataBlockSync(handle).iterator();
          let last: Uint8Array | undefined;
          for (it.seekToFirst(); it.valid(); it.next()) {
            const key = it.key();
            if (previous && compareInternalRange(previous, 0, previous.length, key, 0, key.length) >= 0) {
              problems.push({ offset: handle.offset, what: 'keys out of order' });
            }
            if (this.filter && !this.filter.mayContain(key.subarray(0, key.length - 8))) problems.push({ offset: handle.offset, what: 'bloom filter misses a key' });
            previous = last = key.slice();
            entries++;
          }
          const indexKey = indexIt.key();
          if (!last || compareInternalRange(last, 0, last.length, indexKey, 0, indexKey.length) !== 0) {
            problems.push({ offset: handle.offset, what: 'index key is not the data block\'s last key' });
          }
        } catch (e) {
          note(e, handle.offset);
        }
      }
    } catch (e) {
      note(e, index.blockOffset);
    }
    if (expectedOffset !== this.dataEnd) problems.push({ offset: expectedOffset, what: `data blocks end at ${expectedOffset}, meta blocks start at ${this.dataEnd}` });
    if (entries !== this.entryCount) problems.push({ offset: this.fileSize - FOOTER_BYTES, what: `footer says ${this.entryCount} entries, blocks hold ${entries}` });
    return { ok: problems.length === 0, problems };
  }

  /** Closes the fd; cached blocks stay (evict them with cache.evictFile when the file is deleted). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    fileSystem().closeSync(this.fd);
  }

  /** Positions the scratch index iterator at target; returns the data block handle, if any. */
  private seekIndex(target: Uint8Array): BlockHandle | undefined {
    const it = this.indexScratch;
    it.seek(target);
    return it.valid() ? this.handleAt(it) : undefined;
  }

  private lookupInBlock(block: Block, target: Uint8Array, userKey: Uint8Array): LookupResult | undefined {
    let it = this.dataScratch;
    if (it === undefined) it = this.dataScratch = block.iterator();
    else it.reset(block);
    it.seek(target);
    // The index key (this block's last key) is >= target, so the block must hold an entry >= target.
    if (!it.valid()) throw new CorruptionError(this.file, block.blockOffset, 'data block ends before its index key');
    if (!it.userKeyEquals(userKey)) return undefined;
    return { kind: it.kind(), sequence: it.sequence(), value: it.value().slice() };
  }

  /** Internal (TableIterator): the data block handle of the index entry at it, validated against the data region. */
  handleAt(it: BlockIterator): BlockHandle {
    const value = it.value();
    const [offset, afterOffset] = getVarint(value, 0);
    const [size, end] = afterOffset < 0 ? [-1, -1] : getVarint(value, afterOffset);
    if (end !== value.length || size > BLOCK_BYTES_MAX || offset + size + BLOCK_TRAILER_BYTES > this.dataEnd) {
      throw new CorruptionError(this.file, this.index.blockOffset, `bad data block handle in index (${offset}, ${size})`);
    }
    return { offset, size };
  }

  /**
   * Internal (TableIterator): a data block through the cache's tiers (block-cache.ts), read
   * synchronously on a miss and then admitted to both tiers. With a read-ahead window, a miss
   * that moves forward reads READAHEAD_BYTES at once, so a scan does one read per window
   * instead of one per block.
   */
  dataBlockSync(handle: BlockHandle, readahead?: Readahead): Block {
    const cache = this.cache;
    if (cache === undefined) return this.readDataBlockSync(handle, readahead);
    return cache.lookup(this.file, this.fileNumber, handle.offset) ?? this.readAndAdmitSync(handle, readahead);
  }

  /** A cache miss: reads the block and admits it to the cache's tiers. */
  private readAndAdmitSync(handle: BlockHandle, readahead?: Readahead): Block {
    const block = this.readDataBlockSync(handle, readahead);
    this.cache?.admit(this.fileNumber, handle.offset, block);
    return block;
  }

  private readDataBlockSync(handle: BlockHandle, readahead?: Readahead): Block {
    const bytes = handle.size + BLOCK_TRAILER_BYTES;
    let raw: Uint8Array;
    if (readahead && handle.offset >= readahead.offset && handle.offset + bytes <= readahead.offset + readahead.bytes.length) {
      raw = readahead.bytes.subarray(handle.offset - readahead.offset, handle.offset - readahead.offset + bytes);
    } else if (readahead && handle.offset > readahead.lastOffset) {
      // Moving forward: read a window. Each window is a fresh buffer, because blocks decoded
      // from it may be views into it and live on in the cache.
      const windowBytes = Math.min(this.dataEnd - handle.offset, Math.max(bytes, READAHEAD_BYTES));
      readahead.bytes = readRangeSync(this.file, this.fd, handle.offset, windowBytes);
      readahead.offset = handle.offset;
      raw = readahead.bytes.subarray(0, bytes);
    } else if (bytes <= READ_SCRATCH_BYTES_MAX) {
      // A point read: into the thread's scratch buffer, so the only allocation is LZ4's output
      // (a fresh ArrayBuffer costs ~3 us here, more than the pread). An uncompressed block
      // decodes to a view of the scratch, so it is copied out.
      if (readScratch.length < bytes) readScratch = new Uint8Array(Math.min(READ_SCRATCH_BYTES_MAX, Math.max(bytes, readScratch.length * 2)));
      const contents = decodeBlock(this.file, handle.offset, readRangeIntoSync(this.file, this.fd, handle.offset, bytes, readScratch));
      return new Block(this.file, handle.offset, contents.buffer === readScratch.buffer ? contents.slice() : contents);
    } else {
      raw = readRangeSync(this.file, this.fd, handle.offset, bytes);
    }
    if (readahead) readahead.lastOffset = handle.offset;
    return new Block(this.file, handle.offset, decodeBlock(this.file, handle.offset, raw));
  }

  private async readDataBlock(handle: BlockHandle): Promise<Block> {
    const raw = await readRange(this.file, this.fd, handle.offset, handle.size + BLOCK_TRAILER_BYTES);
    const block = new Block(this.file, handle.offset, decodeBlock(this.file, handle.offset, raw));
    this.cache?.admit(this.fileNumber, handle.offset, block);
    return block;
  }
}

/**
 * userKey ‖ trailer(snapshotSequence, Put): the first internal key of userKey visible at the
 * snapshot (Put is the largest kind). Same bytes as keys.ts makeInternalKey, written without
 * a DataView, which costs more than the rest of a cached lookup on small keys.
 */
function lookupKey(userKey: Uint8Array, snapshotSequence: number): Uint8Array {
  const out = new Uint8Array(userKey.length + TRAILER_BYTES);
  out.set(userKey, 0);
  const low = (snapshotSequence % 0x1000000) * 256 + EntryKind.Put;
  const high = Math.floor(snapshotSequence / 0x1000000);
  let p = userKey.length;
  out[p++] = low & 0xff;
  out[p++] = (low >>> 8) & 0xff;
  out[p++] = (low >>> 16) & 0xff;
  out[p++] = low >>> 24;
  out[p++] = high & 0xff;
  out[p++] = (high >>> 8) & 0xff;
  out[p++] = (high >>> 16) & 0xff;
  out[p++] = high >>> 24;
  return out;
}

function openFile(file: string): number {
  try {
    return fileSystem().openSync(file, 'r');
  } catch (e) {
    throw ioError(`cannot open table ${file}`, e);
  }
}

function fileSizeOf(file: string, fd: number): number {
  let size: number;
  try {
    size = fileSystem().fstatSizeSync(fd);
  } catch (e) {
    throw ioError(`cannot stat table ${file}`, e);
  }
  if (size < FOOTER_BYTES) throw new CorruptionError(file, 0, `file of ${size} bytes is shorter than the ${FOOTER_BYTES}-byte footer`);
  return size;
}

/** This thread's buffer for point reads of blocks (readDataBlockSync); grows up to READ_SCRATCH_BYTES_MAX. */
let readScratch = new Uint8Array(16 * 1024);
const READ_SCRATCH_BYTES_MAX = 1024 * 1024;

/** readRangeSync into scratch (at least `bytes` long); returns the view of what was read. */
function readRangeIntoSync(file: string, fd: number, offset: number, bytes: number, scratch: Uint8Array): Uint8Array {
  let n: number;
  try {
    n = readExactSync(fd, scratch, bytes, offset);
  } catch (e) {
    throw ioError(`read of ${file} at ${offset} failed`, e);
  }
  if (n !== bytes) throw new CorruptionError(file, offset, `truncated: read ${n} of ${bytes} bytes`);
  return scratch.subarray(0, bytes);
}

function readRangeSync(file: string, fd: number, offset: number, bytes: number): Uint8Array {
  const buf = allocRaw(bytes);
  let n: number;
  try {
    n = readExactSync(fd, buf, bytes, offset);
  } catch (e) {
    throw ioError(`read of ${file} at ${offset} failed`, e);
  }
  if (n !== bytes) throw new CorruptionError(file, offset, `truncated: read ${n} of ${bytes} bytes`);
  return buf;
}

async function readRange(file: string, fd: number, offset: number, bytes: number): Promise<Uint8Array> {
  const buf = allocRaw(bytes);
  let n: number;
  try {
    n = await readExact(fd, buf, bytes, offset);
  } catch (e) {
    throw ioError(`read of ${file} at ${offset} failed`, e);
  }
  if (n !== bytes) throw new CorruptionError(file, offset, `truncated: read ${n} of ${bytes} bytes`);
  return buf;
}

/** Bytes a forward scan reads at once on a cache miss. */
const READAHEAD_BYTES = 256 * 1024;

/** One iterator's read-ahead window over the data blocks of its table. */
interface Readahead {
  offset: number;
  bytes: Uint8Array;
  /** Offset of the last block read, to tell forward from backward movement. */
  lastOffset: number;
}

/**
 * Two-level iterator: the index iterator picks the data block, a block iterator walks it.
 * Blocks are fetched lazily through the reader's cache; the current block stays referenced
 * while the iterator is on it even if the cache evicts it.
 */
class TableIterator implements InternalIterator {
  private data: BlockIterator | undefined;
  private dataBlockOffset = -1;
  private dataOn = false;
  private readonly readahead: Readahead = { offset: 0, bytes: new Uint8Array(0), lastOffset: -1 };

  constructor(private readonly reader: TableReader, private readonly indexIt: BlockIterator) {}

  valid(): boolean {
    return this.dataOn && this.data!.valid();
  }

  key(): Uint8Array {
    return this.data!.key();
  }

  value(): Uint8Array {
    return this.data!.value();
  }

  seekToFirst(): void {
    this.indexIt.seekToFirst();
    if (this.loadBlock()) this.data!.seekToFirst();
    this.skipForward();
  }

  seekToLast(): void {
    this.indexIt.seekToLast();
    if (this.loadBlock()) this.data!.seekToLast();
    this.skipBackward();
  }

  seek(target: Uint8Array): void {
    this.indexIt.seek(target);
    if (this.loadBlock()) this.data!.seek(target);
    this.skipForward();
  }

  next(): void {
    if (!this.valid()) return;
    this.data!.next();
    this.skipForward();
  }

  prev(): void {
    if (!this.valid()) return;
    this.data!.prev();
    this.skipBackward();
  }

  close(): void {
    this.dataOn = false;
    this.data = undefined;
  }

  /** Points data at the block the index iterator is on; false when the index is exhausted. */
  private loadBlock(): boolean {
    if (!this.indexIt.valid()) {
      this.dataOn = false;
      return false;
    }
    const handle = this.reader.handleAt(this.indexIt);
    if (this.data === undefined || handle.offset !== this.dataBlockOffset) {
      // Mark unloaded first so a read error leaves the iterator invalid, not on a stale block.
      this.dataOn = false;
      const block = this.reader.dataBlockSync(handle, this.readahead);
      if (this.data === undefined) this.data = block.iterator();
      else this.data.reset(block);
      this.dataBlockOffset = handle.offset;
    }
    this.dataOn = true;
    return true;
  }

  private skipForward(): void {
    while (this.dataOn && !this.data!.valid()) {
      this.indexIt.next();
      if (this.loadBlock()) this.data!.seekToFirst();
    }
  }

  private skipBackward(): void {
    while (this.dataOn && !this.data!.valid()) {
      this.indexIt.prev();
      if (this.loadBlock()) this.data!.seekToLast();
    }
  }
}
