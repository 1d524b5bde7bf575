// A test copy of the newest built image that runs the REAL hangar-agent, for the agent's integration tests and
// bench/agent: images built before the pipeline installed the agent get the binary (compiled from
// src/image/guest/agent/ by test/support/agent-binary.ts) and an /etc/hangar/init.d hook that starts it, written with
// debugfs (no loop mount). The copy's filesystem is grown (resize2fs) so a GiB-sized file fits. It is published in
// a temp images directory: point HANGAR_IMAGES_DIR at `imagesDir`.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { link } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_PATH } from '../../src/guest-protocol.js';
import { GUEST_USER } from '../../src/image/plan.js';
import { resolveImage, type ImageInfo } from '../../src/image/store.js';
import { run } from '../../src/util/exec.js';
import { agentBinary } from './agent-binary.js';

export interface AgentImage {
  image: ImageInfo;
  imagesDir: string;
  remove(): void;
}

const HOOK = `# TEST ONLY (test/support/agent-image.ts): starts hangar-agent in an image built before the init did.
[ -x ${AGENT_PATH} ] && ${AGENT_PATH} --default-user ${GUEST_USER.name} >/run/hangar/agent.log 2>&1 &
`;

async function debugfs(fs: string, cmd: string): Promise<string> {
  return (await run('debugfs', ['-w', '-R', cmd, fs], { timeoutMs: 60_000, allowFailure: true })).stdout;
}

/** The newest image of `profile` with the agent, its disk grown by `growMiB`. */
export async function makeAgentImage(profile = 'desktop', growMiB = 1536): Promise<AgentImage> {
  const bin = agentBinary();
  if ('skip' in bin) throw new Error(bin.skip);
  const real = await resolveImage(profile);
  const imagesDir = mkdtempSync(join(tmpdir(), 'hangar-agentimg-'));
  const dir = join(imagesDir, real.id);
  mkdirSync(dir);
  try {
    copyFileSync(join(real.dir, 'manifest.json'), join(dir, 'manifest.json'));
    await link(real.kernelPath, join(dir, 'vmlinux')).catch(() => run('cp', [real.kernelPath, join(dir, 'vmlinux')]));
    const rootfs = join(dir, 'rootfs.ext4');
    await run('cp', ['--sparse=always', real.rootfsPath, rootfs], { timeoutMs: 120_000 });
    await run('chmod', ['0644', rootfs]);
    await run('truncate', ['-s', `+${growMiB}M`, rootfs]);
    await run('e2fsck', ['-fy', rootfs], { timeoutMs: 120_000, allowFailure: true });
    await run('resize2fs', [rootfs], { timeoutMs: 120_000 });
    if (!/Type: regular/.test(await debugfs(rootfs, `stat ${AGENT_PATH}`))) {
      await debugfs(rootfs, `write ${bin.path} ${AGENT_PATH}`);
      await debugfs(rootfs, `sif ${AGENT_PATH} mode 0100755`);
      const hook = join(imagesDir, 'agent.sh');
      writeFileSync(hook, HOOK);
      await debugfs(rootfs, 'write ' + hook + ' /etc/hangar/init.d/05-test-agent.sh');
      if (!/Type: regular/.test(await debugfs(rootfs, `stat ${AGENT_PATH}`))) throw new Error(`debugfs did not write ${AGENT_PATH}`);
    }
    // The manifest describes the copy: its size and mtime (what readImage checks), its hash left unknown.
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { files: Record<string, { sha256: string; size: number; mtimeMs?: number }> };
    const st = statSync(rootfs);
    manifest.files['rootfs.ext4'] = { sha256: 'test-copy', size: st.size, mtimeMs: st.mtimeMs };
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
    return { image: { ...real, dir, kernelPath: join(dir, 'vmlinux'), rootfsPath: rootfs }, imagesDir, remove: () => rmSync(imagesDir, { recursive: true, force: true }) };
  } catch (e) {
    rmSync(imagesDir, { recursive: true, force: true });
    throw e;
  }
}
