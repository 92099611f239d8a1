// Threads: the thread that reads a database's tables (the caller's thread); one BlockCache per
// open database. Tier 1 is plain JS heap and never crosses threads; tier 2 is a SharedBlockCache
// (src/shm/shared-block-cache.ts) that the database's flushes also write to from pool threads.
//
// A database's block cache: two tiers under one memory bound, cacheSize (planBlockCache below).
//   Tier 1 ("local"): a bounded LRU of decoded Block objects, keyed by (fileNumber, blockOffset).
//     A hit costs 60-77 ns. It is charged by the memory its blocks keep alive: each distinct
//     backing ArrayBuffer once, whole (a block copied out of tier 2 may share a small copy pool
//     with others; a block decoded from a read-ahead window shares the window).
//   Tier 2 ("shared"): decompressed, checksum-verified block bytes in a SharedArrayBuffer. A hit
//     costs 0.6-2.8 µs (one copy out of shared memory). Flushes warm it with the blocks they
//     write (prepopulateBlockCache), so freshly flushed data is read without touching the disk.
// lookup() goes tier 1 -> tier 2 (copy out, build a Block over the copy, insert it into tier 1)
// -> undefined; the caller then reads, verifies and decodes the block (about 13 µs) and hands it
// to admit(), which inserts it into both tiers. Compaction readers have no BlockCache at all, so
// compaction reads bypass both tiers.
// A point lookup is done with its block before it calls the cache again (a "transient" lookup).
// Its tier-2 hits are copied into one reused scratch buffer, and only one in PROMOTE_ONE_IN of
// them is copied for keeps into tier 1. Why: a copy for keeps needs a new ArrayBuffer, and their
// allocation (and the garbage collections that external memory triggers) measured 10-20 µs per
// tier-2 hit inside a running database, more than the disk read a hit saves; the scratch copy
// costs about 1 µs. Promoting at random still fills tier 1, with the blocks hit most often first.
//
// Blocks are immutable, so a block evicted while an iterator still holds it stays valid for that
// iterator. REQUIRES: (fileNumber, offset) always names the same bytes (SST files are immutable
// and file numbers are never reused); evictFile() when a file is deleted.
// Invariants: local bytes (the sum of distinct backing buffer sizes of cached blocks) <=
// localCapacityBytes after every call; shared bytes <= shared capacity (shared-block-cache.ts);
// so stats.bytes <= stats.capacityBytes <= cacheSize.

import { assert } from '../common/assert.js';
import { SBC_CAPACITY_BYTES_MAX, SBC_CAPACITY_BYTES_MIN, SBC_PAYLOAD_FRACTION_DIVISOR, SBC_RECORD_ALIGN_BYTES, SBC_RECORD_HEADER_BYTES } from '../shm/layout.js';
import { SBC_COPY_POOL_BYTES, SharedBlockCache, sharedBlockCacheRegions } from '../shm/shared-block-cache.js';
import { Block } from './block.js';

/**
 * Tier 1 gets 1/LOCAL_FRACTION_DIVISOR of cacheSize. Why small: every block in tier 1 came from
 * tier 2 or went into both, so tier-1 bytes mostly duplicate tier-2 bytes and add little to the
 * distinct bytes cached, which is what decides the miss rate (a miss costs 13 µs, five to twenty
 * times a tier-2 hit). A small tier 1 still holds a skewed workload's hottest blocks, where its
 * 60-77 ns hits pay. 1/8 of the default 8 MiB is 1 MiB: 256 blocks of 4 KiB.
 */
export const LOCAL_FRACTION_DIVISOR = 8;
/** Tier 1 holds at least this many blocks of blockSize (when cacheSize allows). */
export const LOCAL_BLOCKS_MIN = 8;
/** Tier-2 copies are carved from private pools of this many blocks (see copyPoolBytes in shared-block-cache.ts). */
const COPY_POOL_BLOCKS = 4;
/** The scratch buffer of transient tier-2 hits holds blocks up to this many times blockSize. */
const SCRATCH_BLOCKS = 2;
/** A transient tier-2 hit is promoted into tier 1 with probability 1 / PROMOTE_ONE_IN (a power of two). */
export const PROMOTE_ONE_IN = 8;

