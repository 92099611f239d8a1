// Threads: all. One SharedBlockCache per process, created on any thread with create() and
// opened on every other thread with attach(buffer). Each thread keeps its own instance (it holds
// that thread's statistics stripe and its deferred operations); the buffer is the shared state.
//
// A bounded cache of decoded SST blocks keyed by (fileNumber, blockOffset), both integers below
// 2^53, stored as (low, high) uint32 pairs. Layout: section 5 of layout.ts.
//
//   * Index: open addressing with linear probing over a power-of-two number of slots. Deleted
//     slots become tombstones (or Empty when the next slot is Empty); when live + tombstones
//     would pass 3/4 of the slots the index is rebuilt in place. Live entries are capped at half
//     the slots, so a probe always ends at an Empty slot.
//   * Arena: a log of contiguous records (header + decoded bytes) between TAIL and HEAD. New
//     records go at HEAD; when they do not fit, the CLOCK hand (TAIL) frees space:
//       1. a Dead or Pad record is skipped;
//       2. a live record whose reference bit is set gets a second chance: the bit is cleared and
//          the record is moved to HEAD (padding the arena's end first if it does not fit there;
//          in place when HEAD has caught up with TAIL), at most SBC_SECOND_CHANCES_PER_INSERT
//          times per insert, so an insert does bounded work;
//       3. otherwise the record is evicted (its slot becomes a tombstone).
//     This is CLOCK (second-chance FIFO) with the hand at the log's tail; moving instead of
//     skipping keeps every record contiguous, so a read is one copy.
//   * Reference bits: one byte per slot, set by readers on a hit (a plain store; a lost or stray
//     bit only changes which block is evicted next), cleared by the hand.
//
// Concurrency protocol:
//   1. Writers (insert, evictFile, clear, and every arena or index change) hold the cache mutex
//      (lock.ts, header field Lock). The main thread only ever tryLocks: an insert that finds the
//      lock busy is dropped (a cache may forget), and evictFile/clear are queued on this
//      instance and run by the next lock holder on this thread or by lockAsync soon after.
//   2. Each index slot has a seqlock word (Seq). A writer changing a slot or moving its record
//      does Atomics.add(Seq, 1) (odd), its plain stores, then Atomics.add(Seq, 1) (even). A slot
//      is always killed (made a tombstone, its Seq bumped) before its record's arena bytes can be
//      reused, so a record's bytes only change while its slot's Seq is odd or after it moved on.
//   3. Readers take no lock: probe the index with plain loads, Atomics.load(Seq) = s (retry if
//      odd), recheck the key, copy the payload out (bounds-checked, since plain loads may see a
//      half-written slot), then Atomics.compareExchange(Seq, s, s). Only if that returns s is
//      the copy returned. The read-don't-modify-write (not a plain Atomics.load) makes the
//      writer's next Atomics.add read the reader's write, so the reader's copy happens-before
//      the writer's later stores in the JS memory model; a final Atomics.load would rely on
//      x86 ordering.
//   4. After SBC_READ_RETRIES_MAX failed validations the reader falls back to the lock (workers
//      wait up to lockWaitMs, the main thread only tryLocks) and otherwise reports a miss.
//   5. Misses may be false (a reader racing an index rebuild or a relocation may not find a key
//      that is there); hits are never wrong or torn.
// Invariants (checked by checkInvariants(), run by tests and under STEMEDB_PARANOID=1):
//   stats.bytes = sum of live payloads <= arena used bytes <= capacityBytes; live slots =
//   live records; each live slot's record header names the slot's key.
// REQUIRES: a (fileNumber, offset) pair always denotes the same bytes (SST files are immutable
// and file numbers are never reused), so a reader may return a block evicted just after it read it.

import { isMainThread } from 'node:worker_threads';
import { assert, paranoid } from '../common/assert.js';
import { StemeError } from '../common/errors.js';
import {
  SBC_ARENA_BYTES_PER_SLOT, SBC_CAPACITY_BYTES_MAX, SBC_CAPACITY_BYTES_MIN, SBC_FIXED_BYTES, SBC_HEADER_BYTES,
  SBC_LAYOUT_VERSION, SBC_LIVE_SLOTS_DIVISOR, SBC_MAGIC, SBC_PAD_HEADER_BYTES, SBC_PAYLOAD_FRACTION_DIVISOR,
  SBC_RECORD_ALIGN_BYTES, SBC_RECORD_HEADER_BYTES, SBC_SLOT_BYTES, SBC_SLOT_COUNT_MIN, SBC_STRIPE_BYTES,
  SBC_STRIPE_COUNT, SBC_STRIPES_BYTE, SbcHeader, SbcRecord, SbcRecordField, SbcSlot, SbcSlotState, SbcStripe,
} from './layout.js';
import { SharedMutex, LOCK_SPIN_TRIES } from './lock.js';

/** Live records the CLOCK hand may move to the head (second chances) during one insert. */
export const SBC_SECOND_CHANCES_PER_INSERT = 16;
/** Default copyPoolBytes: one retained block pins at most this much memory. */
export const SBC_COPY_POOL_BYTES = 64 * 1024;
/** Lock-free read attempts before falling back to the lock. */
export const SBC_READ_RETRIES_MAX = 4;
/** Deferred evictFile calls kept per instance; beyond this they collapse into one clear(). */
export const SBC_PENDING_OPS_MAX = 256;
/** How long a deferred operation's lockAsync waits before it gives up (and retries later). */
export const SBC_DEFERRED_LOCK_TIMEOUT_MS = 10_000;

