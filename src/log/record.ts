// Threads: WAL worker (writes WAL and MANIFEST records, replays the WAL), any thread that
// verifies or repairs a database. Shared by reader and writer; see docs/format-wal.md.
//
// The record framing used by WAL segments and the MANIFEST:
//
//   file   := record* [zero padding]
//   record := checksum: u32 LE | length: u32 LE | type: u8 | headerChecksum: u32 LE | payload: byte[length]
//   headerChecksum := xxh32(seed = HEADER_CHECKSUM_SEED) over length ‖ type (bytes 4 .. 9)
//   checksum       := xxh32(seed = CHECKSUM_SEED) over bytes 4 .. 13+length
//
// The header checksum tells a damaged length field (corruption) from a record that runs past
// end of file because its write was cut short (a torn tail): only a header that verifies can
// claim to be torn. (Framing version 2; version 1 had no header checksum.)
//
// A record is written with one write() together with the rest of its group, so after a
// process crash it is either whole or absent. After power loss the tail may be torn: a
// header or payload that runs past end of file, a zero header (preallocated space), a
// checksum mismatch on the last record, or unsynced pages written back out of order (a page
// of zeros inside a bad record). Readers report where the valid prefix ends.
// DO NOT RENUMBER RecordType values: they are on disk.

import { checksum32 } from '../common/checksum.js';

export const RECORD_HEADER_BYTES = 13;
const HEADER_CHECKSUMMED_BYTES = 5;
export const HEADER_CHECKSUM_SEED = 0x4ead_5eed;
export const RECORD_PAYLOAD_BYTES_MAX = 512 * 1024 * 1024;

export const enum RecordType {
  /** Zero: never written; marks preallocated or zeroed space. */
  Zero = 0,
  /** WAL: one write batch (log/batch.ts). */
  Batch = 1,
  /** MANIFEST: one version edit (log/manifest.ts). */
  VersionEdit = 2,
}

export function recordBytes(payloadBytes: number): number {
  return RECORD_HEADER_BYTES + payloadBytes;
}

/** Frames payload as a record at out[offset]; returns the offset after it. */
export function writeRecord(out: Uint8Array, offset: number, type: RecordType, payload: Uint8Array): number {
  out.set(payload, offset + RECORD_HEADER_BYTES);
  return sealRecord(out, offset, type, payload.length);
}

/**
 * Frames a payload that the caller already wrote at out[offset + RECORD_HEADER_BYTES].
 * Lets the WAL worker copy ring bytes once, straight into the group buffer.
 */
export function sealRecord(out: Uint8Array, offset: number, type: RecordType, payloadBytes: number): number {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(offset + 4, payloadBytes, true);
  out[offset + 8] = type;
  view.setUint32(offset + 9, checksum32(out.subarray(offset + 4, offset + 4 + HEADER_CHECKSUMMED_BYTES), HEADER_CHECKSUM_SEED), true);
  const end = offset + RECORD_HEADER_BYTES + payloadBytes;
  view.setUint32(offset, checksum32(out.subarray(offset + 4, end)), true);
  return end;
}

/**
 * Unsynced pages of a file can reach the disk in any order before a power cut, so the unsynced
 * tail may read as a zero-filled page followed by later data. A bad record that contains a
 * whole page-aligned page of zeros, or a zero header running to a page boundary, is such a
 * torn write-back, not corruption: a bit flip never produces a page of zeros.
 */
export const PAGE_BYTES = 4096;

function isZero(data: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (data[i] !== 0) return false;
  return true;
}

function zeroToPageEnd(data: Uint8Array, offset: number): boolean {
  const pageEnd = Math.min(data.length, (Math.floor(offset / PAGE_BYTES) + 1) * PAGE_BYTES);
  return isZero(data, offset, pageEnd);
}