export interface BlockCachePlan {
  /** Tier-1 capacity. */
  localBytes: number;
  /** Capacity passed to SharedBlockCache.create (its arena); 0 = no tier 2. */
  sharedCapacityBytes: number;
  /** The tier-2 SharedArrayBuffer's whole size (header, index and arena); 0 = no tier 2. */
  sharedBufferBytes: number;
  /** copyPoolBytes for this thread's SharedBlockCache instance. */
  copyPoolBytes: number;
  /** The scratch buffer for transient tier-2 hits; 0 = no tier 2. */
  scratchBytes: number;
}

/**
 * Splits cacheBytes between the tiers so that tier-1 capacity + the whole tier-2 buffer (+ the
 * scratch buffer) <= cacheBytes:
 *   1. tier 1 gets max(cacheBytes / LOCAL_FRACTION_DIVISOR, LOCAL_BLOCKS_MIN blocks), at most all;
 *   2. tier 2 gets the largest arena whose buffer fits in the rest, if that arena is at least
 *      SBC_CAPACITY_BYTES_MIN and can hold a block of blockBytes (it refuses blocks above
 *      1/SBC_PAYLOAD_FRACTION_DIVISOR of itself); otherwise there is no tier 2 and tier 1 gets all;
 *   3. what the tier-2 buffer leaves over (alignment, the 1 GiB arena limit) goes to tier 1.
 * cacheBytes 0 gives two empty tiers: nothing is cached.
 */
export function planBlockCache(cacheBytes: number, blockBytes: number): BlockCachePlan {
  assert(Number.isSafeInteger(cacheBytes) && cacheBytes >= 0, 'cache size must be a non-negative integer');
  assert(Number.isSafeInteger(blockBytes) && blockBytes > 0, 'block size must be a positive integer');
  const localBytes = Math.min(cacheBytes, Math.max(Math.floor(cacheBytes / LOCAL_FRACTION_DIVISOR), LOCAL_BLOCKS_MIN * blockBytes));
  const scratchBytes = Math.ceil((SCRATCH_BLOCKS * blockBytes) / SBC_RECORD_ALIGN_BYTES) * SBC_RECORD_ALIGN_BYTES;
  const budget = cacheBytes - localBytes - scratchBytes;
  const none = { localBytes: cacheBytes, sharedCapacityBytes: 0, sharedBufferBytes: 0, copyPoolBytes: 0, scratchBytes: 0 };
  if (budget < SBC_CAPACITY_BYTES_MIN || sharedBlockCacheRegions(SBC_CAPACITY_BYTES_MIN).totalBytes > budget) return none;
  // The buffer size grows with the arena: binary-search the largest arena that fits.
  let lo = SBC_CAPACITY_BYTES_MIN;
  let hi = Math.min(budget, SBC_CAPACITY_BYTES_MAX);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (sharedBlockCacheRegions(mid).totalBytes <= budget) lo = mid;
    else hi = mid - 1;
  }
  const regions = sharedBlockCacheRegions(lo);
  if (Math.floor(regions.arenaBytes / SBC_PAYLOAD_FRACTION_DIVISOR) - SBC_RECORD_HEADER_BYTES < blockBytes) return none;
  const poolBytes = Math.ceil((COPY_POOL_BLOCKS * blockBytes) / SBC_RECORD_ALIGN_BYTES) * SBC_RECORD_ALIGN_BYTES;
  const plan = {
    localBytes: cacheBytes - regions.totalBytes - scratchBytes,
    sharedCapacityBytes: lo,
    sharedBufferBytes: regions.totalBytes,
    // Blocks up to a quarter of the pool are pooled: blocks of blockSize always are, up to 16 KiB.
    copyPoolBytes: Math.min(SBC_COPY_POOL_BYTES, poolBytes),
    scratchBytes,
  };
  assert(plan.localBytes >= localBytes && plan.localBytes + plan.sharedBufferBytes + scratchBytes === cacheBytes, 'block cache plan exceeds cacheSize');
  return plan;
}

interface Node {
  fileNumber: number;
  offset: number;
  block: Block;
  /** Toward the most recently used end. */
  newer: Node | undefined;
  older: Node | undefined;
}

export interface BlockCacheStats {
  /** Both tiers' capacities: tier-1 bytes plus the tier-2 arena. */
  capacityBytes: number;
  /** Bytes cached in both tiers (a block in both counts twice: it takes memory twice). */
  bytes: number;
  blocks: number;
  /** Lookups answered by either tier. */
  hits: number;
  /** Lookups that went to disk. */
  misses: number;
  localCapacityBytes: number;
  localBytes: number;
  localBlocks: number;
  localHits: number;
  /** Zero when there is no tier 2. */
  sharedCapacityBytes: number;
  sharedBytes: number;
  sharedBlocks: number;
  sharedHits: number;
  /** Tier-2 inserts dropped: the cache mutex was busy (this thread never waits for it) or the block was too large. */
  sharedInsertsSkipped: number;
}