const TWO_32 = 4294967296;

export interface SharedBlockCacheRegions {
  slotCount: number;
  arenaBytes: number;
  indexByte: number;
  refsByte: number;
  arenaByte: number;
  totalBytes: number;
}

function alignUp8(n: number): number {
  return Math.ceil(n / SBC_RECORD_ALIGN_BYTES) * SBC_RECORD_ALIGN_BYTES;
}

/** The byte regions of a cache of capacityBytes (section 5 of layout.ts), checked to tile the buffer. */
export function sharedBlockCacheRegions(capacityBytes: number): SharedBlockCacheRegions {
  assert(Number.isInteger(capacityBytes), 'cache capacity must be an integer number of bytes');
  assert(capacityBytes >= SBC_CAPACITY_BYTES_MIN && capacityBytes <= SBC_CAPACITY_BYTES_MAX,
    `shared block cache capacity must be between ${SBC_CAPACITY_BYTES_MIN} and ${SBC_CAPACITY_BYTES_MAX} bytes`);
  const arenaBytes = capacityBytes - (capacityBytes % SBC_RECORD_ALIGN_BYTES);
  let slotCount = SBC_SLOT_COUNT_MIN;
  while (slotCount * SBC_ARENA_BYTES_PER_SLOT < arenaBytes) slotCount *= 2;
  const indexByte = SBC_FIXED_BYTES;
  const refsByte = indexByte + slotCount * SBC_SLOT_BYTES;
  const arenaByte = refsByte + alignUp8(slotCount);
  const regions = { slotCount, arenaBytes, indexByte, refsByte, arenaByte, totalBytes: arenaByte + arenaBytes };
  checkRegions(regions);
  return regions;
}

/** Regions are in order, 8-byte aligned, do not overlap and add up to totalBytes. */
function checkRegions(r: SharedBlockCacheRegions): void {
  const spans: [string, number, number][] = [
    ['header', 0, SBC_HEADER_BYTES],
    ['stripes', SBC_STRIPES_BYTE, SBC_STRIPE_COUNT * SBC_STRIPE_BYTES],
    ['index', r.indexByte, r.slotCount * SBC_SLOT_BYTES],
    ['refs', r.refsByte, alignUp8(r.slotCount)],
    ['arena', r.arenaByte, r.arenaBytes],
  ];
  let end = 0;
  for (const [name, start, bytes] of spans) {
    assert(start === end, `shared block cache region ${name} starts at ${start}, expected ${end}`);
    assert(start % SBC_RECORD_ALIGN_BYTES === 0 && bytes >= 0, `shared block cache region ${name} misaligned`);
    end = start + bytes;
  }
  assert(end === r.totalBytes, 'shared block cache regions do not add up to the buffer size');
  assert((r.slotCount & (r.slotCount - 1)) === 0, 'slot count must be a power of two');
}

// Load-time checks of the fixed part of the layout.
assert(SbcHeader.Lock * 4 + 4 <= 64 && SbcHeader.Magic * 4 >= 64, 'the cache lock must be alone on its cache line');
assert(SbcHeader.IndexRebuilds < SbcHeader.Fields && SBC_HEADER_BYTES === SbcHeader.Fields * 4, 'cache header fields overflow');
assert(SbcStripe.ReadRetries < SbcStripe.Fields && SbcStripe.Fields * 4 === SBC_STRIPE_BYTES, 'stripe fields overflow');
assert(SbcSlot.PayloadBytes < SbcSlot.Fields && SbcSlot.Fields * 4 === SBC_SLOT_BYTES, 'slot fields overflow');
assert(SbcRecordField.OffsetHigh * 4 + 4 === SBC_RECORD_HEADER_BYTES && SbcRecordField.Kind * 4 + 4 === SBC_PAD_HEADER_BYTES, 'record header size');
assert(SBC_RECORD_HEADER_BYTES % SBC_RECORD_ALIGN_BYTES === 0 && SBC_PAD_HEADER_BYTES === SBC_RECORD_ALIGN_BYTES, 'records must stay 8-aligned');

export interface SharedBlockCacheOptions {
  /** 'seqlock' (default): lock-free reads. 'lock': every read takes the mutex (for comparison and debugging). */
  readMode?: 'seqlock' | 'lock';
  /** Worker threads: how long insert/evictFile/clear wait for the lock before giving up or deferring. */
  lockWaitMs?: number;
  /**
   * Size of the private ArrayBuffers get() carves copies from (blocks up to a quarter of it);
   * 0 allocates every copy separately. A copy kept alive pins its whole pool buffer.
   */
  copyPoolBytes?: number;
}

export interface SharedBlockCacheStats {
  capacityBytes: number;
  /** Payload bytes of cached blocks; always <= capacityBytes. */
  bytes: number;
  blocks: number;
  /** Summed over all threads. */
  hits: number;
  misses: number;
  slotCount: number;
  tombstones: number;
  /** Arena bytes between the CLOCK hand and the head, including headers, pads and dead records. */
  arenaUsedBytes: number;
  evictions: number;
  secondChances: number;
  indexRebuilds: number;
  insertsSkipped: number;
  readRetries: number;
}

type PendingOp = number | 'clear';

