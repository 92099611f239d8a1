// Threads: producer side on the caller's (main) thread, consumer side on the WAL worker.
//
// A single-producer single-consumer byte ring in a SharedArrayBuffer (layout in layout.ts).
// Protocol:
//   1. The producer reserves space between HEAD and TAIL, writes the record bytes with plain
//      stores, then publishes with Atomics.store(HEAD). The seq-cst store orders the plain
//      writes before it, so a consumer that Atomics.loads the new HEAD sees whole records.
//   2. The consumer reads records between TAIL and HEAD, and after it no longer needs their
//      bytes publishes Atomics.store(TAIL). Only then may the producer overwrite them.
//   3. A producer that finds no room sets PRODUCER_WAITING and waits on TAIL with
//      Atomics.waitAsync (never Atomics.wait: it is the event-loop thread). The consumer
//      notifies TAIL only when that flag is set, to keep the fast path free of futex calls.

import { assert } from '../common/assert.js';
import {
  RING_ALIGN_BYTES, RING_CAPACITY_BYTES_MAX, RING_CAPACITY_BYTES_MIN, RING_DATA_BYTE, RING_HEAD_BYTE,
  RING_PRODUCER_WAITING_BYTE, RING_RECORD_HEADER_BYTES, RING_TAIL_BYTE, RingRecord,
} from './layout.js';

const HEAD = RING_HEAD_BYTE / 4;
const TAIL = RING_TAIL_BYTE / 4;
const PRODUCER_WAITING = RING_PRODUCER_WAITING_BYTE / 4;

export function alignUp(n: number): number {
  return (n + RING_ALIGN_BYTES - 1) & ~(RING_ALIGN_BYTES - 1);
}

export function createRingBuffer(capacityBytes: number): SharedArrayBuffer {
  assert((capacityBytes & (capacityBytes - 1)) === 0, 'ring capacity must be a power of two');
  assert(capacityBytes >= RING_CAPACITY_BYTES_MIN && capacityBytes <= RING_CAPACITY_BYTES_MAX, 'ring capacity out of range');
  return new SharedArrayBuffer(RING_DATA_BYTE + capacityBytes);
}

class RingView {
  readonly capacity: number;
  readonly mask: number;
  readonly bytes: Uint8Array;
  readonly words: Int32Array;
  readonly view: DataView;
  constructor(readonly buffer: SharedArrayBuffer) {
    this.capacity = buffer.byteLength - RING_DATA_BYTE;
    this.mask = this.capacity - 1;
    this.bytes = new Uint8Array(buffer, RING_DATA_BYTE, this.capacity);
    this.words = new Int32Array(buffer, 0, RING_DATA_BYTE / 4);
    this.view = new DataView(buffer, RING_DATA_BYTE, this.capacity);
  }
}

/** The largest payload that goes into one record; bigger batches are fragmented by the producer. */
export function ringRecordPayloadMax(capacityBytes: number): number {
  return (capacityBytes >>> 2) - RING_RECORD_HEADER_BYTES;
}

export class RingProducer extends RingView {
  /** Producer-private copy of HEAD; only this thread writes HEAD. */
  private head: number;
  constructor(buffer: SharedArrayBuffer) {
    super(buffer);
    this.head = Atomics.load(this.words, HEAD);
  }

