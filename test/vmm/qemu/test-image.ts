// The desktop image for boot tests: HANGAR_TEST_IMAGE (an image directory), else the newest desktop image in the
// image cache — read through the image store itself. The reason comes back when there is none.
import { readImage, resolveImage } from '../../../src/image/store.js';

export interface TestImage {
  dir: string;
  id: string;
  kernel: string;
  rootfs: string;
  /** The image's own base command line (without ip=). */
  cmdline: string;
}

export async function findTestImage(env: NodeJS.ProcessEnv = process.env): Promise<{ image: TestImage } | { reason: string }> {
  try {
    const i = env.HANGAR_TEST_IMAGE ? await readImage(env.HANGAR_TEST_IMAGE) : await resolveImage('desktop');
    if (i.profile !== 'desktop') return { reason: `${i.dir} is profile ${i.profile}, not desktop` };
    return { image: { dir: i.dir, id: i.id, kernel: i.kernelPath, rootfs: i.rootfsPath, cmdline: i.manifest.guest.cmdline } };
  } catch (e) {
    return { reason: `no desktop image (${(e as Error).message}): build one with 'hangar image build', or set HANGAR_TEST_IMAGE` };
  }
}