export class SharedBlockCache {
  readonly buffer: SharedArrayBuffer;
  /** The arena size: an upper bound on stats.bytes. */
  readonly capacityBytes: number;
  readonly slotCount: number;
  private readonly words: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly mutex: SharedMutex;
  private readonly mask: number;
  private readonly indexWord: number;
  private readonly refsByte: number;
  private readonly arenaByte: number;
  private readonly arenaWord: number;
  private readonly payloadBytesMax: number;
  private readonly liveMax: number;
  private readonly occupiedMax: number;
  private readonly stripeWord: number;
  private readonly lockReads: boolean;
  private readonly lockWaitMs: number;
  private readonly poolBytes: number;
  private pool: ArrayBuffer | undefined;
  private poolOffset = 0;
  private readonly pending: PendingOp[] = [];
  private draining: Promise<void> | undefined;

  private constructor(buffer: SharedArrayBuffer, regions: SharedBlockCacheRegions, options: SharedBlockCacheOptions) {
    this.buffer = buffer;
    this.words = new Int32Array(buffer);
    this.bytes = new Uint8Array(buffer);
    this.mutex = new SharedMutex(this.words, SbcHeader.Lock);
    this.capacityBytes = regions.arenaBytes;
    this.slotCount = regions.slotCount;
    this.mask = regions.slotCount - 1;
    this.indexWord = regions.indexByte / 4;
    this.refsByte = regions.refsByte;
    this.arenaByte = regions.arenaByte;
    this.arenaWord = regions.arenaByte / 4;
    this.payloadBytesMax = Math.floor(regions.arenaBytes / SBC_PAYLOAD_FRACTION_DIVISOR) - SBC_RECORD_HEADER_BYTES;
    this.liveMax = regions.slotCount / SBC_LIVE_SLOTS_DIVISOR;
    this.occupiedMax = (regions.slotCount * 3) / 4;
    this.lockReads = options.readMode === 'lock';
    this.lockWaitMs = options.lockWaitMs ?? 1000;
    this.poolBytes = options.copyPoolBytes ?? SBC_COPY_POOL_BYTES;
    assert(Number.isInteger(this.poolBytes) && this.poolBytes >= 0 && this.poolBytes % SBC_RECORD_ALIGN_BYTES === 0, 'copyPoolBytes must be a multiple of 8');
    // Atomics.add: threads attach concurrently; each takes its own statistics stripe.
    const stripe = Atomics.add(this.words, SbcHeader.StripeNext, 1) % SBC_STRIPE_COUNT;
    this.stripeWord = (SBC_STRIPES_BYTE + stripe * SBC_STRIPE_BYTES) / 4;
  }

  /** Any thread: a new, empty cache of capacityBytes (rounded down to 8). Pass `.buffer` to other threads. */
  static create(capacityBytes: number, options: SharedBlockCacheOptions = {}): SharedBlockCache {
    const regions = sharedBlockCacheRegions(capacityBytes);
    const buffer = new SharedArrayBuffer(regions.totalBytes);
    const words = new Int32Array(buffer);
    words[SbcHeader.Magic] = SBC_MAGIC;
    words[SbcHeader.Version] = SBC_LAYOUT_VERSION;
    words[SbcHeader.SlotCount] = regions.slotCount;
    words[SbcHeader.ArenaBytes] = regions.arenaBytes;
    // The buffer reaches other threads by postMessage, which orders these plain stores before it.
    return new SharedBlockCache(buffer, regions, options);
  }

  /** Any thread: opens a cache made by create() (usually on another thread). */
  static attach(buffer: SharedArrayBuffer, options: SharedBlockCacheOptions = {}): SharedBlockCache {
    assert(buffer instanceof SharedArrayBuffer && buffer.byteLength >= SBC_FIXED_BYTES, 'not a shared block cache buffer');
    const words = new Int32Array(buffer, 0, SbcHeader.Fields);
    assert(words[SbcHeader.Magic] === SBC_MAGIC, 'not a shared block cache buffer (bad magic)');
    assert(words[SbcHeader.Version] === SBC_LAYOUT_VERSION, 'shared block cache layout version mismatch');
    const regions = sharedBlockCacheRegions(words[SbcHeader.ArenaBytes]);
    assert(regions.slotCount === words[SbcHeader.SlotCount] && regions.totalBytes === buffer.byteLength, 'shared block cache size mismatch');
    return new SharedBlockCache(buffer, regions, options);
  }