  /**
   * Reserves a record with room for payloadBytes and returns the payload's offset into
   * `bytes`, or -1 when the ring lacks room now. The record is not visible until publish().
   * REQUIRES: payloadBytes <= ringRecordPayloadMax(capacity); one reservation at a time.
   */
  reserve(type: RingRecord, payloadBytes: number): number {
    assert(payloadBytes <= ringRecordPayloadMax(this.capacity), 'ring record too large; fragment it');
    const recordBytes = alignUp(RING_RECORD_HEADER_BYTES + payloadBytes);
    // Atomics.load: TAIL is written by the consumer thread.
    const tail = Atomics.load(this.words, TAIL);
    const used = (this.head - tail) >>> 0;
    let free = this.capacity - used;
    const offset = this.head & this.mask;
    const untilEnd = this.capacity - offset;
    let skip = 0;
    if (untilEnd < recordBytes) skip = untilEnd; // the record would wrap: pad to the end
    if (free < skip + recordBytes) return -1;
    if (skip > 0) {
      if (skip >= RING_RECORD_HEADER_BYTES) {
        this.view.setUint32(offset, skip - RING_RECORD_HEADER_BYTES, true);
        this.bytes[offset + 4] = RingRecord.Pad;
      }
      this.head = (this.head + skip) >>> 0;
      free -= skip;
    }
    const at = this.head & this.mask;
    this.view.setUint32(at, payloadBytes, true);
    this.bytes[at + 4] = type;
    this.head = (this.head + recordBytes) >>> 0;
    return at + RING_RECORD_HEADER_BYTES;
  }

  /** Makes every reserved record visible to the consumer. */
  publish(): void {
    // Atomics.store: release the record bytes written above to the consumer thread.
    Atomics.store(this.words, HEAD, this.head | 0);
  }

  /** Resolves when the consumer has freed space (or after timeoutMs). Never blocks the event loop. */
  async waitForSpace(timeoutMs: number): Promise<void> {
    Atomics.store(this.words, PRODUCER_WAITING, 1);
    const tail = Atomics.load(this.words, TAIL);
    // Atomics.waitAsync: the main thread must never block; the consumer notifies TAIL on release.
    const result = Atomics.waitAsync(this.words, TAIL, tail, timeoutMs);
    if (result.async) await result.value;
    Atomics.store(this.words, PRODUCER_WAITING, 0);
  }
}

export interface RingRecordView {
  type: RingRecord;
  /** Offset of the payload within `bytes`. */
  offset: number;
  length: number;
  /** Consumer position just after this record; pass to release() once done with it. */
  end: number;
}

export class RingConsumer extends RingView {
  private tail: number;
  constructor(buffer: SharedArrayBuffer) {
    super(buffer);
    this.tail = Atomics.load(this.words, TAIL);
  }

  /** Current producer position; records lie between the consumer's position and this. */
  published(): number {
    // Atomics.load: acquires the producer's record bytes.
    return Atomics.load(this.words, HEAD) >>> 0;
  }

  hasRecords(): boolean {
    return this.published() !== this.tail;
  }

  /**
   * Reads the records between `from` and `head` and calls visit for each non-pad record.
   * visit returns false to stop early. Returns the position after the last visited record.
   */
  scan(from: number, head: number, visit: (record: RingRecordView) => boolean): number {
    let pos = from >>> 0;
    while (pos !== head) {
      const at = pos & this.mask;
      const untilEnd = this.capacity - at;
      if (untilEnd < RING_RECORD_HEADER_BYTES) { pos = (pos + untilEnd) >>> 0; continue; }
      const length = this.view.getUint32(at, true);
      const type = this.bytes[at + 4] as RingRecord;
      const recordBytes = alignUp(RING_RECORD_HEADER_BYTES + length);
      assert(recordBytes <= untilEnd && ((head - pos) >>> 0) >= recordBytes, 'ring record runs past the published head');
      const end = (pos + recordBytes) >>> 0;
      if (type !== RingRecord.Pad) {
        if (!visit({ type, offset: at + RING_RECORD_HEADER_BYTES, length, end })) return end;
      }
      pos = end;
    }
    return pos;
  }

  get position(): number {
    return this.tail;
  }

  /** Frees ring bytes up to `position` for the producer. */
  release(position: number): void {
    this.tail = position >>> 0;
    // Atomics.store: the producer may now overwrite these bytes.
    Atomics.store(this.words, TAIL, this.tail | 0);
    // Atomics.load + notify: wake a producer parked in waitForSpace only when it asked.
    if (Atomics.load(this.words, PRODUCER_WAITING) === 1) Atomics.notify(this.words, TAIL);
  }
}
