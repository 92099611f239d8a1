// Threads: main thread and workers. A Block is immutable once built and may be shared by any
// number of iterators in one thread (and, through the block cache, by several tables' readers).
// A BlockIterator is single-owner.
//
// Reads the data/index block contents drawn in format.ts. Every offset is validated before it
// is used: the restart array when the Block is constructed, each entry as it is decoded. A bad
// block throws CorruptionError(file, blockOffset, ...) instead of reading out of bounds.
//
// seek(target):
//   1. binary-search the restart points (entries with shared = 0, so their keys need no
//      prefix) for the last one whose key < target;
//   2. decode forward from there to the first key >= target.
// prev(): back up to the restart point before the current entry and decode forward to the
// entry just before it (blocks keep no back links; restarts bound the rescan to 16 entries).

import { CorruptionError } from '../common/errors.js';
import type { InternalIterator } from '../common/iterator.js';
import { TRAILER_BYTES } from '../common/keys.js';
import { RESTART_BYTES } from './format.js';

/** Reads a u32 LE without a DataView (hot path). */
function u32(buf: Uint8Array, pos: number): number {
  return (buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16) | (buf[pos + 3] << 24)) >>> 0;
}

const compareRange = Buffer.prototype.compare;

/** Compares a[aStart, aEnd) with b[bStart, bEnd) bytewise. */
export function compareBytesRange(a: Uint8Array, aStart: number, aEnd: number, b: Uint8Array, bStart: number, bEnd: number): number {
  const aLen = aEnd - aStart;
  const bLen = bEnd - bStart;
  if (aLen > 32 && bLen > 32) return compareRange.call(a, b, bStart, bEnd, aStart, aEnd);
  const n = aLen < bLen ? aLen : bLen;
  for (let i = 0; i < n; i++) {
    const d = a[aStart + i] - b[bStart + i];
    if (d !== 0) return d;
  }
  return aLen - bLen;
}

/**
 * Internal-key order (keys.ts) over ranges, without allocating: user key ascending, then the
 * 8-byte trailer (sequence * 256 + kind) descending. REQUIRES: both lengths >= TRAILER_BYTES.
 */
export function compareInternalRange(a: Uint8Array, aStart: number, aLen: number, b: Uint8Array, bStart: number, bLen: number): number {
  const aUserEnd = aStart + aLen - TRAILER_BYTES;
  const bUserEnd = bStart + bLen - TRAILER_BYTES;
  const c = compareBytesRange(a, aStart, aUserEnd, b, bStart, bUserEnd);
  if (c !== 0) return c;
  const aHigh = u32(a, aUserEnd + 4);
  const bHigh = u32(b, bUserEnd + 4);
  if (aHigh !== bHigh) return aHigh > bHigh ? -1 : 1;
  const aLow = u32(a, aUserEnd);
  const bLow = u32(b, bUserEnd);
  return aLow === bLow ? 0 : aLow > bLow ? -1 : 1;
}

export class Block {
  /** Entries occupy data[0, entriesEnd); the restart array follows. */
  readonly entriesEnd: number;
  readonly restartCount: number;

  /** Validates the restart array; data must be the verified, decoded block contents. */
  constructor(readonly file: string, readonly blockOffset: number, readonly data: Uint8Array) {
    const n = data.length;
    if (n < RESTART_BYTES * 2) throw new CorruptionError(file, blockOffset, `block of ${n} bytes cannot hold its restart array`);
    const count = u32(data, n - RESTART_BYTES);
    if (count < 1 || count > (n - RESTART_BYTES) / RESTART_BYTES) throw new CorruptionError(file, blockOffset, `bad restart count ${count}`);
    const entriesEnd = n - (count + 1) * RESTART_BYTES;
    let previous = -1;
    for (let i = 0; i < count; i++) {
      const r = u32(data, entriesEnd + i * RESTART_BYTES);
      // restart[0] is always 0 (even for an empty block); the rest strictly increase inside the entries.
      const ok = i === 0 ? r === 0 : r > previous && r < entriesEnd;
      if (!ok) throw new CorruptionError(file, blockOffset, `bad restart point ${i}: ${r}`);
      previous = r;
    }
    this.entriesEnd = entriesEnd;
    this.restartCount = count;
  }

