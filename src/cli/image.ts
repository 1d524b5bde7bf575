// `hangar image build|ls|rm|prune`.
import { resolvePaths } from '../config.js';
import { buildImage, listImages, PROFILES, resolveImage, type Profile } from '../image/index.js';
import { assertNoBuildRunning, listArtifacts, planPrune, readImageUsers, reclaimableBytes, removeArtifacts, removeImage, unusedArtifacts } from '../image/prune.js';
import { createProgress, progressModeFromEnv } from '../util/progress.js';
import { oneOf, validInt } from '../util/validate.js';
import { jsonOption, need, table, type Command } from './command.js';

const mib = (n: number): string => `${(n / 2 ** 20).toFixed(0)} MiB`;

export const commands: Command[] = [
  {
    path: ['image', 'build'],
    summary: 'Build (or reuse from the cache) the guest kernel + Debian desktop rootfs image',
    usage: '[--profile desktop|browser] [--out DIR] [--json] [--quiet] [--install-deps] [--force]',
    options: {
      profile: { type: 'string', arg: 'NAME', description: `what the image runs: ${PROFILES.join(' or ')} (default desktop)` },
      out: { type: 'string', arg: 'DIR', description: 'publish the image in DIR instead of HANGAR_IMAGES_DIR' },
      ...jsonOption,
      quiet: { type: 'boolean', description: 'no progress on stderr (also HANGAR_QUIET=1)' },
      'install-deps': { type: 'boolean', description: 'apt-get install the build tools that are missing (root)' },
      force: { type: 'boolean', description: 'rebuild even when the cache has this image' },
    },
    details: 'The kernel and root filesystem are cached by their inputs: a second build of the same inputs takes seconds.',
    examples: ['hangar image build', 'hangar image build --profile browser --quiet --json'],
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
    options: jsonOption,
    examples: ['hangar image ls', 'hangar image ls --json'],
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
  {
    path: ['image', 'rm'],
    summary: 'Delete an image (refused while a VM or snapshot uses it)',
    usage: 'ID|PREFIX|PROFILE [--json]',
    args: [{ name: 'ID', description: 'the image: its id, a unique prefix of it, or a profile (its newest image)' }],
    options: jsonOption,
    examples: ['hangar image rm desktop-0123', 'hangar image ls'],
    run: async ({ values, positionals }, io) => {
      const paths = resolvePaths();
      const image = await resolveImage(need(positionals, 'image id'), paths);
      const freed = await reclaimableBytes([image.dir]);
      await removeImage(image, await readImageUsers(paths), paths);
      io.out(values.json ? JSON.stringify({ id: image.id, deleted: true, freedBytes: freed }) + '\n'
        : `deleted ${image.id} (freed ${mib(freed)}; its build-cache artifacts go with: hangar image prune --artifacts)\n`);
      return 0;
    },
  },
  {
    path: ['image', 'prune'],
    summary: 'Delete old images: per profile the N newest stay (default 1), and every image a VM or snapshot uses; --artifacts also empties the build cache of what no remaining image uses',
    usage: '[--keep N] [--artifacts] [--dry-run] [--json]',
    options: {
      keep: { type: 'string', arg: 'N', int: true, description: 'how many of the newest images of each profile stay (default 1)' },
      artifacts: { type: 'boolean', description: 'also delete the build cache (kernels, root filesystems) no remaining image uses' },
      'dry-run': { type: 'boolean', description: 'print what would go, delete nothing' },
      ...jsonOption,
    },
    examples: ['hangar image prune --dry-run', 'hangar image prune --artifacts --keep 2'],
    run: async ({ values }, io) => {
      const keep = validInt(values.keep === undefined ? 1 : Number(values.keep), '--keep', 0, 1000);
      const paths = resolvePaths();
      const users = await readImageUsers(paths);
      const plan = planPrune(await listImages(paths), keep, users);
      const artifacts = values.artifacts ? unusedArtifacts(await listArtifacts(paths), plan.keep.map((k) => k.image)) : [];
      const dry = values['dry-run'] === true;
      const freed = await reclaimableBytes([...plan.remove.map((i) => i.dir), ...artifacts.map((a) => a.dir)]);
      if (!dry) {
        if (values.artifacts) await assertNoBuildRunning(paths); // before anything goes, not halfway
        for (const image of plan.remove) await removeImage(image, users, paths);
        await removeArtifacts(artifacts, paths);
      }
      if (values.json) {
        io.out(JSON.stringify({
          dryRun: dry, removed: plan.remove.map((i) => i.id), kept: plan.keep.map((k) => ({ id: k.image.id, reason: k.reason })),
          artifacts: artifacts.map((a) => `${a.kind}/${a.key}`), freedBytes: freed,
        }) + '\n');
        return 0;
      }
      const verb = dry ? 'would delete' : 'deleted';
      const rows = [
        ...plan.remove.map((i) => [i.id, i.profile, i.created, verb]),
        ...plan.keep.map((k) => [k.image.id, k.image.profile, k.image.created, `kept: ${k.reason}`]),
        ...artifacts.map((a) => [`${a.kind} artifact ${a.key}`, '', '', verb]),
      ];
      io.out(rows.length ? table(['ID', 'PROFILE', 'CREATED', 'ACTION'], rows) : 'no images\n');
      io.out(`${dry ? 'would free' : 'freed'} ${mib(freed)}${values.artifacts ? '' : ' (image files are hard links into the build cache: --artifacts frees that too)'}\n`);
      return 0;
    },
  },
];