export class BlockCache {
  /** fileNumber → blockOffset → node: no string keys on the hot path, and evictFile is cheap. */
  private readonly files = new Map<number, Map<number, Node>>();
  /** Tier-1 blocks per backing buffer: a buffer is charged once, while any block over it is cached. */
  private readonly buffers = new Map<ArrayBufferLike, number>();
  private newest: Node | undefined;
  private oldest: Node | undefined;
  private bytes = 0;
  private blocks = 0;
  private localHits = 0;
  private sharedHits = 0;
  private misses = 0;
  /** Transient tier-2 hits are copied here (see the header); allocated on first use. */
  private scratch: Uint8Array | undefined;
  /** xorshift32 state deciding which transient tier-2 hits are promoted. */
  private promotion = 0x9e3779b9;

  /**
   * A cache of exactly `plan` (see planBlockCache): tier 1 of plan.localBytes, and a new
   * SharedBlockCache when the plan has a tier 2.
   */
  static fromPlan(plan: BlockCachePlan): BlockCache {
    const shared = plan.sharedCapacityBytes > 0 ? SharedBlockCache.create(plan.sharedCapacityBytes, { copyPoolBytes: plan.copyPoolBytes }) : undefined;
    return new BlockCache(plan.localBytes, shared, plan.scratchBytes);
  }

  /**
   * @param capacityBytes tier-1 capacity.
   * @param shared tier 2, if any. REQUIRES: used by this BlockCache's thread only through this
   *   object (other threads attach its buffer), and its keys are this database's file numbers.
   * @param scratchBytes the scratch buffer for transient tier-2 hits (larger blocks are copied
   *   for keeps instead).
   */
  constructor(readonly capacityBytes: number, readonly shared?: SharedBlockCache, private readonly scratchBytes = 0) {
    assert(Number.isFinite(capacityBytes) && capacityBytes >= 0, 'cache capacity must be a non-negative number of bytes');
    assert(Number.isInteger(scratchBytes) && scratchBytes >= 0 && scratchBytes % SBC_RECORD_ALIGN_BYTES === 0, 'scratch size must be a multiple of 8');
  }

  /** Tier 1 only (counted as a hit or a miss). */
  get(fileNumber: number, offset: number): Block | undefined {
    const block = this.touch(fileNumber, offset);
    if (block === undefined) this.misses++;
    else this.localHits++;
    return block;
  }

  /**
   * Tier 1, then tier 2 (a hit there is decoded into a Block over a private copy and moved
   * into tier 1). undefined means the caller reads the block and passes it to admit().
   * `file` names the table in any CorruptionError the Block raises.
   * transient: REQUIRES the caller to be done with the returned block before its next call into
   * this cache (a point lookup); a tier-2 hit may then return a Block over the scratch buffer,
   * kept nowhere.
   */
  lookup(file: string, fileNumber: number, offset: number, transient = false): Block | undefined {
    const block = this.touch(fileNumber, offset);
    if (block !== undefined) {
      this.localHits++;
      return block;
    }
    const shared = this.shared;
    if (shared === undefined) {
      this.misses++;
      return undefined;
    }
    const promote = !transient || this.scratchBytes === 0 || this.promoteNow();
    let bytes: Uint8Array | undefined;
    if (promote) {
      bytes = shared.get(fileNumber, offset);
    } else {
      if (this.scratch === undefined) this.scratch = new Uint8Array(this.scratchBytes);
      bytes = shared.get(fileNumber, offset, this.scratch);
    }
    if (bytes === undefined) {
      this.misses++;
      return undefined;
    }
    this.sharedHits++;
    const copied = new Block(file, offset, bytes);
    if (promote) this.insert(fileNumber, offset, copied);
    return copied;
  }

  /** A block just read from disk (verified and decoded): into both tiers. */
  admit(fileNumber: number, offset: number, block: Block): void {
    this.insert(fileNumber, offset, block);
    // On this thread tier 2 only tryLocks: while a flush holds its mutex the insert is dropped.
    this.shared?.insert(fileNumber, offset, block.data);
  }

