// hangar-agent in the image build: its sources are part of the rootfs key, the real sources compile cleanly with
// the build's flags, and a compiler error fails the build with IMAGE_BUILD_FAILED naming the error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHangarError } from '../../src/errors.js';
import { AGENT_PATH } from '../../src/guest-protocol.js';
import { agentGccArgv, compilerErrors, installAgent, readAgentSources } from '../../src/image/agent-build.js';
import { readImageData } from '../../src/image/build.js';
import { cacheKey, rootfsInputs } from '../../src/image/plan.js';
import { AGENT_SRC } from '../support/agent-binary.js';

const noGcc = spawnSync('gcc', ['--version']).status !== 0 && 'gcc is not installed';

test('the agent sources are an input of the rootfs key: a change to one rebuilds the image', async () => {
  const data = await readImageData();
  assert.ok(data.agentSources && data.agentSources.some((s) => s.name === 'main.c'));
  const base = cacheKey(rootfsInputs('desktop', data.guestFiles, data.agentSources));
  const changed = data.agentSources!.map((s) => (s.name === 'main.c' ? { ...s, content: `${s.content}\n/* changed */\n` } : s));
  assert.notEqual(cacheKey(rootfsInputs('desktop', data.guestFiles, changed)), base);
  assert.ok(!data.guestFiles.some((f) => f.name === 'agent'), 'the source directory is not a guest file');
});

test('gcc argv: static, C11 with GNU extensions, every warning an error, only .c files compiled', () => {
  const argv = agentGccArgv('/src', ['agent.h', 'main.c', 'conn.c'], '/out/hangar-agent');
  assert.deepEqual(argv.slice(0, 6), ['-std=gnu11', '-Wall', '-Wextra', '-Werror', '-O2', '-static']);
  assert.ok(argv.includes('/src/main.c') && argv.includes('/src/conn.c') && !argv.includes('/src/agent.h'));
  assert.deepEqual(compilerErrors("x.c:3:1: error: expected ';'\nnote: y\nld: undefined reference to `foo'\n"), ["x.c:3:1: error: expected ';'", "ld: undefined reference to `foo'"]);
});

test('the real sources compile into the rootfs at AGENT_PATH; a broken one is IMAGE_BUILD_FAILED naming the error', { skip: noGcc }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-agent-build-'));
  try {
    const sources = await readAgentSources(AGENT_SRC);
    await installAgent(join(dir, 'root'), join(dir, 'src'), sources);
    assert.ok(statSync(join(dir, 'root', AGENT_PATH)).mode & 0o100);
    const broken = sources.map((s) => (s.name === 'json.c' ? { ...s, content: `${s.content}\nint oops(void) { return nope; }\n` } : s));
    await assert.rejects(installAgent(join(dir, 'root2'), join(dir, 'src2'), broken), (e: unknown) =>
      isHangarError(e, 'IMAGE_BUILD_FAILED') && /json\.c.*nope/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
