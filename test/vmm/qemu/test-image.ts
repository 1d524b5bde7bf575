// Finds a built desktop image for boot tests: HANGAR_TEST_IMAGE (an image directory), else the newest directory
// under the images dir whose manifest.json says profile "desktop". Null (with the reason) when there is none.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { resolvePaths } from '../../../src/config.js';

export interface TestImage {
  dir: string;
  id: string;
  kernel: string;
  rootfs: string;
  /** The image's own base command line (without ip=), when its manifest records one. */
  cmdline?: string;
}

function load(dir: string): TestImage | string {
  const manifestPath = join(dir, 'manifest.json');
  if (!existsSync(manifestPath)) return `${dir} has no manifest.json`;
  let m: { id?: string; profile?: string; guest?: { cmdline?: string } };
  try {
    m = JSON.parse(readFileSync(manifestPath, 'utf8')) as typeof m;
  } catch (e) {
    return `${manifestPath} is not JSON: ${(e as Error).message}`;
  }
  const kernel = join(dir, 'vmlinux');
  const rootfs = join(dir, 'rootfs.ext4');
  if (!existsSync(kernel) || !existsSync(rootfs)) return `${dir} lacks vmlinux or rootfs.ext4`;
  const img: TestImage = { dir, id: m.id ?? dir, kernel, rootfs };
  if (m.guest?.cmdline) img.cmdline = m.guest.cmdline;
  return m.profile === 'desktop' ? img : `${dir} is profile ${JSON.stringify(m.profile)}, not desktop`;
}

export function findTestImage(env: NodeJS.ProcessEnv = process.env): { image: TestImage } | { reason: string } {
  if (env.HANGAR_TEST_IMAGE) {
    const r = load(env.HANGAR_TEST_IMAGE);
    return typeof r === 'string' ? { reason: `HANGAR_TEST_IMAGE: ${r}` } : { image: r };
  }
  const root = resolvePaths(env).imagesDir;
  let dirs: string[];
  try {
    dirs = readdirSync(root).map((d) => join(root, d)).filter((d) => statSync(d).isDirectory());
  } catch {
    return { reason: `no image: ${root} does not exist (build one with the image pipeline, or set HANGAR_TEST_IMAGE)` };
  }
  const images = dirs.map(load).filter((r): r is TestImage => typeof r !== 'string');
  images.sort((a, b) => statSync(join(b.dir, 'manifest.json')).mtimeMs - statSync(join(a.dir, 'manifest.json')).mtimeMs);
  return images[0] ? { image: images[0] } : { reason: `no desktop image with a manifest.json under ${root} (set HANGAR_TEST_IMAGE to an image directory)` };
}
