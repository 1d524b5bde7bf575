#!/usr/bin/env node
// Runs the compiled tests with Node's test runner, one file at a time: integration tests (*.int.test.js: real
// QEMU boots under TCG, namespaces, Chromium) share two cores, and unit files are quick. Unit files run first.
// HANGAR_TEST_FILTER=substring narrows the files.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

const filter = process.env.HANGAR_TEST_FILTER;
const all = walk('dist/test').filter((f) => !filter || f.includes(filter));
const unit = all.filter((f) => !f.endsWith('.int.test.js'));
const integration = all.filter((f) => f.endsWith('.int.test.js'));
const files = [...unit, ...integration];
if (files.length === 0) {
  console.error('no test files found (did the build run?)');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--enable-source-maps', '--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
