// Threads: all. Internal keys: how user keys, sequence numbers and entry kinds combine.
//
// An internal key orders entries by user key ascending, then by sequence number descending,
// so the newest version of a key comes first. On disk (SST entries) an internal key is
//
//   internal_key := user_key  trailer: uint64 little-endian = sequence * 256 + kind
//
// stored as two uint32 LE words (low word first) so no BigInt is needed.
// DO NOT CHANGE THE KIND VALUES: they are embedded in on-disk data.

export const enum EntryKind {
  Delete = 0,
  Put = 1,
}

/** Sequence numbers fit in 53 bits (Number.MAX_SAFE_INTEGER); 2^53 / 1e9 writes per second is ~104 days... per 1e6 writes/s, 285 years. */
export const SEQUENCE_MAX = Number.MAX_SAFE_INTEGER;
export const TRAILER_BYTES = 8;

/** Hard limits on input sizes; enforced before anything is written. */
export const KEY_BYTES_MAX = 64 * 1024;
export const VALUE_BYTES_MAX = 256 * 1024 * 1024;

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

export function writeTrailer(out: Uint8Array, offset: number, sequence: number, kind: EntryKind): void {
  // Byte-wise, not DataView: a DataView over a small typed array forces V8 to move it off-heap.
  const low = ((sequence % 0x1000000) * 256 + kind) >>> 0;
  const high = Math.floor(sequence / 0x1000000) >>> 0;
  out[offset] = low & 0xff;
  out[offset + 1] = (low >>> 8) & 0xff;
  out[offset + 2] = (low >>> 16) & 0xff;
  out[offset + 3] = low >>> 24;
  out[offset + 4] = high & 0xff;
  out[offset + 5] = (high >>> 8) & 0xff;
  out[offset + 6] = (high >>> 16) & 0xff;
  out[offset + 7] = high >>> 24;
}

/** The trailer's sequence number. */
export function trailerSequence(buf: Uint8Array, offset: number): number {
  const low = (buf[offset + 1] | (buf[offset + 2] << 8) | (buf[offset + 3] << 16)) >>> 0;
  const high = (buf[offset + 4] | (buf[offset + 5] << 8) | (buf[offset + 6] << 16) | (buf[offset + 7] << 24)) >>> 0;
  return high * 0x1000000 + low;
}

export function trailerKind(buf: Uint8Array, offset: number): EntryKind {
  return buf[offset] as EntryKind;
}

export function readTrailer(buf: Uint8Array, offset: number): { sequence: number; kind: EntryKind } {
  return { sequence: trailerSequence(buf, offset), kind: buf[offset] as EntryKind };
}

export function makeInternalKey(userKey: Uint8Array, sequence: number, kind: EntryKind): Uint8Array {
  const out = new Uint8Array(userKey.length + TRAILER_BYTES);
  out.set(userKey, 0);
  writeTrailer(out, userKey.length, sequence, kind);
  return out;
}

/** Bytewise comparison of a[aStart, aEnd) and b[bStart, bEnd) without allocating views. */
export function compareByteRanges(a: Uint8Array, aStart: number, aEnd: number, b: Uint8Array, bStart: number, bEnd: number): number {
  const n = Math.min(aEnd - aStart, bEnd - bStart);
  for (let i = 0; i < n; i++) {
    const d = a[aStart + i] - b[bStart + i];
    if (d !== 0) return d;
  }
  return (aEnd - aStart) - (bEnd - bStart);
}

/** Orders internal keys: user key ascending, then sequence descending, then kind descending. */
export function compareInternalKeys(a: Uint8Array, b: Uint8Array): number {
  const aUser = a.length - TRAILER_BYTES;
  const bUser = b.length - TRAILER_BYTES;
  const c = compareByteRanges(a, 0, aUser, b, 0, bUser);
  if (c !== 0) return c;
  // Trailer = sequence * 256 + kind; larger trailer sorts first. Compare high word, then low.
  for (let i = 7; i >= 0; i--) {
    const d = b[bUser + i] - a[aUser + i];
    if (d !== 0) return d;
  }
  return 0;
}
