// `hangar image build` and `hangar image ls`.
import { buildImage, listImages, PROFILES, type Profile } from '../image/index.js';
import { createProgress, progressModeFromEnv } from '../util/progress.js';
import { oneOf } from '../util/validate.js';
import { table, type Command } from './command.js';

const mib = (n: number): string => `${(n / 2 ** 20).toFixed(0)} MiB`;

export const commands: Command[] = [
  {
    path: ['image', 'build'],
    summary: 'Build (or reuse from the cache) the guest kernel + Debian desktop rootfs image',
    usage: '[--profile desktop|browser] [--out DIR] [--json] [--quiet] [--install-deps] [--force]',
    options: {
      profile: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean' },
      'install-deps': { type: 'boolean' },
      force: { type: 'boolean' },
    },
    run: async ({ values }, io) => {
      const profile = oneOf(values.profile ?? 'desktop', 'profile', PROFILES) as Profile;
      const quiet = values.quiet === true;
      const progress = createProgress(progressModeFromEnv({ quiet }));
      const r = await buildImage({
        profile,
        ...(typeof values.out === 'string' ? { outDir: values.out } : {}),
        force: values.force === true,
        installDeps: values['install-deps'] === true,
        progress,
        handleSignals: true,
      });
      if (values.json) {
        const { manifest, ...rest } = r;
        io.out(JSON.stringify({ ...rest, manifest }) + '\n');
      } else {
        io.out(`${r.cached ? 'up to date' : 'built'}: ${r.id} (${r.profile}, kernel ${r.kernelVersion})\n`);
        io.out(`  kernel  ${r.kernelPath} (${mib(r.sizes.vmlinux)})\n  rootfs  ${r.rootfsPath} (${mib(r.sizes.rootfs)})\n  manifest ${r.manifestPath}\n`);
        io.out(`  ${(r.totalMs / 1000).toFixed(1)} s${r.cached ? '' : ` (kernel ${r.built.kernel ? 'built' : 'reused'}, rootfs ${r.built.rootfs ? 'built' : 'reused'})`}\n`);
      }
      return 0;
    },
  },
  {
    path: ['image', 'ls'],
    summary: 'List the built images',
    usage: '[--json]',
    options: { json: { type: 'boolean' } },
    run: async ({ values }, io) => {
      const images = await listImages();
      if (values.json) {
        io.out(JSON.stringify(images.map(({ manifest: _m, ...i }) => i)) + '\n');
        return 0;
      }
      if (!images.length) {
        io.out('no images (build one with: hangar image build)\n');
        return 0;
      }
      io.out(table(['ID', 'PROFILE', 'KERNEL', 'VMLINUX', 'ROOTFS', 'CREATED'],
        images.map((i) => [i.id, i.profile, i.kernelVersion, mib(i.sizes.vmlinux), mib(i.sizes.rootfs), i.created])));
      return 0;
    },
  },
];
