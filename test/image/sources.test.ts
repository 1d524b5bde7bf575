import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHangarError } from '../../src/errors.js';
import { aptListsReleaseName, chooseDebianMirror, findHostMirror, parseDeb822Sources, parseOneLineSources } from '../../src/image/sources.js';

// Host names below are fake (.example / .test): the parser must never depend on a particular registry host.
const ONE_LINE = `# a comment
deb http://mirror.example.test/debian bookworm main contrib
deb-src http://mirror.example.test/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/cloud.example.gpg] https://packages.cloud.example/apt cloud-sdk-bookworm main
deb [signed-by=/usr/share/keyrings/nodesource.gpg] https://deb.nodesource.example/node_18.x bookworm main
deb http://security.example.test/debian-security bookworm-security main # trailing comment
`;

const DEB822 = `Types: deb
URIs: https://deb.nodesource.example/node_20.x
Suites: nodistro
Components: main
Signed-By: /usr/share/keyrings/nodesource.gpg

Types: deb deb-src
# an inline comment line
URIs: http://ftp.example.test/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://disabled.example.test/debian
Suites: bookworm
Components: main
Enabled: no
`;

test('one-line sources: options, comments, deb-src and components', () => {
  const s = parseOneLineSources(ONE_LINE, 'sources.list');
  assert.equal(s.length, 5);
  assert.deepEqual(s[0], { types: ['deb'], uris: ['http://mirror.example.test/debian'], suites: ['bookworm'], components: ['main', 'contrib'], signedBy: undefined, enabled: true, file: 'sources.list' });
  assert.equal(s[2]!.signedBy, '/usr/share/keyrings/cloud.example.gpg');
  assert.deepEqual(s[4]!.components, ['main']);
});

test('deb822 sources: stanzas, multi-value fields, Enabled: no', () => {
  const s = parseDeb822Sources(DEB822, 'debian.sources');
  assert.equal(s.length, 3);
  assert.deepEqual(s[1]!.types, ['deb', 'deb-src']);
  assert.deepEqual(s[1]!.suites, ['bookworm', 'bookworm-updates']);
  assert.equal(s[2]!.enabled, false);
});

test('mirror choice skips third-party repositories, even one reusing "bookworm main" with its own keyring', () => {
  const thirdPartyFirst = parseOneLineSources(ONE_LINE).slice(2, 4); // cloud + nodesource only
  assert.throws(() => chooseDebianMirror(thirdPartyFirst, 'bookworm'), (e) => isHangarError(e, 'NO_APT_MIRROR'));
  const m = chooseDebianMirror([...thirdPartyFirst, ...parseOneLineSources(ONE_LINE)], 'bookworm');
  assert.equal(m.uri, 'http://mirror.example.test/debian');
  assert.match(m.evidence, /\/debian/);
  const d = chooseDebianMirror(parseDeb822Sources(DEB822), 'bookworm');
  assert.equal(d.uri, 'http://ftp.example.test/debian');
  assert.match(d.evidence, /debian-archive-keyring/);
});

test('an apt Release file decides: Origin other than Debian is rejected even with a /debian path', () => {
  const s = parseOneLineSources('deb http://other.example.test/debian bookworm main\ndeb http://mirror.example.test/debian bookworm main\n');
  const m = chooseDebianMirror(s, 'bookworm', (u) => (u.includes('other') ? 'Someone Else' : 'Debian'));
  assert.equal(m.uri, 'http://mirror.example.test/debian');
});

test('NO_APT_MIRROR when nothing serves the suite', () => {
  assert.throws(() => chooseDebianMirror(parseDeb822Sources(DEB822), 'trixie'), (e) => isHangarError(e, 'NO_APT_MIRROR'));
  assert.throws(() => chooseDebianMirror([], 'bookworm'), (e) => isHangarError(e, 'NO_APT_MIRROR'));
});

test('apt lists file name follows apt (scheme dropped, slashes to underscores)', () => {
  assert.equal(aptListsReleaseName('http://mirror.example.test/debian/', 'bookworm', 'InRelease'), 'mirror.example.test_debian_dists_bookworm_InRelease');
});

test('reading a host layout: sources.list, .list and .sources files, other suffixes ignored', async () => {
  const root = await mkdtemp(join(tmpdir(), 'hangar-apt-'));
  try {
    await mkdir(join(root, 'etc/apt/sources.list.d'), { recursive: true });
    await mkdir(join(root, 'lists'));
    await writeFile(join(root, 'etc/apt/sources.list'), '# empty\n');
    await writeFile(join(root, 'etc/apt/sources.list.d/cloud.list'), 'deb https://packages.cloud.example/apt cloud-sdk-bookworm main\n');
    await writeFile(join(root, 'etc/apt/sources.list.d/off.list.disabled'), 'deb http://ignored.example.test/debian bookworm main\n');
    await writeFile(join(root, 'etc/apt/sources.list.d/debian.sources'), DEB822);
    await writeFile(join(root, 'lists', 'ftp.example.test_debian_dists_bookworm_InRelease'), 'Origin: Debian\nLabel: Debian\n');
    const m = await findHostMirror('bookworm', join(root, 'etc/apt'), join(root, 'lists'));
    assert.equal(m.uri, 'http://ftp.example.test/debian');
    assert.match(m.evidence, /Origin: Debian/);
    assert.match(m.file, /debian\.sources$/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