/**
 * A header that fails its checksum is torn, not corrupt, in two cases only:
 *   1. the write was cut short: from some byte of the header on, the file is zeros to its end;
 *   2. a page boundary falls inside the header and the page on one side of it was lost
 *      (unsynced pages written back out of order): that side reads as zeros.
 */
function headerTornByZeros(data: Uint8Array, offset: number): boolean {
  const end = offset + RECORD_HEADER_BYTES;
  let last = data.length - 1;
  while (last >= offset && data[last] === 0) last--;
  if (last < end - 1) return true;
  const boundary = (Math.floor(offset / PAGE_BYTES) + 1) * PAGE_BYTES;
  if (boundary >= end) return false;
  return isZero(data, boundary, Math.min(data.length, boundary + PAGE_BYTES)) || isZero(data, Math.floor(offset / PAGE_BYTES) * PAGE_BYTES, boundary);
}

function hasZeroPage(data: Uint8Array, from: number, to: number): boolean {
  for (let page = Math.ceil(from / PAGE_BYTES) * PAGE_BYTES; page + PAGE_BYTES <= to; page += PAGE_BYTES) {
    if (isZero(data, page, page + PAGE_BYTES)) return true;
  }
  return false;
}

export type RecordVisit = (type: RecordType, payload: Uint8Array, offset: number) => void;

export interface ScanResult {
  /** Byte offset where the valid records end. */
  validBytes: number;
  /** Why scanning stopped before the end of the data, if it did. */
  problem?: { offset: number; what: string; atTail: boolean };
}

/**
 * Visits every valid record in data. Stops at the first bad record and describes it.
 * `atTail` is true when the bad record is the last thing in the data (it runs past the end,
 * is all zeros to the end, or is the final record): a torn write rather than corruption.
 */
export function scanRecords(data: Uint8Array, visit: RecordVisit): ScanResult {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let offset = 0;
  while (offset < data.length) {
    const remaining = data.length - offset;
    if (remaining < RECORD_HEADER_BYTES) {
      return { validBytes: offset, problem: { offset, what: 'truncated record header', atTail: true } };
    }
    const checksum = view.getUint32(offset, true);
    const length = view.getUint32(offset + 4, true);
    const type = data[offset + 8] as RecordType;
    const headerChecksum = view.getUint32(offset + 9, true);
    if (type === RecordType.Zero && length === 0 && checksum === 0 && headerChecksum === 0) {
      const tailIsZero = data.subarray(offset).every((b) => b === 0);
      return tailIsZero
        ? { validBytes: offset }
        : { validBytes: offset, problem: { offset, what: 'zeroed record header followed by data', atTail: zeroToPageEnd(data, offset) } };
    }
    if (checksum32(data.subarray(offset + 4, offset + 4 + HEADER_CHECKSUMMED_BYTES), HEADER_CHECKSUM_SEED) !== headerChecksum) {
      // A damaged header is corruption, unless it is where unsynced pages were lost: zeros
      // from some byte of the header to the end of its page (or of the file).
      return { validBytes: offset, problem: { offset, what: 'record header checksum mismatch', atTail: headerTornByZeros(data, offset) } };
    }
    if (length > RECORD_PAYLOAD_BYTES_MAX) {
      return { validBytes: offset, problem: { offset, what: `record length ${length} exceeds the limit`, atTail: false } };
    }
    if (RECORD_HEADER_BYTES + length > remaining) {
      return { validBytes: offset, problem: { offset, what: `record length ${length} runs past end of file`, atTail: true } };
    }
    const end = offset + RECORD_HEADER_BYTES + length;
    if (checksum32(data.subarray(offset + 4, end)) !== checksum) {
      const atTail = end === data.length || data.subarray(end).every((b) => b === 0) || hasZeroPage(data, offset, end);
      return { validBytes: offset, problem: { offset, what: 'record checksum mismatch', atTail } };
    }
    visit(type, data.subarray(offset + RECORD_HEADER_BYTES, end), offset);
    offset = end;
  }
  return { validBytes: offset };
}
