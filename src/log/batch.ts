// Threads: caller's thread (encodes into the write ring), WAL worker (logs and applies),
// recovery and repair. Shared by encoder and decoder; see docs/format-wal.md.
//
// A batch is the unit of atomicity: it is one ring record (or one fragmented series), one WAL
// record, and it becomes visible all at once because readers filter by the acknowledged
// sequence number.
//
//   batch  := sequenceLow: u32 LE | sequenceHigh: u32 LE | count: u32 LE | flags: u8 | op[count]
//   op     := kind: u8 | keyBytes: varint | key | (kind = Put: valueBytes: varint | value)
//   flags  := bit 0: sync requested
//
// Operation i of the batch gets sequence number `sequence + i`.

import { EntryKind } from '../common/keys.js';
import { getVarint, putVarint, varintLength } from '../common/varint.js';

export const BATCH_HEADER_BYTES = 13;
export const BATCH_FLAG_SYNC = 1;

export interface BatchOp {
  kind: EntryKind;
  key: Uint8Array;
  value?: Uint8Array;
}

export function batchBytes(ops: readonly BatchOp[]): number {
  let n = BATCH_HEADER_BYTES;
  for (const op of ops) {
    n += 1 + varintLength(op.key.length) + op.key.length;
    if (op.kind === EntryKind.Put) {
      const v = op.value!;
      n += varintLength(v.length) + v.length;
    }
  }
  return n;
}

/** Encodes into out[offset ...]; returns the offset after the batch. */
export function encodeBatch(out: Uint8Array, offset: number, sequence: number, sync: boolean, ops: readonly BatchOp[]): number {
  writeBatchHeader(out, offset, sequence, ops.length, sync);
  let at = offset + BATCH_HEADER_BYTES;
  for (const op of ops) {
    out[at++] = op.kind;
    at = putVarint(out, at, op.key.length);
    out.set(op.key, at);
    at += op.key.length;
    if (op.kind === EntryKind.Put) {
      const v = op.value!;
      at = putVarint(out, at, v.length);
      out.set(v, at);
      at += v.length;
    }
  }
  return at;
}

export function writeBatchHeader(out: Uint8Array, offset: number, sequence: number, count: number, sync: boolean): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(offset, sequence % 0x100000000, true);
  view.setUint32(offset + 4, Math.floor(sequence / 0x100000000), true);
  view.setUint32(offset + 8, count, true);
  out[offset + 12] = sync ? BATCH_FLAG_SYNC : 0;
}

export interface BatchHeader {
  sequence: number;
  count: number;
  sync: boolean;
}

export function readBatchHeader(data: Uint8Array): BatchHeader | undefined {
  if (data.length < BATCH_HEADER_BYTES) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return {
    sequence: view.getUint32(0, true) + view.getUint32(4, true) * 0x100000000,
    count: view.getUint32(8, true),
    sync: (data[12] & BATCH_FLAG_SYNC) !== 0,
  };
}

/**
 * Calls visit(kind, key, value, sequence) for every op. Views point into data.
 * Returns false when the batch is malformed (it was checksummed, so that means a bug or a
 * checksum collision; callers treat it as corruption).
 */
export function forEachBatchOp(
  data: Uint8Array,
  visit: (kind: EntryKind, key: Uint8Array, value: Uint8Array, sequence: number) => void,
): boolean {
  const header = readBatchHeader(data);
  if (!header) return false;
  let at = BATCH_HEADER_BYTES;
  const empty = data.subarray(0, 0);
  for (let i = 0; i < header.count; i++) {
    if (at >= data.length) return false;
    const kind = data[at++];
    if (kind !== EntryKind.Put && kind !== EntryKind.Delete) return false;
    let keyBytes: number;
    [keyBytes, at] = getVarint(data, at);
    if (keyBytes < 0 || at + keyBytes > data.length) return false;
    const key = data.subarray(at, at + keyBytes);
    at += keyBytes;
    let value = empty;
    if (kind === EntryKind.Put) {
      let valueBytes: number;
      [valueBytes, at] = getVarint(data, at);
      if (valueBytes < 0 || at + valueBytes > data.length) return false;
      value = data.subarray(at, at + valueBytes);
      at += valueBytes;
    }
    visit(kind, key, value, header.sequence + i);
  }
  return at === data.length;
}
