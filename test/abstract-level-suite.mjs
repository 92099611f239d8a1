// The Level ecosystem's own compliance suite (abstract-level/test, driven by tape), run
// against StemeDB. Every factory call opens a fresh database under one temp directory.
import test from 'tape';
import suite from 'abstract-level/test/index.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StemeDB } from '../dist/index.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'stemedb-suite-'));
let counter = 0;
test.onFinish(() => fs.rmSync(root, { recursive: true, force: true }));
suite({
  test,
  factory(options) {
    return new StemeDB(path.join(root, String(counter++)), options);
  },
});