  /**
   * Any thread, lock-free: a copy of the cached bytes of (fileNumber, offset), or undefined.
   * The copy is the caller's own (a view of a plain, thread-private ArrayBuffer, possibly shared
   * with other copies: see copyPoolBytes), so later evictions cannot change it.
   * With scratch (8-aligned, and at least as long as the block), the copy goes into
   * scratch.subarray(0, length) instead and allocates nothing: for a caller that is done with
   * the bytes before it reuses scratch.
   */
  get(fileNumber: number, offset: number, scratch?: Uint8Array): Uint8Array | undefined {
    const fileLow = fileNumber | 0;
    const fileHigh = (fileNumber / TWO_32) | 0;
    const offsetLow = offset | 0;
    const offsetHigh = (offset / TWO_32) | 0;
    if (!this.lockReads) {
      const w = this.words;
      for (let attempt = 0; attempt < SBC_READ_RETRIES_MAX; attempt++) {
        const slot = this.probe(fileLow, fileHigh, offsetLow, offsetHigh);
        if (slot < 0) {
          this.count(SbcStripe.MissesLow);
          return undefined;
        }
        const base = this.indexWord + slot * SbcSlot.Fields;
        // Atomics.load: acquire the slot's fields and record bytes published by the writer's even Seq.
        const seq = Atomics.load(w, base + SbcSlot.Seq);
        if ((seq & 1) === 0 && w[base + SbcSlot.State] === SbcSlotState.Live &&
            w[base + SbcSlot.FileLow] === fileLow && w[base + SbcSlot.FileHigh] === fileHigh &&
            w[base + SbcSlot.OffsetLow] === offsetLow && w[base + SbcSlot.OffsetHigh] === offsetHigh) {
          const payloadBytes = w[base + SbcSlot.PayloadBytes];
          const pos = w[base + SbcSlot.RecordPos];
          // Plain loads of a changing slot may be stale: never copy outside the arena.
          if (pos >= 0 && payloadBytes >= 0 && pos + SBC_RECORD_HEADER_BYTES + payloadBytes <= this.capacityBytes) {
            const start = this.arenaByte + pos + SBC_RECORD_HEADER_BYTES;
            const poolOffset = this.poolOffset;
            const copy = this.copyOut(start, payloadBytes, scratch);
            // Atomics.compareExchange (read-don't-modify-write): validates that no writer touched
            // the slot since `seq` and orders the copy before any later writer's stores (step 3).
            if (Atomics.compareExchange(w, base + SbcSlot.Seq, seq, seq) === seq) {
              // Plain store: a reference bit is a hint; a racing writer may clear or lose it.
              if (this.bytes[this.refsByte + slot] === 0) this.bytes[this.refsByte + slot] = 1;
              this.count(SbcStripe.HitsLow);
              return copy;
            }
            this.poolOffset = poolOffset; // the copy is garbage: give its pool space back
          }
        }
        this.countNarrow(SbcStripe.ReadRetries);
      }
      // Step 4: the entry kept changing under us; read it under the lock (or miss).
    }
    return this.getLocked(fileLow, fileHigh, offsetLow, offsetHigh, scratch);
  }

  /**
   * Any thread: caches a copy of bytes. Returns false when the block was not cached: it exceeds
   * capacityBytes / SBC_PAYLOAD_FRACTION_DIVISOR, or the lock was busy (main thread) or did not
   * come within lockWaitMs (worker). Replaces an existing entry for the key.
   */
  insert(fileNumber: number, offset: number, bytes: Uint8Array): boolean {
    checkKey(fileNumber, offset);
    if (bytes.byteLength > this.payloadBytesMax || !this.acquire()) {
      this.countNarrow(SbcStripe.InsertsSkipped);
      return false;
    }
    try {
      this.runPending();
      this.insertLocked(fileNumber | 0, (fileNumber / TWO_32) | 0, offset | 0, (offset / TWO_32) | 0, bytes);
      if (paranoid) this.checkInvariantsLocked();
    } finally {
      this.mutex.unlock();
    }
    return true;
  }

  /**
   * Any thread: drops every block of fileNumber. Done now when the lock is free; otherwise
   * (main thread, or a worker timing out) queued on this instance and done by lockAsync
   * shortly, or by this instance's next locked operation. settled() resolves when done.
   */
  evictFile(fileNumber: number): void {
    checkKey(fileNumber, 0);
    this.run(fileNumber);
  }

  /** Any thread: drops every block; done now or deferred like evictFile. */
  clear(): void {
    this.run('clear');
  }

  /** Resolves when this instance's deferred evictFile/clear calls have run. */
  async settled(): Promise<void> {
    while (this.draining !== undefined) await this.draining;
  }

  get stats(): SharedBlockCacheStats {
    const w = this.words;
    let hits = 0;
    let misses = 0;
    let insertsSkipped = 0;
    let readRetries = 0;
    for (let s = 0; s < SBC_STRIPE_COUNT; s++) {
      const at = (SBC_STRIPES_BYTE + s * SBC_STRIPE_BYTES) / 4;
      // Atomics.load: other threads add to their stripes; a torn (low, high) pair is acceptable for statistics.
      hits += (Atomics.load(w, at + SbcStripe.HitsHigh) >>> 0) * TWO_32 + (Atomics.load(w, at + SbcStripe.HitsLow) >>> 0);
      misses += (Atomics.load(w, at + SbcStripe.MissesHigh) >>> 0) * TWO_32 + (Atomics.load(w, at + SbcStripe.MissesLow) >>> 0);
      insertsSkipped += Atomics.load(w, at + SbcStripe.InsertsSkipped) >>> 0;
      readRetries += Atomics.load(w, at + SbcStripe.ReadRetries) >>> 0;
    }
    // Atomics.load: header fields are written under the lock by other threads.
    const field = (f: SbcHeader): number => Atomics.load(w, f) >>> 0;
    return {
      capacityBytes: this.capacityBytes, bytes: field(SbcHeader.LiveBytes), blocks: field(SbcHeader.LiveBlocks),
      hits, misses, slotCount: this.slotCount, tombstones: field(SbcHeader.Tombstones),
      arenaUsedBytes: field(SbcHeader.ArenaUsedBytes), evictions: field(SbcHeader.Evictions),
      secondChances: field(SbcHeader.SecondChances), indexRebuilds: field(SbcHeader.IndexRebuilds), insertsSkipped, readRetries,
    };
  }

  /** Tests: takes the lock (waiting up to timeoutMs, without blocking the event loop) and checks every invariant. */
  async checkInvariants(timeoutMs = 10_000): Promise<void> {
    await this.mutex.lockAsync(timeoutMs);
    try {
      this.checkInvariantsLocked();
    } finally {
      this.mutex.unlock();
    }
  }

