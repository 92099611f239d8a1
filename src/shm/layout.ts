// Threads: all. THE one definition of every SharedArrayBuffer layout StemeDB uses, except the
// memtable arena, whose node layout lives with its algorithm in memtable.ts.
//
// Three kinds of shared memory exist:
//
//   1. The doorbell (one per runtime, i.e. per process thread that opened a database):
//        Int32[0] DOORBELL      bumped by any producer after publishing work; the WAL worker waits on it
//        Int32[1] WORKER_PARKED 1 while the WAL worker sleeps in Atomics.wait; producers notify only then
//
//   2. A write ring (one per open database), single producer (the caller's thread), single
//      consumer (the WAL worker). Positions are byte counters that wrap mod 2^32.
//        byte   0  Int32 HEAD               producer position; written by the producer only
//        byte  64  Int32 TAIL               consumer position; written by the consumer only
//        byte 128  Int32 PRODUCER_WAITING   1 while the producer waits for space (consumer notifies TAIL)
//        byte 192  data[capacity]           capacity is a power of two
//      Records are 8-byte aligned:
//        record := payloadBytes: u32 LE | type: u8 | reserved: u8[3] | payload | padding to 8
//      A record never wraps: when it does not fit before the end, the producer writes a PAD
//      record (or, with fewer than 8 bytes left, nothing) and continues at offset 0.
//
//   3. A control block (one per open database), Int32 slots, see Control below.

export const DOORBELL = 0;
export const WORKER_PARKED = 1;
export const DOORBELL_INT32S = 2;

export const RING_HEAD_BYTE = 0;
export const RING_TAIL_BYTE = 64;
export const RING_PRODUCER_WAITING_BYTE = 128;
export const RING_DATA_BYTE = 192;
export const RING_RECORD_HEADER_BYTES = 8;
export const RING_ALIGN_BYTES = 8;
export const RING_CAPACITY_BYTES_MIN = 64 * 1024;
export const RING_CAPACITY_BYTES_MAX = 256 * 1024 * 1024;

/** Ring record types. DO NOT RENUMBER: producer and consumer run different code bundles only in tests, but keep it stable. */
export const enum RingRecord {
  /** A whole encoded batch (log/batch.ts layout). Consumes one ticket. */
  Write = 1,
  /** Fragments of a batch too large for one ring record; Last consumes the ticket. */
  WriteFirst = 2,
  WriteMiddle = 3,
  WriteLast = 4,
  /** Make the active memtable immutable after all earlier writes (db.flush()). Consumes one ticket. */
  Rotate = 5,
  /** Skip to the end of the ring. */
  Pad = 0xff,
}

/** Control block slots (Int32 each). Writers are named per slot. */
export const enum Control {
  /** Tickets completed, wrapping mod 2^32. Written by the WAL worker after a group is written (and synced) and applied. */
  AckedTickets = 0,
  /** 1 once a write or sync failed; sticky. Written by the WAL worker before AckedTickets covers the failed group. */
  Failed = 1,
  /** First ticket that was not acknowledged because of the failure. */
  FailedFromTicket = 2,
  /** Generation of the active memtable; the WAL worker bumps it after posting the new memtable's buffer. */
  MemtableGeneration = 3,
  /** Immutable memtables not yet flushed. WAL worker increments on rotation; main thread decrements after a flush installs. */
  ImmutableCount = 4,
  /** Limit on ImmutableCount before the WAL worker stops draining this database's ring (a write stall). */
  ImmutableCountMax = 5,
  /** 1 while the database is being closed: the WAL worker drains what is left, then stops serving it. */
  Closing = 6,
  /**
   * WAL statistics, written by the WAL worker only. Bytes are split into two uint32 halves;
   * a reader may see a torn pair while a group commits, which is acceptable for statistics.
   */
  WalBytesLow = 8,
  WalBytesHigh = 9,
  WalSyncs = 10,
  WalGroups = 11,
  Int32s = 16,
}