  /**
   * Tier 1 only. Caches block unless its backing buffer alone exceeds the capacity; replaces an
   * existing entry for the key.
   */
  insert(fileNumber: number, offset: number, block: Block): void {
    const existing = this.files.get(fileNumber)?.get(offset);
    if (existing !== undefined) this.remove(existing);
    const buffer = block.data.buffer;
    if (!this.buffers.has(buffer) && buffer.byteLength > this.capacityBytes) return;
    // Looked up after remove(), which drops a file's map once it is empty.
    let perFile = this.files.get(fileNumber);
    if (perFile === undefined) {
      perFile = new Map();
      this.files.set(fileNumber, perFile);
    }
    const node: Node = { fileNumber, offset, block, newer: undefined, older: undefined };
    perFile.set(offset, node);
    this.pushNewest(node);
    this.charge(node);
    while (this.bytes > this.capacityBytes && this.oldest !== undefined) this.remove(this.oldest);
  }

  /** Drops every block of a file from both tiers (called when the table is deleted). */
  evictFile(fileNumber: number): void {
    this.shared?.evictFile(fileNumber);
    const perFile = this.files.get(fileNumber);
    if (perFile === undefined) return;
    for (const node of perFile.values()) {
      this.unlink(node);
      this.uncharge(node);
    }
    this.files.delete(fileNumber);
  }

  /** Empties both tiers (the database is closing). */
  clear(): void {
    this.shared?.clear();
    this.files.clear();
    this.buffers.clear();
    this.newest = this.oldest = undefined;
    this.bytes = 0;
    this.blocks = 0;
  }

  get stats(): BlockCacheStats {
    const s = this.shared?.stats;
    const sharedCapacityBytes = s?.capacityBytes ?? 0;
    const sharedBytes = s?.bytes ?? 0;
    const sharedBlocks = s?.blocks ?? 0;
    return {
      capacityBytes: this.capacityBytes + sharedCapacityBytes,
      bytes: this.bytes + sharedBytes,
      blocks: this.blocks + sharedBlocks,
      hits: this.localHits + this.sharedHits,
      misses: this.misses,
      localCapacityBytes: this.capacityBytes,
      localBytes: this.bytes,
      localBlocks: this.blocks,
      localHits: this.localHits,
      sharedCapacityBytes,
      sharedBytes,
      sharedBlocks,
      sharedHits: this.sharedHits,
      sharedInsertsSkipped: s?.insertsSkipped ?? 0,
    };
  }

  /** True with probability 1 / PROMOTE_ONE_IN (xorshift32). */
  private promoteNow(): boolean {
    let x = this.promotion;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.promotion = x;
    return (x & (PROMOTE_ONE_IN - 1)) === 0;
  }

  /** The tier-1 block of a key, made most recently used; uncounted. */
  private touch(fileNumber: number, offset: number): Block | undefined {
    const node = this.files.get(fileNumber)?.get(offset);
    if (node === undefined) return undefined;
    if (node !== this.newest) {
      this.unlink(node);
      this.pushNewest(node);
    }
    return node.block;
  }

  private remove(node: Node): void {
    this.unlink(node);
    const perFile = this.files.get(node.fileNumber)!;
    perFile.delete(node.offset);
    if (perFile.size === 0) this.files.delete(node.fileNumber);
    this.uncharge(node);
  }

  private charge(node: Node): void {
    const buffer = node.block.data.buffer;
    const sharing = this.buffers.get(buffer) ?? 0;
    if (sharing === 0) this.bytes += buffer.byteLength;
    this.buffers.set(buffer, sharing + 1);
    this.blocks++;
  }

  private uncharge(node: Node): void {
    const buffer = node.block.data.buffer;
    const sharing = this.buffers.get(buffer)!;
    if (sharing > 1) {
      this.buffers.set(buffer, sharing - 1);
    } else {
      this.buffers.delete(buffer);
      this.bytes -= buffer.byteLength;
    }
    this.blocks--;
  }

  private unlink(node: Node): void {
    if (node.newer) node.newer.older = node.older;
    else this.newest = node.older;
    if (node.older) node.older.newer = node.newer;
    else this.oldest = node.newer;
    node.newer = node.older = undefined;
  }

  private pushNewest(node: Node): void {
    node.older = this.newest;
    node.newer = undefined;
    if (this.newest) this.newest.newer = node;
    this.newest = node;
    if (this.oldest === undefined) this.oldest = node;
  }
}
