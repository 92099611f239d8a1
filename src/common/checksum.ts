// Threads: all. xxHash32 checksums (xxhash-wasm) for WAL records, SST blocks and MANIFEST records.
//
// The module initialises the WASM instance with top-level await, so every importer can call
// checksum32() synchronously. h32Raw is the fast non-BigInt entry point (see shared/BASELINES.md).

import xxhash from 'xxhash-wasm';

const api = await xxhash();

/** Seed distinguishes StemeDB checksums from a plain xxh32 of the same bytes. */
export const CHECKSUM_SEED = 0x5eed_5eed;

export function checksum32(bytes: Uint8Array, seed: number = CHECKSUM_SEED): number {
  return api.h32Raw(bytes, seed) >>> 0;
}
