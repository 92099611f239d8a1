// Engine adapters. Each open() returns the same small interface the workloads use:
//   batch(ops) put(key, value, sync) get(key) getSync(key) scan() -> count, stats(), close()
// Engines run with their default tuning; only durability and binary encodings are set.
import * as fs from 'node:fs';

const version = (pkg) => JSON.parse(fs.readFileSync(new URL(`../${pkg}/package.json`, import.meta.url), 'utf8')).version;
const SYNC = { sync: true };
const BINARY = { keyEncoding: 'buffer', valueEncoding: 'buffer' };

/** abstract-level databases (StemeDB, classic-level) share one adapter. */
function levelAdapter(db) {
  return {
    batch: (ops) => db.batch(ops),
    put: (key, value, sync) => db.put(key, value, sync ? SYNC : undefined),
    get: (key) => db.get(key),
    getSync: (key) => db.getSync(key),
    async scan() {
      const it = db.iterator();
      let n = 0;
      for (let entries = await it.nextv(1000); entries.length > 0; entries = await it.nextv(1000)) n += entries.length;
      await it.close();
      return n;
    },
    stats: () => (typeof db.stats === 'function' ? db.stats() : undefined),
    close: () => db.close(),
  };
}

export const ENGINES = {
  'stemedb': {
    version: () => version('.'),
    how: 'defaults (4 MiB memtable, 8 MiB block cache, LZ4); durable writes use { sync: true } (group commit)',
    async open(dir) {
      const { StemeDB } = await import('../dist/index.js');
      const db = new StemeDB(dir, BINARY);
      await db.open();
      return levelAdapter(db);
    },
  },
  'classic-level': {
    version: () => version('node_modules/classic-level'),
    how: 'defaults (4 MiB write buffer, 8 MiB cache, snappy); durable writes use { sync: true }',
    async open(dir) {
      const { ClassicLevel } = await import('classic-level');
      const db = new ClassicLevel(dir, BINARY);
      await db.open();
      return levelAdapter(db);
    },
  },
  'lmdb': {
    version: () => version('node_modules/lmdb'),
    how: 'binary encoding, no compression; non-durable runs open with noSync: true; durable runs use the defaults '
      + '(overlappingSync) with separateFlushed, and each put awaits its commit\'s flushed promise; '
      + 'batches are one db.batch() callback; async reads use getAsync, sync reads get; readseq uses getRange',
    async open(dir, { durable }) {
      const { open } = await import('lmdb');
      const db = open({ path: dir, keyEncoding: 'binary', encoding: 'binary', noSync: !durable, separateFlushed: durable });
      return {
        batch: (ops) => db.batch(() => { for (const op of ops) db.put(op.key, op.value); }),
        async put(key, value, sync) {
          const committed = db.put(key, value);
          await committed;
          if (sync) await committed.flushed;
        },
        get: (key) => db.getAsync(key),
        getSync: (key) => db.get(key),
        async scan() {
          let n = 0;
          for (const entry of db.getRange()) if (entry.value) n++;
          return n;
        },
        stats: () => undefined,
        close: () => db.close(),
      };
    },
  },
};
