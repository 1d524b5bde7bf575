// The guest mount script's Chromium handling (src/volume/plan.ts GUEST_SCRIPT), run for real by dash in a PID and
// mount namespace of its own (root), with a FAKE Chromium (a script named chromium: its comm is "chromium"), so no
// other Chromium on the host is ever seen or signalled. The disk part needs a guest's /sys/block, so the script's
// helpers run on their own: everything before its final `case` (with the action `release`, which waits for no disk).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GUEST_SCRIPT } from '../../src/volume/plan.js';
import { run } from '../../src/util/exec.js';
import { skipUnlessRoot } from '../support/env.js';

const skip = skipUnlessRoot();
const helpers = GUEST_SCRIPT.slice(0, GUEST_SCRIPT.indexOf('case "$action" in'));

test('a Chromium whose profile is under the mount point is stopped gracefully and started again with its argv, user and environment; another is left alone', { skip, timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-gscript-'));
  try {
    chmodSync(dir, 0o755);
    const fake = join(dir, 'chromium');
    // Logs its start (argv, HOME, uid) and a graceful stop to a file anyone may append to.
    writeFileSync(fake, `#!/bin/sh\ntrap 'echo "term $$" >>${dir}/log; exit 0' TERM\necho "start $$ uid=$(id -u) HOME=$HOME $*" >>${dir}/log\nwhile :; do sleep 0.1; done\n`);
    chmodSync(fake, 0o755);
    writeFileSync(join(dir, 'log'), '');
    chmodSync(join(dir, 'log'), 0o666);
    const harness = [
      'mount -t tmpfs tmpfs /run && mkdir -p /run/hangar',
      `setpriv --reuid=65534 --regid=65534 --clear-groups env -i HOME=${dir}/home PATH=/usr/bin:/bin ${fake} --no-first-run about:blank &`,
      'while ! grep -q start "$LOG"; do sleep 0.05; done',
      `dash -c "$HELPERS"'\nfind_browser; echo "other=$browser"' hangar-volume hvol0 ${dir}/elsewhere rw release`,
      `dash -c "$HELPERS"'\nfind_browser; echo "found=$browser"; stop_browser; echo stopped; start_browser; echo restarted' hangar-volume hvol0 ${dir}/home/.config/chromium rw release`,
      'while [ "$(grep -c start "$LOG")" -lt 2 ]; do sleep 0.05; done',
    ].join('\n');
    const r = await run('unshare', ['--pid', '--fork', '--mount', '--mount-proc', 'bash', '--norc', '-c', harness], {
      timeoutMs: 50_000, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HELPERS: helpers, LOG: join(dir, 'log') },
    });
    const lines = readFileSync(join(dir, 'log'), 'utf8').trim().split('\n');
    assert.match(r.stdout, /^other=$/m, 'a profile elsewhere: not this mount\'s browser');
    assert.match(r.stdout, /^found=\d+$/m);
    assert.match(r.stdout, /stopped\nrestarted/);
    assert.equal(lines.length, 3, lines.join('\n'));
    const [first, term, second] = lines as [string, string, string];
    assert.match(term, /^term \d+$/, 'stopped with SIGTERM (Chromium writes its cookies and closes its profile)');
    const strip = (l: string): string => l.replace(/^start \d+ /, '');
    assert.equal(strip(second), strip(first), 'the same argv, user and HOME');
    assert.match(first, new RegExp(`^start \\d+ uid=65534 HOME=${dir}/home --no-first-run about:blank$`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
