// Threads: any, but one cache per thread (plain JS heap; not shared between threads yet).
//
// A bounded LRU of decoded blocks (decompressed and checksum-verified before insertion),
// keyed by (fileNumber, blockOffset) and charged by decoded bytes. Blocks are immutable, so a
// block evicted while an iterator still holds it stays valid for that iterator.
// Invariant: bytes = sum of charges of cached blocks <= capacityBytes after every call.

import { assert } from '../common/assert.js';
import type { Block } from './block.js';

interface Node {
  fileNumber: number;
  offset: number;
  block: Block;
  charge: number;
  /** Toward the most recently used end. */
  newer: Node | undefined;
  older: Node | undefined;
}

export interface BlockCacheStats {
  capacityBytes: number;
  bytes: number;
  blocks: number;
  hits: number;
  misses: number;
}

export class BlockCache {
  /** fileNumber → blockOffset → node: no string keys on the hot path, and evictFile is cheap. */
  private readonly files = new Map<number, Map<number, Node>>();
  private newest: Node | undefined;
  private oldest: Node | undefined;
  private bytes = 0;
  private blocks = 0;
  private hits = 0;
  private misses = 0;

  constructor(readonly capacityBytes: number) {
    assert(Number.isFinite(capacityBytes) && capacityBytes >= 0, 'cache capacity must be a non-negative number of bytes');
  }

  get(fileNumber: number, offset: number): Block | undefined {
    const node = this.files.get(fileNumber)?.get(offset);
    if (node === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    if (node !== this.newest) {
      this.unlink(node);
      this.pushNewest(node);
    }
    return node.block;
  }

  /** Caches block unless it alone exceeds the capacity; replaces an existing entry for the key. */
  insert(fileNumber: number, offset: number, block: Block, charge: number = block.charge): void {
    const existing = this.files.get(fileNumber)?.get(offset);
    if (existing !== undefined) this.remove(existing);
    if (charge > this.capacityBytes) return;
    // Looked up after remove(), which drops a file's map once it is empty.
    let perFile = this.files.get(fileNumber);
    if (perFile === undefined) {
      perFile = new Map();
      this.files.set(fileNumber, perFile);
    }
    const node: Node = { fileNumber, offset, block, charge, newer: undefined, older: undefined };
    perFile.set(offset, node);
    this.pushNewest(node);
    this.bytes += charge;
    this.blocks++;
    while (this.bytes > this.capacityBytes && this.oldest !== undefined) this.remove(this.oldest);
  }

  /** Drops every block of a file (called when the table is deleted or closed for good). */
  evictFile(fileNumber: number): void {
    const perFile = this.files.get(fileNumber);
    if (perFile === undefined) return;
    for (const node of perFile.values()) {
      this.unlink(node);
      this.bytes -= node.charge;
      this.blocks--;
    }
    this.files.delete(fileNumber);
  }

  clear(): void {
    this.files.clear();
    this.newest = this.oldest = undefined;
    this.bytes = 0;
    this.blocks = 0;
  }

  get stats(): BlockCacheStats {
    return { capacityBytes: this.capacityBytes, bytes: this.bytes, blocks: this.blocks, hits: this.hits, misses: this.misses };
  }

  private remove(node: Node): void {
    this.unlink(node);
    const perFile = this.files.get(node.fileNumber)!;
    perFile.delete(node.offset);
    if (perFile.size === 0) this.files.delete(node.fileNumber);
    this.bytes -= node.charge;
    this.blocks--;
  }

  private unlink(node: Node): void {
    if (node.newer) node.newer.older = node.older;
    else this.newest = node.older;
    if (node.older) node.older.newer = node.newer;
    else this.oldest = node.newer;
    node.newer = node.older = undefined;
  }

  private pushNewest(node: Node): void {
    node.older = this.newest;
    node.newer = undefined;
    if (this.newest) this.newest.newer = node;
    this.newest = node;
    if (this.oldest === undefined) this.oldest = node;
  }
}
