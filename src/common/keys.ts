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
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const low = (sequence % 0x1000000) * 256 + kind;
  const high = Math.floor(sequence / 0x1000000);
  view.setUint32(offset, low >>> 0, true);
  view.setUint32(offset + 4, high >>> 0, true);
}

export function readTrailer(buf: Uint8Array, offset: number): { sequence: number; kind: EntryKind } {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const low = view.getUint32(offset, true);
  const high = view.getUint32(offset + 4, true);
  return { sequence: high * 0x1000000 + Math.floor(low / 256), kind: (low & 0xff) as EntryKind };
}

export function makeInternalKey(userKey: Uint8Array, sequence: number, kind: EntryKind): Uint8Array {
  const out = new Uint8Array(userKey.length + TRAILER_BYTES);
  out.set(userKey, 0);
  writeTrailer(out, userKey.length, sequence, kind);
  return out;
}

export function userKeyOf(internalKey: Uint8Array): Uint8Array {
  return internalKey.subarray(0, internalKey.length - TRAILER_BYTES);
}

/** Orders internal keys: user key ascending, then sequence descending, then kind descending. */
export function compareInternalKeys(a: Uint8Array, b: Uint8Array): number {
  const ua = a.subarray(0, a.length - TRAILER_BYTES);
  const ub = b.subarray(0, b.length - TRAILER_BYTES);
  const c = Buffer.compare(ua, ub);
  if (c !== 0) return c;
  const ta = readTrailer(a, a.length - TRAILER_BYTES);
  const tb = readTrailer(b, b.length - TRAILER_BYTES);
  if (ta.sequence !== tb.sequence) return ta.sequence > tb.sequence ? -1 : 1;
  return tb.kind - ta.kind;
}