  restartPoint(i: number): number {
    return u32(this.data, this.entriesEnd + i * RESTART_BYTES);
  }

  /** Bytes charged to the block cache. */
  get charge(): number {
    return this.data.byteLength;
  }

  iterator(): BlockIterator {
    return new BlockIterator(this);
  }
}

export class BlockIterator implements InternalIterator {
  private block!: Block;
  private data!: Uint8Array;
  private entriesEnd = 0;
  /** Offset of the current entry; entriesEnd when not valid. */
  private current = 0;
  /** Offset of the entry after the current one. */
  private nextOffset = 0;
  /** Index of the restart point at or before current. */
  private restartIndex = 0;
  /** Offset of restart point restartIndex + 1 (Infinity past the last), so next() skips the restart array. */
  private nextRestart = Infinity;
  private keyBuf = new Uint8Array(64);
  private keyLength = 0;
  private valueStart = 0;
  private valueLength = 0;
  private keyView: Uint8Array | undefined;
  /** Out-parameters of decodeRestartKey() and readVarint(), kept as fields to avoid allocating. */
  private restartKeyLength = 0;
  private varintEnd = 0;

  constructor(block: Block) {
    this.reset(block);
  }

  /** Rebinds the iterator to another block (reuses its key buffer); the iterator is not valid after. */
  reset(block: Block): void {
    this.block = block;
    this.data = block.data;
    this.entriesEnd = block.entriesEnd;
    this.invalidate();
  }

  valid(): boolean {
    return this.current < this.entriesEnd;
  }

  key(): Uint8Array {
    return (this.keyView ??= this.keyBuf.subarray(0, this.keyLength));
  }

  value(): Uint8Array {
    return this.data.subarray(this.valueStart, this.valueStart + this.valueLength);
  }

  /** True when the current key's user part equals userKey (no allocation). */
  userKeyEquals(userKey: Uint8Array): boolean {
    return compareBytesRange(this.keyBuf, 0, this.keyLength - TRAILER_BYTES, userKey, 0, userKey.length) === 0;
  }

  sequence(): number {
    const end = this.keyLength - TRAILER_BYTES;
    return u32(this.keyBuf, end + 4) * 0x1000000 + (u32(this.keyBuf, end) >>> 8);
  }

  kind(): number {
    return this.keyBuf[this.keyLength - TRAILER_BYTES];
  }

  seekToFirst(): void {
    this.seekToRestart(0);
    this.parseNext();
  }

  seekToLast(): void {
    this.seekToRestart(this.block.restartCount - 1);
    while (this.parseNext() && this.nextOffset < this.entriesEnd) { /* decode to the last entry */ }
  }

  seek(target: Uint8Array): void {
    // The caller may pass our own key() view; decoding would overwrite it mid-compare. (Not
    // target.buffer === keyBuf.buffer: reading .buffer of a small on-heap array is costly.)
    if (target === this.keyView) target = target.slice();
    const data = this.data;
    let left = 0;
    let right = this.block.restartCount - 1;
    while (left < right) {
      const mid = (left + right + 1) >>> 1;
      const at = this.block.restartPoint(mid);
      const entry = this.decodeRestartKey(at);
      if (compareInternalRange(data, entry, this.restartKeyLength, target, 0, target.length) < 0) left = mid;
      else right = mid - 1;
    }
    this.seekToRestart(left);
    while (this.parseNext()) {
      if (compareInternalRange(this.keyBuf, 0, this.keyLength, target, 0, target.length) >= 0) return;
    }
  }

  next(): void {
    if (!this.valid()) return;
    this.parseNext();
  }

  prev(): void {
    if (!this.valid()) return;
    const original = this.current;
    while (this.block.restartPoint(this.restartIndex) >= original) {
      if (this.restartIndex === 0) {
        this.invalidate();
        return;
      }
      this.restartIndex--;
    }
    this.seekToRestart(this.restartIndex);
    while (this.parseNext() && this.nextOffset < original) { /* decode to the entry before original */ }
  }

  close(): void {
    this.invalidate();
  }

  private invalidate(): void {
    this.current = this.entriesEnd;
    this.nextOffset = this.entriesEnd;
    this.restartIndex = this.block.restartCount;
    this.nextRestart = Infinity;
    this.keyLength = 0;
    this.keyView = undefined;
  }

