// Threads: builder on the flush/compaction thread, queries on main thread and workers; a
// BloomFilter is immutable after construction.
//
// One full bloom filter per table over distinct USER keys (gets probe by user key at any
// snapshot, so sequences must not be part of the hash). Layout (format.ts):
//   filter := bits: byte[n]  num_probes: u8
// Probing, as LevelDB does: one 32-bit hash h = checksum32(userKey, BLOOM_SEED) and
// delta = rotate-right(h, 17); probe i tests bit (h + i * delta) mod (n * 8).
// num_probes = round(bitsPerKey * ln 2), clamped to [1, 30]; 10 bits/key gives ~1% false positives.

import { assert } from '../common/assert.js';
import { checksum32 } from '../common/checksum.js';

/** A seed distinct from block checksums, so the filter's hash is independent of them. */
export const BLOOM_SEED = 0xb10_0f11;
const PROBES_MAX = 30;
/** Very small filters have a high false-positive rate whatever bitsPerKey says. */
const FILTER_BITS_MIN = 64;

export function bloomHash(userKey: Uint8Array): number {
  return checksum32(userKey, BLOOM_SEED);
}

/** Accumulates user-key hashes; REQUIRES: each distinct user key added once. */
export class BloomBuilder {
  private hashes = new Uint32Array(1024);
  private count = 0;

  constructor(private readonly bitsPerKey: number) {
    assert(Number.isInteger(bitsPerKey) && bitsPerKey >= 1 && bitsPerKey <= 64, 'bloomBitsPerKey must be an integer in [1, 64]');
  }

  get keyCount(): number {
    return this.count;
  }

  addKey(userKey: Uint8Array): void {
    if (this.count === this.hashes.length) {
      const grown = new Uint32Array(this.hashes.length * 2);
      grown.set(this.hashes);
      this.hashes = grown;
    }
    this.hashes[this.count++] = bloomHash(userKey);
  }

  /** The filter block contents. */
  finish(): Uint8Array {
    const probes = Math.min(PROBES_MAX, Math.max(1, Math.round(this.bitsPerKey * Math.LN2)));
    const bits = Math.max(FILTER_BITS_MIN, this.count * this.bitsPerKey);
    const bytes = Math.ceil(bits / 8);
    const totalBits = bytes * 8;
    const out = new Uint8Array(bytes + 1);
    for (let k = 0; k < this.count; k++) {
      let h = this.hashes[k];
      const delta = ((h >>> 17) | (h << 15)) >>> 0;
      for (let i = 0; i < probes; i++) {
        const bit = h % totalBits;
        out[bit >>> 3] |= 1 << (bit & 7);
        h = (h + delta) >>> 0;
      }
    }
    out[bytes] = probes;
    return out;
  }
}

export class BloomFilter {
  private readonly bits: Uint8Array;
  private readonly totalBits: number;
  private readonly probes: number;

  /**
   * contents: a verified filter block. Returns a filter that matches everything when the
   * probe count is one this code does not understand (reserved for other filter encodings).
   */
  constructor(contents: Uint8Array) {
    const bytes = contents.length - 1;
    this.bits = contents.subarray(0, Math.max(0, bytes));
    this.totalBits = Math.max(0, bytes) * 8;
    this.probes = bytes > 0 ? contents[bytes] : 0;
  }

  mayContain(userKey: Uint8Array): boolean {
    return this.mayContainHash(bloomHash(userKey));
  }

  /** mayContain for a key whose bloomHash the caller computed (once for every file probed). */
  mayContainHash(hash: number): boolean {
    const probes = this.probes;
    if (probes < 1 || probes > PROBES_MAX || this.totalBits === 0) return true;
    let h = hash;
    const delta = ((h >>> 17) | (h << 15)) >>> 0;
    const bits = this.bits;
    const totalBits = this.totalBits;
    for (let i = 0; i < probes; i++) {
      const bit = h % totalBits;
      if ((bits[bit >>> 3] & (1 << (bit & 7))) === 0) return false;
      h = (h + delta) >>> 0;
    }
    return true;
  }
}
