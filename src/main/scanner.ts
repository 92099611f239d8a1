// Threads: the caller's (main) thread. Turns the merged stream of internal entries into the
// user-visible entries of one snapshot and one key range: the newest version of each user
// key with sequence <= snapshot, minus deleted keys.
//
// Forward: for each user key the merged stream yields versions newest first, so the first
// version <= snapshot decides and the rest are skipped.
// Reverse: versions of a user key arrive oldest first, so the scanner keeps the latest
// version <= snapshot seen so far and decides when the user key changes.
// Range: gte wins over gt and lte over lt, as in abstract-level. A seek target outside the
// range exhausts the scan.

import { compareBytes, EntryKind, makeInternalKey, readTrailer, SEQUENCE_MAX, TRAILER_BYTES } from '../common/keys.js';
import { MergingIterator } from '../common/merging-iterator.js';
import type { InternalIterator } from '../common/iterator.js';

export interface ScanRange {
  gt?: Uint8Array;
  gte?: Uint8Array;
  lt?: Uint8Array;
  lte?: Uint8Array;
}

export type Entry = [key: Buffer, value: Buffer];

const toBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const copy = (bytes: Uint8Array): Buffer => Buffer.from(bytes);

export class SnapshotScanner {
  private readonly merged: MergingIterator;
  private readonly lower: Uint8Array | undefined;
  private readonly lowerInclusive: boolean;
  private readonly upper: Uint8Array | undefined;
  private readonly upperInclusive: boolean;
  private exhausted = false;
  private started = false;
  /** Forward: the user key whose remaining versions are hidden. */
  private skipKey: Buffer | undefined;

  private remaining: number;

  constructor(children: InternalIterator[], readonly snapshot: number, readonly reverse: boolean, range: ScanRange, limit = Infinity) {
    this.remaining = limit < 0 ? Infinity : limit;
    this.merged = new MergingIterator(children, reverse);
    this.lower = range.gte ?? range.gt;
    this.lowerInclusive = range.gte !== undefined;
    this.upper = range.lte ?? range.lt;
    this.upperInclusive = range.lte !== undefined;
  }

  private aboveLower(key: Uint8Array): boolean {
    if (!this.lower) return true;
    const c = compareBytes(key, this.lower);
    return this.lowerInclusive ? c >= 0 : c > 0;
  }

  private belowUpper(key: Uint8Array): boolean {
    if (!this.upper) return true;
    const c = compareBytes(key, this.upper);
    return this.upperInclusive ? c <= 0 : c < 0;
  }

  private start(): void {
    this.started = true;
    this.skipKey = undefined;
    if (!this.reverse && this.lower) this.merged.seek(makeInternalKey(this.lower, SEQUENCE_MAX, EntryKind.Put));
    else if (this.reverse && this.upper) this.merged.seek(makeInternalKey(this.upper, 0, EntryKind.Delete));
    else this.merged.seekToStart();
  }

  seek(target: Uint8Array): void {
    this.started = true;
    this.skipKey = undefined;
    this.exhausted = !this.aboveLower(target) || !this.belowUpper(target);
    if (this.exhausted) return;
    if (this.reverse) this.merged.seek(makeInternalKey(target, 0, EntryKind.Delete));
    else this.merged.seek(makeInternalKey(target, SEQUENCE_MAX, EntryKind.Put));
  }

  /** The next visible entry, or undefined at the end. Key and value are fresh Buffers. */
  next(): Entry | undefined {
    if (this.exhausted || this.remaining <= 0) return undefined;
    if (!this.started) this.start();
    const entry = this.reverse ? this.nextReverse() : this.nextForward();
    if (!entry) this.exhausted = true;
    else this.remaining--;
    return entry;
  }

  private nextForward(): Entry | undefined {
    const m = this.merged;
    for (; m.valid(); m.advance()) {
      const ik = m.key();
      const uk = ik.subarray(0, ik.length - TRAILER_BYTES);
      const { sequence, kind } = readTrailer(ik, ik.length - TRAILER_BYTES);
      if (sequence > this.snapshot) continue;
      if (this.skipKey && compareBytes(uk, this.skipKey) === 0) continue;
      if (!this.belowUpper(uk)) return undefined;
      this.skipKey = copy(uk);
      if (kind === EntryKind.Delete || !this.aboveLower(uk)) continue;
      const entry: Entry = [this.skipKey, copy(m.value())];
      m.advance();
      return entry;
    }
    return undefined;
  }

  private nextReverse(): Entry | undefined {
    const m = this.merged;
    let candidateKey: Buffer | undefined;
    let candidateValue: Buffer | undefined;
    let candidateKind = EntryKind.Delete;
    while (m.valid()) {
      const ik = m.key();
      const uk = ik.subarray(0, ik.length - TRAILER_BYTES);
      if (candidateKey && compareBytes(uk, candidateKey) !== 0) {
        if (candidateKind === EntryKind.Put) return [candidateKey, candidateValue!];
        candidateKey = undefined;
      }
      if (!this.aboveLower(uk)) return undefined;
      const { sequence, kind } = readTrailer(ik, ik.length - TRAILER_BYTES);
      if (sequence <= this.snapshot && this.belowUpper(uk)) {
        if (!candidateKey) candidateKey = copy(uk);
        candidateKind = kind;
        candidateValue = kind === EntryKind.Put ? copy(m.value()) : undefined;
      }
      m.advance();
    }
    if (candidateKey && candidateKind === EntryKind.Put) return [candidateKey, candidateValue!];
    return undefined;
  }

  close(): void {
    this.merged.close();
    this.exhausted = true;
  }
}

export { toBuffer };