  private seekToRestart(i: number): void {
    this.restartIndex = i;
    this.nextRestart = i + 1 < this.block.restartCount ? this.block.restartPoint(i + 1) : Infinity;
    this.keyLength = 0;
    this.keyView = undefined;
    this.nextOffset = this.block.restartPoint(i);
  }

  private corrupt(at: number, what: string): never {
    this.invalidate();
    throw new CorruptionError(this.block.file, this.block.blockOffset, `${what} (entry at block offset ${at})`);
  }


  /** Decodes the header of the restart entry at `at`; returns where its key starts (length in restartKeyLength). */
  private decodeRestartKey(at: number): number {
    const data = this.data;
    const end = this.entriesEnd;
    let p = at;
    // shared must be the single byte 0 at a restart point.
    if (p >= end || data[p] !== 0) this.corrupt(at, 'restart entry with shared prefix');
    p++;
    let nonShared: number;
    let valueLength: number;
    if (p + 2 <= end && (data[p] | data[p + 1]) < 0x80) {
      nonShared = data[p];
      valueLength = data[p + 1];
      p += 2;
    } else {
      nonShared = this.readVarint(p);
      valueLength = this.readVarint(this.varintEnd);
      p = this.varintEnd;
    }
    if (nonShared < TRAILER_BYTES || p + nonShared + valueLength > end) this.corrupt(at, 'entry overruns block');
    this.restartKeyLength = nonShared;
    return p;
  }

  /** Reads a varint inside the entries (at most 8 bytes); its end goes to varintEnd. */
  private readVarint(p: number): number {
    const data = this.data;
    const end = this.entriesEnd;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8 && p < end; i++) {
      const b = data[p++];
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        this.varintEnd = p;
        return value;
      }
      scale *= 128;
    }
    return this.corrupt(this.current, 'bad varint in entry header');
  }

  /** Decodes the entry at nextOffset into the current position; false (and not valid) at the end. */
  private parseNext(): boolean {
    const data = this.data;
    const end = this.entriesEnd;
    let p = this.nextOffset;
    this.current = p;
    this.keyView = undefined;
    if (p >= end) {
      this.invalidate();
      return false;
    }
    let shared: number;
    let nonShared: number;
    let valueLength: number;
    // Fast path: all three lengths < 128 (single-byte varints), the common case.
    if (p + 3 <= end && (data[p] | data[p + 1] | data[p + 2]) < 0x80) {
      shared = data[p];
      nonShared = data[p + 1];
      valueLength = data[p + 2];
      p += 3;
    } else {
      shared = this.readVarint(p);
      nonShared = this.readVarint(this.varintEnd);
      valueLength = this.readVarint(this.varintEnd);
      p = this.varintEnd;
    }
    if (shared > this.keyLength) this.corrupt(this.current, `shared prefix ${shared} longer than previous key ${this.keyLength}`);
    const keyLength = shared + nonShared;
    if (keyLength < TRAILER_BYTES) this.corrupt(this.current, `key of ${keyLength} bytes is shorter than its trailer`);
    if (p + nonShared + valueLength > end) this.corrupt(this.current, 'entry overruns block');
    if (keyLength > this.keyBuf.length) {
      const grown = new Uint8Array(Math.max(keyLength, this.keyBuf.length * 2));
      grown.set(this.keyBuf.subarray(0, shared));
      this.keyBuf = grown;
    }
    const keyBuf = this.keyBuf;
    if (nonShared <= 32) {
      for (let i = 0; i < nonShared; i++) keyBuf[shared + i] = data[p + i];
    } else {
      keyBuf.set(data.subarray(p, p + nonShared), shared);
    }
    this.keyLength = keyLength;
    p += nonShared;
    this.valueStart = p;
    this.valueLength = valueLength;
    this.nextOffset = p + valueLength;
    if (this.current >= this.nextRestart) {
      const block = this.block;
      do this.restartIndex++;
      while (this.restartIndex + 1 < block.restartCount && block.restartPoint(this.restartIndex + 1) <= this.current);
      this.nextRestart = this.restartIndex + 1 < block.restartCount ? block.restartPoint(this.restartIndex + 1) : Infinity;
    }
    return true;
  }
}