  // ---- locking policy ------------------------------------------------------------------------

  /** Takes the mutex for a write: the main thread never waits; a worker waits up to lockWaitMs. */
  private acquire(): boolean {
    for (let i = 0; i <= LOCK_SPIN_TRIES; i++) if (this.mutex.tryLock()) return true;
    if (isMainThread) return false;
    try {
      this.mutex.lockSync(this.lockWaitMs);
      return true;
    } catch (e) {
      if (e instanceof StemeError && e.code === 'LEVEL_TIMEOUT') return false;
      throw e;
    }
  }

  private run(op: PendingOp): void {
    if (this.acquire()) {
      try {
        this.runPending();
        this.applyLocked(op);
      } finally {
        this.mutex.unlock();
      }
      return;
    }
    if (this.pending.length >= SBC_PENDING_OPS_MAX) {
      // Bounded queue: clearing everything is a superset of any evictions queued.
      this.pending.length = 0;
      op = 'clear';
    }
    this.pending.push(op);
    if (this.draining === undefined) this.draining = this.drain();
  }

  private async drain(): Promise<void> {
    try {
      await this.mutex.lockAsync(SBC_DEFERRED_LOCK_TIMEOUT_MS);
    } catch {
      // The lock stayed busy for a long time; the ops stay queued for this instance's next locked call.
      this.draining = undefined;
      return;
    }
    try {
      this.runPending();
    } finally {
      this.mutex.unlock();
      this.draining = undefined;
    }
  }

  private runPending(): void {
    while (this.pending.length > 0) this.applyLocked(this.pending.shift()!);
  }

  private applyLocked(op: PendingOp): void {
    if (op === 'clear') this.clearLocked();
    else this.evictFileLocked(op | 0, (op / TWO_32) | 0);
  }

  private getLocked(fileLow: number, fileHigh: number, offsetLow: number, offsetHigh: number, scratch: Uint8Array | undefined): Uint8Array | undefined {
    if (!this.acquire()) {
      this.count(SbcStripe.MissesLow);
      return undefined;
    }
    try {
      const slot = this.probe(fileLow, fileHigh, offsetLow, offsetHigh);
      if (slot < 0) {
        this.count(SbcStripe.MissesLow);
        return undefined;
      }
      const base = this.indexWord + slot * SbcSlot.Fields;
      const start = this.arenaByte + this.words[base + SbcSlot.RecordPos] + SBC_RECORD_HEADER_BYTES;
      this.bytes[this.refsByte + slot] = 1;
      this.count(SbcStripe.HitsLow);
      return this.copyOut(start, this.words[base + SbcSlot.PayloadBytes], scratch);
    } finally {
      this.mutex.unlock();
    }
  }

  /**
   * Copies arena bytes into memory this thread owns. Small copies are carved from a private
   * ArrayBuffer pool (like Node's Buffer pool): allocating a fresh ArrayBuffer per block costs
   * more than the copy itself. Sources and pool offsets are 8-aligned, which V8's copy out of a
   * SharedArrayBuffer needs to run at memcpy speed (measured 5x slower unaligned). With scratch
   * (see get), no allocation at all. Allocate-then-set, not new Uint8Array(source), which copies
   * element by element out of shared memory (measured 2-3x slower).
   */
  private copyOut(start: number, length: number, scratch: Uint8Array | undefined): Uint8Array {
    const source = this.bytes.subarray(start, start + length);
    if (scratch !== undefined && length <= scratch.length) {
      const into = scratch.subarray(0, length);
      into.set(source);
      return into;
    }
    if (length > this.poolBytes >>> 2) {
      const own = new Uint8Array(length);
      own.set(source);
      return own;
    }
    if (this.pool === undefined || this.poolOffset + length > this.poolBytes) {
      this.pool = new ArrayBuffer(this.poolBytes);
      this.poolOffset = 0;
    }
    const out = new Uint8Array(this.pool, this.poolOffset, length);
    out.set(source);
    this.poolOffset += alignUp8(length);
    return out;
  }

  // ---- statistics ----------------------------------------------------------------------------

  /** Adds 1 to a (low, high) counter pair of this instance's stripe. */
  private count(lowField: SbcStripe): void {
    // Atomics.add: more than SBC_STRIPE_COUNT instances share stripes; the old value signals a carry.
    if (Atomics.add(this.words, this.stripeWord + lowField, 1) === -1) Atomics.add(this.words, this.stripeWord + lowField + 1, 1);
  }

  private countNarrow(field: SbcStripe): void {
    // Atomics.add: stripes may be shared by several threads.
    Atomics.add(this.words, this.stripeWord + field, 1);
  }

  // ---- index (probing is lock-free; every change holds the lock) -----------------------------

  /** The slot holding a live (key), or -1. Plain loads: callers validate with Seq or hold the lock. */
  private probe(fileLow: number, fileHigh: number, offsetLow: number, offsetHigh: number): number {
    const w = this.words;
    let i = hashKey(fileLow, fileHigh, offsetLow, offsetHigh) & this.mask;
    for (let n = 0; n < this.slotCount; n++) {
      const base = this.indexWord + i * SbcSlot.Fields;
      const state = w[base + SbcSlot.State];
      if (state === SbcSlotState.Empty) return -1;
      if (state === SbcSlotState.Live && w[base + SbcSlot.FileLow] === fileLow && w[base + SbcSlot.OffsetLow] === offsetLow &&
          w[base + SbcSlot.FileHigh] === fileHigh && w[base + SbcSlot.OffsetHigh] === offsetHigh) return i;
      i = (i + 1) & this.mask;
    }
    return -1;
  }

