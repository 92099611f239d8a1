// Threads: all. LZ4 block compression through lz4-wasm-nodejs.
//
// lz4-wasm-nodejs frames a block as [uncompressed size: uint32 LE][LZ4 block]. Its decompress()
// allocates whatever the size prefix claims (200 bytes of garbage once grew it to 3.2 GiB), so
// decompressBlock() checks the prefix against the size the caller expects, and against
// COMPRESSED_BLOCK_BYTES_MAX, before handing anything to WASM. It throws strings; we wrap them.

import lz4 from 'lz4-wasm-nodejs';

/** The largest block we will ever ask LZ4 to inflate (a single 256 MiB value plus slack). */
export const COMPRESSED_BLOCK_BYTES_MAX = 256 * 1024 * 1024 + 64 * 1024;
export const LZ4_PREFIX_BYTES = 4;

export const enum CompressionKind {
  None = 0,
  Lz4 = 1,
}

/** Returns the compressed frame, or undefined when compression would not save at least 1/8. */
export function compressBlock(raw: Uint8Array): Uint8Array | undefined {
  if (raw.length < 64) return undefined;
  const out = lz4.compress(raw);
  if (out.length >= raw.length - (raw.length >>> 3)) return undefined;
  return out;
}

export class DecompressError extends Error {}

export function decompressBlock(frame: Uint8Array, expectedBytes: number): Uint8Array {
  if (frame.length < LZ4_PREFIX_BYTES) throw new DecompressError('lz4 frame shorter than its size prefix');
  const claimed = frame[0] | (frame[1] << 8) | (frame[2] << 16) | (frame[3] << 24);
  if (claimed >>> 0 !== expectedBytes || expectedBytes > COMPRESSED_BLOCK_BYTES_MAX) {
    throw new DecompressError(`lz4 size prefix ${claimed >>> 0} does not match expected ${expectedBytes}`);
  }
  let out: Uint8Array;
  try {
    out = lz4.decompress(frame);
  } catch (e) {
    throw new DecompressError(`lz4 decompress failed: ${String(e)}`);
  }
  if (out.length !== expectedBytes) throw new DecompressError(`lz4 produced ${out.length} bytes, expected ${expectedBytes}`);
  return out;
}
