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
  /**
   * WAL statistics, written by the WAL worker only. Bytes are split into two uint32 halves;
   * a reader may see a torn pair while a group commits, which is acceptable for statistics.
   */
  WalBytesLow = 8,
  WalBytesHigh = 9,
  WalSyncs = 10,
  WalGroups = 11,
  /** Memtable buffers the WAL worker allocated (reused ones are not counted). WAL worker only. */
  MemtableBuffersAllocated = 12,
  Int32s = 16,
}

// ---------------------------------------------------------------------------------------------
// 4. The mutex (lock.ts): one Int32 slot anywhere in a SharedArrayBuffer, three states after
//    Drepper's "Futexes Are Tricky" mutex #2. DO NOT RENUMBER: every thread must agree.
export const enum LockState {
  /** Nobody holds the lock. */
  Unlocked = 0,
  /** Held, and no thread has announced that it sleeps on the slot: unlock() skips Atomics.notify. */
  Locked = 1,
  /** Held, and some thread may sleep on the slot: unlock() must Atomics.notify one waiter. */
  Contended = 2,
}

// ---------------------------------------------------------------------------------------------
// 5. The shared block cache (shared-block-cache.ts), ONE SharedArrayBuffer holding, in order:
//
//      byte 0                 header, SBC_HEADER_BYTES (Int32 fields; see SbcHeader)
//      byte SBC_STRIPES_BYTE  statistics stripes, SBC_STRIPE_COUNT x SBC_STRIPE_BYTES
//      byte index             hash index: slotCount x SBC_SLOT_BYTES (Int32 fields; see SbcSlot)
//      byte refs              CLOCK reference bits: slotCount x 1 byte, padded to 8
//      byte arena             record log: arenaBytes (= capacityBytes rounded down to 8)
//
//    index, refs and arena offsets depend on the capacity; sharedBlockCacheRegions() in
//    shared-block-cache.ts computes them from these constants and checks that they tile the buffer.
//
//    Arena records are 8-byte aligned and never wrap:
//      record := recordBytes: u32 | kind: u32 (SbcRecord) | fileLo: u32 | fileHi: u32
//              | offsetLo: u32 | offsetHi: u32 | payload[payloadBytes] | padding to 8
//    A Pad record only has its first two fields (it may be as short as 8 bytes).

/** Header fields (Int32 index). Written only under the cache lock unless noted. */
export const enum SbcHeader {
  /** The cache mutex (LockState). Alone on the first cache line: every writer CASes it. */
  Lock = 0,
  /** "SBC1", checked by attach(). Written once by create(). */
  Magic = 16,
  /** Layout version; bump when anything in section 5 changes. Written once by create(). */
  Version = 17,
  SlotCount = 18,
  ArenaBytes = 19,
  /** Arena position where the next record goes. */
  ArenaHead = 20,
  /** Arena position of the oldest record: the CLOCK hand. */
  ArenaTail = 21,
  /** Arena bytes between tail and head, including pad and dead records. */
  ArenaUsedBytes = 22,
  /** Sum of payload bytes of live records (stats.bytes). */
  LiveBytes = 23,
  /** Live records (stats.blocks). */
  LiveBlocks = 24,
  Tombstones = 25,
  /** Next statistics stripe to hand out; any thread, Atomics.add on attach. */
  StripeNext = 26,
  /** Counters (wrap mod 2^32): records evicted by CLOCK, records given a second chance (moved). */
  Evictions = 27,
  SecondChances = 28,
  IndexRebuilds = 29,
  Fields = 32,
}
export const SBC_HEADER_BYTES = SbcHeader.Fields * 4;
export const SBC_MAGIC = 0x31434253; // "SBC1" little-endian
export const SBC_LAYOUT_VERSION = 1;

/** Statistics stripes: each thread's instance adds to its own 64-byte line to avoid contention. */
export const SBC_STRIPES_BYTE = SBC_HEADER_BYTES;
export const SBC_STRIPE_COUNT = 16;
export const SBC_STRIPE_BYTES = 64;
/** Int32 fields of a stripe; 64-bit counters are (low, high) uint32 pairs. */
export const enum SbcStripe {
  HitsLow = 0,
  HitsHigh = 1,
  MissesLow = 2,
  MissesHigh = 3,
  /** Inserts dropped because the lock was busy (main thread) or the block too large. */
  InsertsSkipped = 4,
  /** Lock-free reads that saw the entry change and retried. */
  ReadRetries = 5,
  Fields = 16,
}
export const SBC_FIXED_BYTES = SBC_STRIPES_BYTE + SBC_STRIPE_COUNT * SBC_STRIPE_BYTES;

/** Index slot fields (Int32 index within a slot). */
export const enum SbcSlot {
  /** Seqlock: odd while a writer changes the slot or moves its record; bumped by 2 per change. */
  Seq = 0,
  /** SbcSlotState. */
  State = 1,
  FileLow = 2,
  FileHigh = 3,
  OffsetLow = 4,
  OffsetHigh = 5,
  /** Arena position of the record header. */
  RecordPos = 6,
  PayloadBytes = 7,
  Fields = 8,
}
export const SBC_SLOT_BYTES = SbcSlot.Fields * 4;
export const enum SbcSlotState {
  Empty = 0,
  Live = 1,
  Tombstone = 2,
}
/** Arena record kinds. DO NOT RENUMBER. */
export const enum SbcRecord {
  /** Dead records (evicted or replaced) stay in the log until the CLOCK hand passes them. */
  Dead = 0,
  Live = 1,
  /** Fills the arena's end when the next record does not fit before it. */
  Pad = 2,
}
export const SBC_RECORD_HEADER_BYTES = 24;
export const SBC_PAD_HEADER_BYTES = 8;
export const SBC_RECORD_ALIGN_BYTES = 8;
/** Record header fields (Uint32 index from the record's start). */
export const enum SbcRecordField {
  RecordBytes = 0,
  Kind = 1,
  FileLow = 2,
  FileHigh = 3,
  OffsetLow = 4,
  OffsetHigh = 5,
}
export const SBC_CAPACITY_BYTES_MIN = 64 * 1024;
/** Positions are Int32 fields, and one SharedArrayBuffer holds it all: stay well below 2 GiB. */
export const SBC_CAPACITY_BYTES_MAX = 1024 * 1024 * 1024;
/** One slot per this many arena bytes (rounded up to a power of two). */
export const SBC_ARENA_BYTES_PER_SLOT = 1024;
export const SBC_SLOT_COUNT_MIN = 64;
/** Live records are capped at slotCount / 2; live + tombstones at 3/4 triggers an index rebuild. */
export const SBC_LIVE_SLOTS_DIVISOR = 2;
/** A block larger than arenaBytes / this is not cached (it would flush most of the cache). */
export const SBC_PAYLOAD_FRACTION_DIVISOR = 8;
