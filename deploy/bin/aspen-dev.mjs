#!/usr/bin/env node
// aspen-dev launcher. Plain Node with no dependencies, so that on a fresh clone it can
// install the project's npm packages first (`npm ci`), then run the TypeScript entry point.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
if (!existsSync(join(root, 'node_modules', 'tsx')) || !existsSync(join(root, 'node_modules', 'better-sqlite3', 'build'))) {
  process.stderr.write('aspen-dev: installing npm packages (npm ci; better-sqlite3 compiles from source, ~1 min)…\n');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write('aspen-dev: npm ci failed; see above\n');
    process.exit(r.status ?? 1);
  }
}
const { register } = await import('tsx/esm/api');
register();
await import('../src/bin/aspen-dev.ts');