  private seqBegin(base: number): void {
    // Atomics.add (a read-modify-write, step 3): odd Seq makes readers retry; reading the
    // readers' compareExchange writes orders their copies before the stores that follow.
    Atomics.add(this.words, base + SbcSlot.Seq, 1);
  }

  private seqEnd(base: number): void {
    // Atomics.add: even Seq publishes (releases) the slot fields and record bytes stored above.
    Atomics.add(this.words, base + SbcSlot.Seq, 1);
  }

  private writeSlot(slot: number, fileLow: number, fileHigh: number, offsetLow: number, offsetHigh: number, pos: number, payloadBytes: number): void {
    const w = this.words;
    const base = this.indexWord + slot * SbcSlot.Fields;
    this.seqBegin(base);
    w[base + SbcSlot.FileLow] = fileLow;
    w[base + SbcSlot.FileHigh] = fileHigh;
    w[base + SbcSlot.OffsetLow] = offsetLow;
    w[base + SbcSlot.OffsetHigh] = offsetHigh;
    w[base + SbcSlot.RecordPos] = pos;
    w[base + SbcSlot.PayloadBytes] = payloadBytes;
    w[base + SbcSlot.State] = SbcSlotState.Live;
    this.seqEnd(base);
  }

  /** First free (Empty or Tombstone) slot on key's probe path. REQUIRES: the key is absent. */
  private freeSlot(fileLow: number, fileHigh: number, offsetLow: number, offsetHigh: number): number {
    let i = hashKey(fileLow, fileHigh, offsetLow, offsetHigh) & this.mask;
    for (;;) {
      const state = this.words[this.indexWord + i * SbcSlot.Fields + SbcSlot.State];
      if (state === SbcSlotState.Empty) return i;
      if (state === SbcSlotState.Tombstone) {
        this.words[SbcHeader.Tombstones]--;
        return i;
      }
      i = (i + 1) & this.mask;
    }
  }

  /** Removes a live slot's entry and marks its record Dead. Its arena bytes may be reused afterwards. */
  private killSlot(slot: number): void {
    const w = this.words;
    const base = this.indexWord + slot * SbcSlot.Fields;
    const pos = w[base + SbcSlot.RecordPos];
    const nextState = w[this.indexWord + ((slot + 1) & this.mask) * SbcSlot.Fields + SbcSlot.State];
    this.seqBegin(base);
    // A slot followed by an Empty one ends every probe path through it: it can be Empty too.
    w[base + SbcSlot.State] = nextState === SbcSlotState.Empty ? SbcSlotState.Empty : SbcSlotState.Tombstone;
    this.seqEnd(base);
    this.bytes[this.refsByte + slot] = 0;
    if (nextState === SbcSlotState.Empty) {
      // And so can the tombstones just before it.
      let j = (slot - 1) & this.mask;
      for (let b = this.indexWord + j * SbcSlot.Fields; w[b + SbcSlot.State] === SbcSlotState.Tombstone; b = this.indexWord + j * SbcSlot.Fields) {
        this.seqBegin(b);
        w[b + SbcSlot.State] = SbcSlotState.Empty;
        this.seqEnd(b);
        w[SbcHeader.Tombstones]--;
        j = (j - 1) & this.mask;
      }
    } else {
      w[SbcHeader.Tombstones]++;
    }
    w[this.arenaWord + pos / 4 + SbcRecordField.Kind] = SbcRecord.Dead;
    w[SbcHeader.LiveBytes] -= w[base + SbcSlot.PayloadBytes];
    w[SbcHeader.LiveBlocks]--;
  }

  /** Re-inserts every live entry into an index without tombstones. Readers may miss meanwhile. */
  private rebuildIndex(): void {
    const w = this.words;
    const live: number[] = [];
    for (let slot = 0; slot < this.slotCount; slot++) {
      const base = this.indexWord + slot * SbcSlot.Fields;
      const state = w[base + SbcSlot.State];
      if (state === SbcSlotState.Empty) continue;
      if (state === SbcSlotState.Live) {
        live.push(w[base + SbcSlot.FileLow], w[base + SbcSlot.FileHigh], w[base + SbcSlot.OffsetLow], w[base + SbcSlot.OffsetHigh],
          w[base + SbcSlot.RecordPos], w[base + SbcSlot.PayloadBytes], this.bytes[this.refsByte + slot]);
      }
      this.seqBegin(base);
      w[base + SbcSlot.State] = SbcSlotState.Empty;
      this.seqEnd(base);
      this.bytes[this.refsByte + slot] = 0;
    }
    w[SbcHeader.Tombstones] = 0;
    for (let k = 0; k < live.length; k += 7) {
      const slot = this.freeSlot(live[k], live[k + 1], live[k + 2], live[k + 3]);
      this.writeSlot(slot, live[k], live[k + 1], live[k + 2], live[k + 3], live[k + 4], live[k + 5]);
      this.bytes[this.refsByte + slot] = live[k + 6];
    }
    w[SbcHeader.IndexRebuilds]++;
  }

  // ---- arena (all under the lock) ------------------------------------------------------------

