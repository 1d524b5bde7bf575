// Debian's own kernel configs, from the package linux-config-6.1 (installed by scripts/install-deps.sh): real configs
// no one on this project wrote. Tests skip with a reason when the package is absent.
import { existsSync } from 'node:fs';
import { run } from '../../src/util/exec.js';

export const DEBIAN_CONFIG_DIR = '/usr/src/linux-config-6.1';
export type DebianFlavour = 'amd64' | 'cloud-amd64';

export const debianConfigPath = (flavour: DebianFlavour): string => `${DEBIAN_CONFIG_DIR}/config.amd64_none_${flavour}.xz`;

/** Why the Debian configs cannot be used here, or false when they can. */
export function skipUnlessDebianConfigs(): string | false {
  for (const f of ['amd64', 'cloud-amd64'] as const) {
    if (!existsSync(debianConfigPath(f))) return `${debianConfigPath(f)} is absent (apt-get install linux-config-6.1, see scripts/install-deps.sh)`;
  }
  return false;
}

/** The decompressed text of a Debian config. */
export async function debianConfigText(flavour: DebianFlavour): Promise<string> {
  return (await run('xz', ['-dc', debianConfigPath(flavour)], { maxBuffer: 64 * 1024 * 1024 })).stdout;
}
