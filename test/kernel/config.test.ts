import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  compareVersions, configFrom, describeOption, isBuiltin, isEnabled, isModule, kernelVersionInfo, looksLikeConfig,
  optionValue, parseConfig, parseVersion, seriesOf, withOptions,
} from '../../src/kernel/config.js';
import { SHARED, skipUnlessShared } from '../support/env.js';

test('parseConfig reads values, "is not set" lines, quoted strings and the header', () => {
  const cfg = parseConfig([
    '#',
    '# Automatically generated file; DO NOT EDIT.',
    '# Linux/x86 6.1.192 Kernel Configuration',
    '#',
    'CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"',
    'CONFIG_VIRTIO=y',
    'CONFIG_VIRTIO_BLK=m',
    '# CONFIG_IP_PNP is not set',
    'CONFIG_NR_CPUS=64',
    'CONFIG_CMDLINE="console=\\"x\\""',
    'CONFIG_PHYSICAL_START=0x1000000\r',
    '# a comment mentioning CONFIG_FOO=y',
    'CONFIG_BROKEN',
    '',
  ].join('\n'));
  assert.equal(cfg.version, '6.1.192');
  assert.equal(cfg.headerArch, 'x86');
  assert.equal(optionValue(cfg, 'VIRTIO'), 'y');
  assert.equal(optionValue(cfg, 'CONFIG_VIRTIO_BLK'), 'm');
  assert.equal(optionValue(cfg, 'IP_PNP'), 'n');
  assert.equal(optionValue(cfg, 'NEVER_MENTIONED'), 'n', 'absent means n');
  assert.equal(optionValue(cfg, 'CC_VERSION_TEXT'), 'gcc (Debian 12.2.0-14) 12.2.0');
  assert.equal(optionValue(cfg, 'NR_CPUS'), '64');
  assert.equal(optionValue(cfg, 'CMDLINE'), 'console="x"');
  assert.equal(optionValue(cfg, 'PHYSICAL_START'), '0x1000000', 'CRLF line endings are tolerated');
  assert.equal(cfg.options.has('FOO'), false, 'comments are not options');
  assert.equal(cfg.malformed, 1);
  assert.ok(isBuiltin(cfg, 'VIRTIO') && !isModule(cfg, 'VIRTIO'));
  assert.ok(isModule(cfg, 'VIRTIO_BLK') && isEnabled(cfg, 'VIRTIO_BLK') && !isBuiltin(cfg, 'VIRTIO_BLK'));
  assert.ok(!isEnabled(cfg, 'IP_PNP'));
  assert.equal(describeOption(cfg, 'IP_PNP'), 'CONFIG_IP_PNP is not set');
  assert.equal(describeOption(cfg, 'VIRTIO_BLK'), 'CONFIG_VIRTIO_BLK=m');
});

test('x86_64 header variants with a vendor release are read', () => {
  assert.equal(parseConfig('# Linux/x86_64 6.1.167-27.319.amzn2023.x86_64 Kernel Configuration\nCONFIG_X=y\n').version, '6.1.167-27.319.amzn2023.x86_64');
  assert.equal(parseConfig('CONFIG_X=y\n').version, null);
});

test('looksLikeConfig accepts configs and rejects other text', () => {
  assert.ok(looksLikeConfig('CONFIG_X=y\n'));
  assert.ok(looksLikeConfig('# CONFIG_X is not set\n'));
  assert.ok(!looksLikeConfig('hello\nworld\n'));
  assert.ok(!looksLikeConfig('x CONFIG_X=y\n'));
});

test('configFrom and withOptions build and change configs without mutating the original', () => {
  const a = configFrom({ CONFIG_VIRTIO: 'y', PCI: 'n' });
  const b = withOptions(a, { VIRTIO: 'm', CONFIG_IP_PNP: 'y', PCI: undefined });
  assert.equal(optionValue(a, 'VIRTIO'), 'y');
  assert.equal(optionValue(b, 'VIRTIO'), 'm');
  assert.equal(optionValue(b, 'IP_PNP'), 'y');
  assert.equal(b.options.has('PCI'), false);
});

test('versions parse and compare by major.minor.patch', () => {
  assert.deepEqual(parseVersion('6.1.192-2-amd64'), [6, 1, 192]);
  assert.deepEqual(parseVersion('v1.13'), [1, 13, 0]);
  assert.equal(parseVersion('six'), null);
  assert.ok(compareVersions('1.13', '1.9') > 0, '1.13 is newer than 1.9 (not a string compare)');
  assert.ok(compareVersions('4.14.336', '5.10') < 0);
  assert.equal(compareVersions('6.1', '6.1.0'), 0);
  assert.equal(seriesOf('6.1.167-27.319.amzn2023.x86_64'), '6.1');
  assert.equal(seriesOf('x'), null);
});

test('kernelVersionInfo prefers the header, then the banner, then dates a complete config from Kconfig symbols', () => {
  const big = (extra: Record<string, string>): ReturnType<typeof configFrom> =>
    configFrom({ ...Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`OPT_${i}`, 'y'])), ...extra });
  assert.deepEqual(kernelVersionInfo(configFrom({}, '6.1.5'), '5.10.1'), { exact: '6.1.5', min: null, below: null, basis: 'config header' });
  assert.equal(kernelVersionInfo(configFrom({}), '5.10.1').basis, 'version banner');
  assert.deepEqual(kernelVersionInfo(big({}), null), { exact: null, min: null, below: '4.18', basis: 'Kconfig symbols' });
  assert.deepEqual(kernelVersionInfo(big({ CC_IS_GCC: 'y' }), null), { exact: null, min: '4.18', below: '5.8', basis: 'Kconfig symbols' });
  assert.deepEqual(kernelVersionInfo(big({ CC_IS_CLANG: 'y', CC_VERSION_TEXT: 'clang' }), null), { exact: null, min: '5.8', below: null, basis: 'Kconfig symbols' });
  // A fragment proves nothing by what it lacks.
  assert.deepEqual(kernelVersionInfo(configFrom({ VIRTIO: 'y' }), null), { exact: null, min: null, below: null, basis: null });
  assert.deepEqual(kernelVersionInfo(null, null), { exact: null, min: null, below: null, basis: null });
});

test("Firecracker's headerless 4.14 CI config is dated before 4.18", { skip: skipUnlessShared() }, () => {
  const text = readFileSync(join(SHARED!, 'fixtures/firecracker/guest-configs/v1.9.1-microvm-kernel-ci-x86_64-4.14.config'), 'utf8');
  const cfg = parseConfig(text);
  assert.equal(cfg.version, null);
  assert.ok(cfg.options.size > 1000);
  assert.equal(cfg.malformed, 0);
  assert.deepEqual(kernelVersionInfo(cfg, null), { exact: null, min: null, below: '4.18', basis: 'Kconfig symbols' });
});