  private insertLocked(fileLow: number, fileHigh: number, offsetLow: number, offsetHigh: number, payload: Uint8Array): void {
    const w = this.words;
    const existing = this.probe(fileLow, fileHigh, offsetLow, offsetHigh);
    if (existing >= 0) this.killSlot(existing);
    while (w[SbcHeader.LiveBlocks] >= this.liveMax) this.advanceHand(0);
    const recordBytes = alignUp8(SBC_RECORD_HEADER_BYTES + payload.byteLength);
    let secondChances = SBC_SECOND_CHANCES_PER_INSERT;
    let pos: number;
    while ((pos = this.place(recordBytes)) < 0) secondChances = this.advanceHand(secondChances);
    const at = this.arenaWord + pos / 4;
    w[at + SbcRecordField.RecordBytes] = recordBytes;
    w[at + SbcRecordField.Kind] = SbcRecord.Live;
    w[at + SbcRecordField.FileLow] = fileLow;
    w[at + SbcRecordField.FileHigh] = fileHigh;
    w[at + SbcRecordField.OffsetLow] = offsetLow;
    w[at + SbcRecordField.OffsetHigh] = offsetHigh;
    this.bytes.set(payload, this.arenaByte + pos + SBC_RECORD_HEADER_BYTES);
    w[SbcHeader.ArenaHead] = (pos + recordBytes) % this.capacityBytes;
    w[SbcHeader.ArenaUsedBytes] += recordBytes;
    if (w[SbcHeader.LiveBlocks] + w[SbcHeader.Tombstones] + 1 > this.occupiedMax) this.rebuildIndex();
    const slot = this.freeSlot(fileLow, fileHigh, offsetLow, offsetHigh);
    // The slot's seqEnd publishes the record bytes stored above.
    this.writeSlot(slot, fileLow, fileHigh, offsetLow, offsetHigh, pos, payload.byteLength);
    this.bytes[this.refsByte + slot] = 0;
    w[SbcHeader.LiveBytes] += payload.byteLength;
    w[SbcHeader.LiveBlocks]++;
  }

  /** Contiguous free bytes at the head without wrapping. */
  private roomAtHead(): number {
    const w = this.words;
    const head = w[SbcHeader.ArenaHead];
    const tail = w[SbcHeader.ArenaTail];
    if (w[SbcHeader.ArenaUsedBytes] === 0) return this.capacityBytes - head;
    return head > tail ? this.capacityBytes - head : tail - head;
  }

  /** Where a record of recordBytes goes now (padding the arena's end if that makes it fit), or -1. */
  private place(recordBytes: number): number {
    const w = this.words;
    if (w[SbcHeader.ArenaUsedBytes] === 0) {
      w[SbcHeader.ArenaHead] = w[SbcHeader.ArenaTail] = 0;
      return 0;
    }
    const head = w[SbcHeader.ArenaHead];
    const tail = w[SbcHeader.ArenaTail];
    if (this.roomAtHead() >= recordBytes) return head;
    if (head > tail && tail >= recordBytes) return this.padEnd(head);
    return -1;
  }

  /** Fills [head, end) with a Pad record and moves the head to 0 (before the hand). Returns 0. */
  private padEnd(head: number): number {
    const w = this.words;
    const padBytes = this.capacityBytes - head;
    const at = this.arenaWord + head / 4;
    w[at + SbcRecordField.RecordBytes] = padBytes;
    w[at + SbcRecordField.Kind] = SbcRecord.Pad;
    w[SbcHeader.ArenaUsedBytes] += padBytes;
    w[SbcHeader.ArenaHead] = 0;
    return 0;
  }

  /**
   * Moves the CLOCK hand past one record: skips a dead or pad record, moves a referenced live
   * record to the head while secondChances last and it fits, else evicts it. Returns the
   * second chances left. REQUIRES: the arena is not empty.
   */
  private advanceHand(secondChances: number): number {
    const w = this.words;
    assert(w[SbcHeader.ArenaUsedBytes] > 0, 'CLOCK hand advanced over an empty arena');
    const tail = w[SbcHeader.ArenaTail];
    const at = this.arenaWord + tail / 4;
    const recordBytes = w[at + SbcRecordField.RecordBytes];
    const kind = w[at + SbcRecordField.Kind];
    assert(recordBytes >= SBC_PAD_HEADER_BYTES && tail + recordBytes <= this.capacityBytes, 'bad arena record at the CLOCK hand');
    if (kind === SbcRecord.Live) {
      const slot = this.probe(w[at + SbcRecordField.FileLow], w[at + SbcRecordField.FileHigh], w[at + SbcRecordField.OffsetLow], w[at + SbcRecordField.OffsetHigh]);
      const base = this.indexWord + slot * SbcSlot.Fields;
      assert(slot >= 0 && w[base + SbcSlot.RecordPos] === tail, 'live arena record without its index slot');
      if (secondChances > 0 && this.bytes[this.refsByte + slot] !== 0) {
        let head = w[SbcHeader.ArenaHead];
        // Not enough room before the end: pad it and wrap, so the record can go to 0.
        if (head > tail && this.capacityBytes - head < recordBytes) head = this.padEnd(head);
        // Now either head > tail with room before the end (no overlap), or head <= tail and the
        // record shifts down by tail - head (copyWithin is a memmove), or head === tail and the
        // record already sits at the head: it stays, and the hand and head both pass it.
        this.bytes[this.refsByte + slot] = 0;
        if (head !== tail) {
          this.seqBegin(base);
          this.bytes.copyWithin(this.arenaByte + head, this.arenaByte + tail, this.arenaByte + tail + recordBytes);
          w[base + SbcSlot.RecordPos] = head;
          this.seqEnd(base);
        }
        w[SbcHeader.ArenaHead] = (head + recordBytes) % this.capacityBytes;
        w[SbcHeader.ArenaTail] = (tail + recordBytes) % this.capacityBytes;
        w[SbcHeader.SecondChances]++;
        return secondChances - 1;
      }
      this.killSlot(slot);
      w[SbcHeader.Evictions]++;
    }
    w[SbcHeader.ArenaTail] = (tail + recordBytes) % this.capacityBytes;
    w[SbcHeader.ArenaUsedBytes] -= recordBytes;
    if (w[SbcHeader.ArenaUsedBytes] === 0) w[SbcHeader.ArenaHead] = w[SbcHeader.ArenaTail] = 0;
    return secondChances;
  }

