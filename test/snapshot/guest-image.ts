// A test copy of a built image whose rootfs carries extra /etc/hangar/init.d/ hooks, written with debugfs (no loop
// mount): the resume agent (src/image/guest/resume-agent.sh, for images built before the pipeline installed it) and a
// test-only reporter that prints files the desktop user drops as ~/report-NAME on the console. Lives in a temp dir.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { link } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GUEST_USER } from '../../src/image/plan.js';
import { listImages, resolveImage, type ImageInfo } from '../../src/image/store.js';
import type { ImageSource } from '../../src/vm/manager.js';
import { run } from '../../src/util/exec.js';
import { ROOT } from '../support/env.js';

/** Printed by the reporter hook: `HANGAR-TEST report-NAME <first line of the file>`. */
export const REPORT_MARKER = 'HANGAR-TEST';

const REPORTER = `# TEST ONLY (test/snapshot/guest-image.ts): every half second, prints each ~${GUEST_USER.name}/report-NAME file on
# the console once ("${REPORT_MARKER} report-NAME first-line") and removes it, so a test can read back what it typed.
hangar_test_report() {
  local f l
  mkfifo /run/hangar-test.wait 2>/dev/null
  exec 5<>/run/hangar-test.wait || return 0
  while :; do
    for f in /home/${GUEST_USER.name}/report-*; do
      [ -f "$f" ] || continue
      l=""
      read -r l <"$f"
      [ -n "$l" ] || continue
      echo "${REPORT_MARKER} \${f##*/} $l"
      rm -f "$f"
    done
    read -r -t 0.5 -u 5 _
  done
}
hangar_test_report &
`;

export interface TestGuestImage {
  image: ImageInfo;
  /** An ImageSource that resolves every reference to this image. */
  source: ImageSource;
  remove(): void;
}

async function debugfsWrite(fs: string, from: string, to: string): Promise<void> {
  await run('debugfs', ['-w', '-R', `write ${from} ${to}`, fs], { timeoutMs: 60_000 });
  const check = await run('debugfs', ['-R', `stat ${to}`, fs], { timeoutMs: 60_000, allowFailure: true });
  if (!/Type: regular/.test(check.stdout)) throw new Error(`debugfs did not write ${to} into ${fs}: ${check.stderr}`);
}

export async function makeTestGuestImage(profile = 'desktop'): Promise<TestGuestImage> {
  const real = await resolveImage(profile);
  const dir = mkdtempSync(join(tmpdir(), 'hangar-snapimg-'));
  try {
    const kernelPath = join(dir, 'vmlinux');
    const rootfsPath = join(dir, 'rootfs.ext4');
    await link(real.kernelPath, kernelPath).catch(() => run('cp', [real.kernelPath, kernelPath]));
    await run('cp', ['--reflink=auto', '--sparse=always', real.rootfsPath, rootfsPath], { timeoutMs: 120_000 });
    const reporter = join(dir, 'reporter.sh');
    writeFileSync(reporter, REPORTER);
    // Images built since the pipeline installs the agent have it already.
    const agent = '/etc/hangar/init.d/10-resume-agent.sh';
    const has = await run('debugfs', ['-R', `stat ${agent}`, rootfsPath], { timeoutMs: 60_000, allowFailure: true });
    if (!/Type: (regular|symlink)/.test(has.stdout)) await debugfsWrite(rootfsPath, join(ROOT, 'src/image/guest/resume-agent.sh'), agent);
    await debugfsWrite(rootfsPath, reporter, '/etc/hangar/init.d/50-test-report.sh');
    const image: ImageInfo = { ...real, dir, kernelPath, rootfsPath };
    return {
      image,
      source: { resolve: async () => image, list: async () => [image, ...(await listImages()).filter((i) => i.id !== image.id)] },
      remove: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
