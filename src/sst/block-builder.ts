// Threads: whichever thread builds a table (flush or compaction); one builder per table, not shared.
//
// Builds the contents of a data or index block (layout in format.ts):
//   1. each key is stored as (shared prefix length with the previous key, the rest);
//   2. every restartInterval keys the prefix resets (shared = 0) and the entry's offset joins
//      the restart array, so readers can binary-search restarts and decode from there;
//   3. finish() appends the restart array and its count.
// REQUIRES: keys are added in strictly increasing internal-key order (the table builder asserts it).

import { assert } from '../common/assert.js';
import { putVarint, varintLength } from '../common/varint.js';
import { RESTART_BYTES } from './format.js';

const INITIAL_BYTES = 4096;

export class BlockBuilder {
  private buf: Uint8Array;
  private used = 0;
  private restarts: number[] = [0];
  private sinceRestart = 0;
  private entries = 0;
  private last: Uint8Array = new Uint8Array(64);
  private lastLength = 0;
  private finished = false;
  private readonly initialBytes: number;

  constructor(private readonly restartInterval: number, initialBytes = INITIAL_BYTES) {
    assert(Number.isInteger(restartInterval) && restartInterval >= 1, 'restartInterval must be a positive integer');
    this.initialBytes = Math.max(64, initialBytes);
    this.buf = new Uint8Array(this.initialBytes);
  }

  get empty(): boolean {
    return this.entries === 0;
  }

  get entryCount(): number {
    return this.entries;
  }

  /** Size of finish()'s output if called now. */
  get estimatedSize(): number {
    return this.used + (this.restarts.length + 1) * RESTART_BYTES;
  }

  /** Upper bound on how much add(key, value) would grow the block (varints at most 8 bytes). */
  static entryBytesMax(keyBytes: number, valueBytes: number): number {
    return 24 + keyBytes + valueBytes + RESTART_BYTES;
  }

  /** The last key added; a view valid until the next add() or reset(). */
  lastKey(): Uint8Array {
    return this.last.subarray(0, this.lastLength);
  }

  add(key: Uint8Array, value: Uint8Array): void {
    assert(!this.finished, 'BlockBuilder.add after finish');
    let shared = 0;
    if (this.sinceRestart < this.restartInterval) {
      const limit = Math.min(this.lastLength, key.length);
      const last = this.last;
      while (shared < limit && last[shared] === key[shared]) shared++;
    } else {
      this.restarts.push(this.used);
      this.sinceRestart = 0;
    }
    const nonShared = key.length - shared;
    const header = varintLength(shared) + varintLength(nonShared) + varintLength(value.length);
    this.reserve(header + nonShared + value.length);
    let pos = putVarint(this.buf, this.used, shared);
    pos = putVarint(this.buf, pos, nonShared);
    pos = putVarint(this.buf, pos, value.length);
    this.buf.set(key.subarray(shared), pos);
    pos += nonShared;
    this.buf.set(value, pos);
    this.used = pos + value.length;

    if (this.last.length < key.length) {
      this.last = new Uint8Array(Math.max(key.length, this.last.length * 2));
      this.last.set(key, 0);
    } else {
      this.last.set(key.subarray(shared), shared);
    }
    this.lastLength = key.length;
    this.sinceRestart++;
    this.entries++;
  }

  /** Appends the restart array; returns a view of the block valid until reset(). */
  finish(): Uint8Array {
    assert(!this.finished, 'BlockBuilder.finish twice');
    this.reserve((this.restarts.length + 1) * RESTART_BYTES);
    const view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    let pos = this.used;
    for (const r of this.restarts) {
      view.setUint32(pos, r, true);
      pos += RESTART_BYTES;
    }
    view.setUint32(pos, this.restarts.length, true);
    this.used = pos + RESTART_BYTES;
    this.finished = true;
    return this.buf.subarray(0, this.used);
  }

  reset(): void {
    // A block that held a huge value must not pin its buffer for the rest of the table.
    if (this.buf.length > 4 * this.initialBytes) this.buf = new Uint8Array(this.initialBytes);
    this.used = 0;
    this.restarts = [0];
    this.sinceRestart = 0;
    this.entries = 0;
    this.lastLength = 0;
    this.finished = false;
  }

  private reserve(extra: number): void {
    const need = this.used + extra;
    if (need <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(need, this.buf.length * 2));
    grown.set(this.buf.subarray(0, this.used));
    this.buf = grown;
  }
}