  private evictFileLocked(fileLow: number, fileHigh: number): void {
    const w = this.words;
    for (let slot = 0; slot < this.slotCount; slot++) {
      const base = this.indexWord + slot * SbcSlot.Fields;
      if (w[base + SbcSlot.State] === SbcSlotState.Live && w[base + SbcSlot.FileLow] === fileLow && w[base + SbcSlot.FileHigh] === fileHigh) {
        this.killSlot(slot);
      }
    }
  }

  private clearLocked(): void {
    const w = this.words;
    // Slots first: once every Seq moved on, no reader can validate a copy of the old bytes.
    for (let slot = 0; slot < this.slotCount; slot++) {
      const base = this.indexWord + slot * SbcSlot.Fields;
      if (w[base + SbcSlot.State] === SbcSlotState.Empty) continue;
      this.seqBegin(base);
      w[base + SbcSlot.State] = SbcSlotState.Empty;
      this.seqEnd(base);
      this.bytes[this.refsByte + slot] = 0;
    }
    w[SbcHeader.ArenaHead] = w[SbcHeader.ArenaTail] = w[SbcHeader.ArenaUsedBytes] = 0;
    w[SbcHeader.LiveBytes] = w[SbcHeader.LiveBlocks] = w[SbcHeader.Tombstones] = 0;
  }

  private checkInvariantsLocked(): void {
    const w = this.words;
    let live = 0;
    let liveBytes = 0;
    let tombstones = 0;
    for (let slot = 0; slot < this.slotCount; slot++) {
      const base = this.indexWord + slot * SbcSlot.Fields;
      assert((w[base + SbcSlot.Seq] & 1) === 0, 'slot Seq odd outside a write');
      const state = w[base + SbcSlot.State];
      if (state === SbcSlotState.Tombstone) tombstones++;
      if (state !== SbcSlotState.Live) continue;
      live++;
      liveBytes += w[base + SbcSlot.PayloadBytes];
      const at = this.arenaWord + w[base + SbcSlot.RecordPos] / 4;
      assert(w[at + SbcRecordField.Kind] === SbcRecord.Live && w[at + SbcRecordField.FileLow] === w[base + SbcSlot.FileLow] &&
        w[at + SbcRecordField.OffsetLow] === w[base + SbcSlot.OffsetLow] && w[at + SbcRecordField.FileHigh] === w[base + SbcSlot.FileHigh] &&
        w[at + SbcRecordField.OffsetHigh] === w[base + SbcSlot.OffsetHigh], 'slot and arena record disagree');
      assert(w[at + SbcRecordField.RecordBytes] === alignUp8(SBC_RECORD_HEADER_BYTES + w[base + SbcSlot.PayloadBytes]), 'record size mismatch');
      assert(this.probe(w[base + SbcSlot.FileLow], w[base + SbcSlot.FileHigh], w[base + SbcSlot.OffsetLow], w[base + SbcSlot.OffsetHigh]) === slot, 'live slot not reachable by probing');
    }
    // Walk the log from the hand to the head: record sizes must add up to the used bytes.
    let used = 0;
    let liveRecords = 0;
    let pos = w[SbcHeader.ArenaTail];
    while (used < w[SbcHeader.ArenaUsedBytes]) {
      const at = this.arenaWord + pos / 4;
      const recordBytes = w[at + SbcRecordField.RecordBytes];
      assert(recordBytes >= SBC_PAD_HEADER_BYTES && pos + recordBytes <= this.capacityBytes, 'bad record in the arena log');
      if (w[at + SbcRecordField.Kind] === SbcRecord.Live) liveRecords++;
      used += recordBytes;
      pos = (pos + recordBytes) % this.capacityBytes;
    }
    assert(used === w[SbcHeader.ArenaUsedBytes] && pos === w[SbcHeader.ArenaHead], 'arena log does not end at the head');
    assert(live === w[SbcHeader.LiveBlocks] && live === liveRecords && liveBytes === w[SbcHeader.LiveBytes], 'live counts disagree');
    assert(tombstones === w[SbcHeader.Tombstones], 'tombstone count disagrees');
    assert(liveBytes <= used && used <= this.capacityBytes, 'cache over capacity');
  }
}

function checkKey(fileNumber: number, offset: number): void {
  if (!Number.isSafeInteger(fileNumber) || fileNumber < 0 || !Number.isSafeInteger(offset) || offset < 0) {
    throw new TypeError('fileNumber and offset must be non-negative safe integers');
  }
}

/** Mixes the four uint32 halves of (fileNumber, offset) (murmur3-style rounds and finalizer). */
function hashKey(fileLow: number, fileHigh: number, offsetLow: number, offsetHigh: number): number {
  let h = Math.imul(fileLow ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ fileHigh, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ offsetLow, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ offsetHigh, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
