// The console classifier against REAL serial console logs captured from QEMU microvm (TCG) booting the desktop image,
// plus a few synthesised by editing a real log (named synth-*; test/fixtures/console/README.md says how each was made).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { classifyConsole, orderByCause, parseCommandLine, parseIpParam, type ConsoleFinding, type ConsoleReport } from '../../src/doctor/console.js';
import { READY_MARKER } from '../../src/guest-protocol.js';
import { ROOT } from '../support/env.js';

const DIR = join(ROOT, 'test', 'fixtures', 'console');
const load = (name: string): string => readFileSync(join(DIR, name), 'utf8');
const codes = (r: ConsoleReport): string[] => r.findings.map((f) => f.code);
const get = (r: ConsoleReport, code: string): ConsoleFinding => {
  const f = r.findings.find((x) => x.code === code);
  assert.ok(f, `expected ${code} in ${codes(r).join(', ')}`);
  return f;
};

// ---- each fault's real log names its cause first

const FAULTS: { file: string; top: string; check?: (r: ConsoleReport) => void }[] = [
  {
    file: 'wrong-root.log', top: 'CON_ROOT_DEVICE_MISSING',
    check: (r) => {
      assert.match(r.findings[0]!.message, /root=\/dev\/vdb does not exist; the kernel found: vda/);
      assert.equal(r.facts.panic?.kind, 'vfs');
      assert.deepEqual(get(r, 'CON_KERNEL_PANIC').causedBy, ['CON_ROOT_DEVICE_MISSING']);
      // The partition list the kernel printed is part of the evidence.
      assert.ok(r.findings[0]!.evidence.some((e) => /fe00\s+\d+ vda/.test(e.text)));
      assert.ok(r.findings[0]!.evidence.some((e) => e.text.includes('Please append a correct "root=" boot option')));
    },
  },
  {
    file: 'no-disk.log', top: 'CON_NO_BLOCK_DEVICE',
    check: (r) => {
      assert.deepEqual(r.facts.blockDevices, []);
      assert.deepEqual(r.facts.netDevices, ['eth0']);
      assert.match(r.findings[0]!.message, /all bound to other drivers: the VMM attached none/);
      assert.deepEqual(get(r, 'CON_READY_MISSING').causedBy, ['CON_KERNEL_PANIC']);
    },
  },
  {
    file: 'no-devices.log', top: 'CON_NO_BLOCK_DEVICE',
    check: (r) => {
      assert.ok(codes(r).includes('CON_NO_NET_DEVICE'));
      assert.match(r.findings[0]!.message, /declared no virtio-mmio device/);
    },
  },
  {
    file: 'init-missing.log', top: 'CON_INIT_NOT_FOUND',
    check: (r) => {
      assert.equal(r.facts.panic?.kind, 'requested_init');
      assert.match(r.findings[0]!.message, /init=\/sbin\/nope failed with ENOENT/);
    },
  },
  {
    file: 'init-exits.log', top: 'CON_INIT_EXITED',
    check: (r) => {
      assert.equal(r.facts.panic?.kind, 'kill_init');
      assert.deepEqual(r.facts.init, { path: '/bin/true', exitStatus: 0 });
      assert.match(r.findings[0]!.message, /\/bin\/true\) exited normally \(status 0\)/);
    },
  },
  {
    file: 'no-netdev.log', top: 'CON_NO_NET_DEVICE',
    check: (r) => {
      // The 6.1 kernel says nothing: the ~12 s silent device wait is the evidence, not "CONFIG_IP_PNP off".
      assert.ok(!codes(r).includes('CON_IP_CONFIG_MISSING'));
      assert.match(r.findings[0]!.message, /waited 1\d\.\d s for it/);
      assert.ok(codes(r).includes('CON_READY'), 'the desktop still came up');
      assert.ok(!codes(r).includes('CON_GUEST_NET_CHANGED'), '"HANGAR-NET eth0 none" is no re-addressing');
    },
  },
  {
    file: 'reboot-loop.log', top: 'CON_INIT_EXITED',
    check: (r) => {
      assert.equal(r.facts.boots, 4);
      assert.equal(r.facts.analysedBoot, 3, 'the 4th boot was cut short: the last complete one is described');
      assert.deepEqual(get(r, 'CON_REBOOT_LOOP').causedBy, ['CON_KERNEL_PANIC']);
    },
  },
  {
    file: 'mem40-stall.log', top: 'CON_LOW_MEMORY',
    check: (r) => {
      assert.equal(r.facts.memory?.totalKiB, 40568);
      assert.deepEqual(get(r, 'CON_READY_MISSING').causedBy, ['CON_LOW_MEMORY']);
    },
  },
  {
    file: 'vnc-missing.log', top: 'CON_INIT_SCRIPT_ERROR',
    check: (r) => {
      const ready = get(r, 'CON_READY_MISSING');
      assert.match(ready.message, /HANGAR-ERROR vnc-not-ready/);
      assert.deepEqual(ready.causedBy, ['CON_INIT_SCRIPT_ERROR']);
      assert.ok(r.findings[0]!.evidence.some((e) => /x11vnc/.test(e.text)));
    },
  },
  {
    file: 'synth-guest-readdressed.log', top: 'CON_NET_MANAGER',
    check: (r) => {
      const changed = get(r, 'CON_GUEST_NET_CHANGED');
      assert.deepEqual(changed.causedBy, ['CON_NET_MANAGER']);
      assert.match(changed.message, /kernel set 172\.16\.0\.2 from ip= but the init reports 172\.16\.0\.57/);
      assert.deepEqual(r.facts.guestNet?.managers, ['dhclient']);
    },
  },
  { file: 'synth-ip-pnp-off.log', top: 'CON_IP_CONFIG_MISSING', check: (r) => assert.equal(r.findings[0]!.option, 'CONFIG_IP_PNP') },
  {
    file: 'synth-drivers-missing-dma-warning.log', top: 'CON_NO_BLOCK_DEVICE',
    check: (r) => {
      const top = r.findings[0]!;
      // The DMA warning is evidence next to the real cause, never a finding (or cause) of its own.
      assert.ok(top.evidence.some((e) => e.text.includes('Failed to enable 64-bit or 32-bit DMA')));
      assert.match(top.message, /is not the cause/);
      assert.match(top.message, /2 virtio-mmio device\(s\) registered but only 0 bound to a driver/);
      assert.ok(!codes(r).includes('CON_VIRTIO_DMA_WARNING'));
    },
  },
];

for (const c of FAULTS) {
  test(`${c.file}: the top finding is ${c.top}`, () => {
    const r = classifyConsole(load(c.file));
    assert.equal(r.findings[0]?.code, c.top, codes(r).join(', '));
    assert.equal(r.findings[0]!.causedBy, undefined, 'the top finding is a root cause');
    c.check?.(r);
  });
}

test('init-hook-error.log: errors from a sourced init hook are a warning when the desktop still comes up', () => {
  const r = classifyConsole(load('init-hook-error.log'));
  assert.equal(r.ok, true);
  const f = get(r, 'CON_INIT_SCRIPT_ERROR');
  assert.equal(f.severity, 'warning');
  assert.deepEqual(f.evidence.map((e) => e.text), [
    "mount: /srv/share: unknown filesystem type '9p'.",
    '/etc/hangar/init.d/10-site.sh: line 4: setup-printers: command not found',
  ]);
});

// ---- healthy logs

test('healthy.log: no error, READY printed, facts read from the log', () => {
  const r = classifyConsole(load('healthy.log'));
  assert.equal(r.ok, true);
  assert.deepEqual(codes(r), ['CON_READY']);
  assert.equal(r.facts.kernelVersion, '6.1.192');
  assert.deepEqual(r.facts.blockDevices, ['vda']);
  assert.deepEqual(r.facts.netDevices, ['eth0']);
  assert.deepEqual(r.facts.virtioMmioDeclared, ['512@0xfeb00e00:12', '512@0xfeb00c00:11']);
  assert.equal(r.facts.virtioDevices.length, 2);
  assert.deepEqual(r.facts.ipConfig?.configured, { device: 'eth0', address: '172.16.0.2', netmask: '255.255.255.0', gateway: '172.16.0.1' });
  assert.deepEqual(r.facts.guestNet?.reports.map((x) => [x.ifname, x.address]), [['eth0', '172.16.0.2']]);
  assert.equal(r.facts.markers.ready, load('healthy.log').split(/\r?\n/).findIndex((l) => l.startsWith(READY_MARKER)) + 1);
});

test('healthy.log with --expect-ip: the matching address passes, another one is a mismatch', () => {
  assert.equal(classifyConsole(load('healthy.log'), { expectIp: '172.16.0.2' }).ok, true);
  const r = classifyConsole(load('healthy.log'), { expectIp: '172.16.0.9' });
  assert.equal(r.findings[0]?.code, 'CON_IP_MISMATCH');
  assert.match(r.findings[0]!.message, /expects the guest at 172\.16\.0\.9 but the guest has 172\.16\.0\.2/);
});

test('healthy log + the virtio-mmio DMA warning: one info finding, no error, SWIOTLB never blamed', () => {
  const r = classifyConsole(load('synth-healthy-dma-warning.log'));
  assert.equal(r.ok, true);
  assert.deepEqual(codes(r), ['CON_VIRTIO_DMA_WARNING', 'CON_READY']);
  const f = get(r, 'CON_VIRTIO_DMA_WARNING');
  assert.equal(f.severity, 'info');
  assert.equal(f.evidence.length, 2);
  assert.match(f.message, /VIRTIO_F_ACCESS_PLATFORM/);
  assert.match(f.message, /SWIOTLB is irrelevant/);
  for (const x of r.findings) {
    assert.doesNotMatch(`${x.code} ${x.option ?? ''} ${x.fix}`, /SWIOTLB/, `${x.code} must not point at SWIOTLB`);
    assert.notEqual(x.severity, 'error');
  }
});

// ---- restored VMs: the history is read across the host's restore markers

test('hibernated and resumed: the boot is judged from its history, the restore is information, the resumed run is read', () => {
  const text = load('synth-hibernated-resumed.log');
  const r = classifyConsole(text, { expectIp: '172.16.0.2' });
  assert.equal(r.ok, true, codes(r).join(', '));
  assert.deepEqual(codes(r), ['CON_RESTORED', 'CON_READY']);
  assert.equal(r.facts.boots, 1);
  assert.equal(r.facts.kernelVersion, '6.1.192');
  assert.deepEqual(r.facts.restores, [{ line: 136, what: 'hibernation_of_2026-11-27T10:00:00.000Z', at: '2026-11-27T10:20:00.000Z' }]);
  const f = get(r, 'CON_RESTORED');
  assert.equal(f.severity, 'info');
  assert.match(f.message, /hibernation of 2026-11-27T10:00:00\.000Z \(restored at 2026-11-27T10:20:00\.000Z, line 136\); the boot findings describe its boot before that \(lines 1-134\)/);
  assert.deepEqual(f.evidence.map((e) => e.line), [136, 137], 'the marker and the agent\'s HANGAR-RESUMED');
  // What the guest prints after the restore still counts: a panic there is found, at its line.
  const crashed = classifyConsole(`${text}[  912.000001] Kernel panic - not syncing: Fatal exception in interrupt\r\n`);
  assert.equal(crashed.findings[0]?.code, 'CON_KERNEL_PANIC');
  assert.equal(crashed.findings[0]!.evidence[0]!.line, 138);
  assert.ok(codes(crashed).includes('CON_READY'), 'the boot had reached READY');
});

test('a clone: only the marker and the resumed run, no boot to judge (no CON_NO_KERNEL_OUTPUT, no address to confirm)', () => {
  const r = classifyConsole(load('synth-clone.log'), { expectIp: '172.16.0.9' });
  assert.equal(r.ok, true, codes(r).join(', '));
  assert.deepEqual(codes(r), ['CON_RESTORED']);
  assert.equal(r.facts.boots, 0);
  assert.equal(r.facts.analysedBoot, 0);
  assert.match(get(r, 'CON_RESTORED').message, /snapshot snap-0123abcd .*its boot happened in the snapshot's source VM/);
  // A clone hibernated and resumed, then one whose restore failed (nothing after the last marker): still no boot.
  const twice = `${load('synth-clone.log')}\nHANGAR-CONSOLE-RESTORED hibernation_of_2026-11-27T10:40:00.000Z 2026-11-27T11:00:00.000Z\nHANGAR-RESUMED 1795777200.5\r\n`;
  assert.deepEqual(codes(classifyConsole(twice, { expectIp: '172.16.0.9' })), ['CON_RESTORED']);
  assert.equal(classifyConsole(twice).facts.restores.length, 2);
  const failed = classifyConsole(`${load('synth-clone.log')}\nHANGAR-CONSOLE-RESTORED hibernation_of_x 2026-11-27T11:00:00.000Z\n`);
  assert.equal(failed.ok, true);
  assert.match(get(failed, 'CON_RESTORED').message, /nothing was printed since/);
  // Errors of the init's services after the resume are the clone's own (its init started in the source VM).
  const svc = classifyConsole(`${load('synth-clone.log')}/etc/hangar/init.d/20-x.sh: line 3: frobnicate: command not found\r\n`);
  assert.equal(get(svc, 'CON_INIT_SCRIPT_ERROR').evidence[0]!.line, 4);
  // A log a restore rewrote (Hangar before it appended): one HANGAR-RESUMED line is no "no kernel output".
  const rewritten = classifyConsole('HANGAR-RESUMED 1795775400.2\r\n', { expectIp: '172.16.0.2' });
  assert.deepEqual(codes(rewritten), ['CON_RESTORED']);
  assert.match(rewritten.findings[0]!.message, /history is lost/);
  // Without any marker, a log without kernel messages is still what it was.
  assert.equal(classifyConsole('qemu: something\r\n').findings[0]?.code, 'CON_NO_KERNEL_OUTPUT');
});

// ---- properties over every fixture

const ALL = readdirSync(DIR).filter((f) => f.endsWith('.log')).sort();

test('every fixture is small and every evidence line number points at that exact text', () => {
  assert.ok(ALL.length >= 16, `fixtures: ${ALL.join(', ')}`);
  for (const file of ALL) {
    const text = load(file);
    assert.ok(text.length < 60 * 1024, `${file} is ${text.length} bytes`);
    const lines = text.split(/\r?\n/);
    const r = classifyConsole(text);
    for (const f of r.findings) {
      for (const e of f.evidence) {
        assert.ok(e.line !== undefined && e.line >= 1, `${file} ${f.code}: evidence without a line`);
        assert.equal(lines[e.line - 1], e.text, `${file} ${f.code} line ${e.line}`);
      }
      assert.ok(f.code.startsWith('CON_'));
      assert.ok(f.fix.length > 0 && f.message.length > 0);
    }
  }
});

test('timelines from the real logs are monotonic (kernel ≤ root mounted ≤ init ≤ ready)', () => {
  const healthy = classifyConsole(load('healthy.log')).timeline;
  for (const k of ['kernelStart', 'rootMounted', 'init', 'ready'] as const) assert.equal(typeof healthy[k], 'number', k);
  assert.ok(healthy.ready! > healthy.init!, 'READY comes seconds after the init starts');
  for (const file of ALL.filter((f) => !f.startsWith('synth-'))) {
    const t = classifyConsole(load(file)).timeline;
    const seq = [t.kernelStart, t.rootMounted, t.init, t.ready].filter((v): v is number => v !== null);
    for (let i = 1; i < seq.length; i++) assert.ok(seq[i]! >= seq[i - 1]!, `${file}: ${JSON.stringify(t)}`);
  }
});

test('a consequence always comes after its cause, and the report is ok exactly when nothing is an error', () => {
  for (const file of ALL) {
    const r = classifyConsole(load(file));
    r.findings.forEach((f, i) => {
      for (const c of f.causedBy ?? []) {
        const j = r.findings.findIndex((x) => x.code === c);
        assert.ok(j >= 0 && j < i, `${file}: ${f.code} is caused by ${c}, which must come first`);
      }
    });
    assert.equal(r.ok, !r.findings.some((f) => f.severity === 'error'), file);
  }
});

// ---- kinds that are hard to capture here, from the kernel's own message formats (6.1 sources)

const boot = (...body: string[]): string =>
  [
    '[    0.000000] Linux version 6.1.192 (hangar@hangar) #2 SMP',
    '[    0.000000] Kernel command line: console=ttyS0 panic=1 root=/dev/vda rw init=/sbin/hangar-init ip=172.16.0.2::172.16.0.1:255.255.255.0::eth0:off virtio_mmio.device=512@0xfeb00e00:12',
    '[    0.500000] virtio_blk virtio0: [vda] 2359296 512-byte logical blocks (1.21 GB/1.13 GiB)',
    ...body,
  ].join('\n');

test('OOM kill of the X server: the cause of the missing READY', () => {
  const r = classifyConsole(boot(
    '[    0.900000] Run /sbin/hangar-init as init process',
    'HANGAR-INIT 1.20',
    '[    3.100000] Xvfb invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO), order=0, oom_score_adj=0',
    '[    3.200000] Out of memory: Killed process 231 (Xvfb) total-vm:181212kB, anon-rss:20480kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:200kB oom_score_adj:0',
  ));
  assert.equal(r.findings[0]?.code, 'CON_OOM_KILL');
  assert.match(r.findings[0]!.message, /killed Xvfb \(pid 231\)/);
  assert.deepEqual(get(r, 'CON_READY_MISSING').causedBy, ['CON_OOM_KILL']);
});

test('init killed by a signal, no working init, init not executable, root fs unsupported, probe failure', () => {
  const segv = classifyConsole(boot('[    0.9] Run /sbin/hangar-init as init process', '[    1.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b'));
  assert.equal(segv.findings[0]?.code, 'CON_INIT_EXITED');
  assert.match(segv.findings[0]!.message, /killed by signal 11 \(SIGSEGV\)/);
  assert.deepEqual(segv.facts.init, { path: '/sbin/hangar-init', signal: 11 });

  const status1 = classifyConsole(boot('[    1.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100'));
  assert.match(status1.findings[0]!.message, /exited with status 1/);

  const noInit = classifyConsole(boot('[    1.0] Kernel panic - not syncing: No working init found.  Try passing init= option to kernel. See Linux Documentation/admin-guide/init.rst for guidance.'));
  assert.equal(noInit.findings[0]?.code, 'CON_INIT_NOT_FOUND');
  assert.equal(noInit.facts.panic?.kind, 'no_init');

  const noexec = classifyConsole(boot(
    "[    0.9] Starting init: /sbin/init exists but couldn't execute it (error -8)",
    '[    1.0] Kernel panic - not syncing: No working init found.  Try passing init= option to kernel.',
  ));
  assert.equal(noexec.findings[0]?.code, 'CON_INIT_EXEC_FAILED');
  assert.equal(noexec.findings[0]!.option, 'CONFIG_BINFMT_ELF');

  const fs = classifyConsole(boot(
    '[    0.8] List of all partitions:',
    '[    0.8] fe00         1179648 vda ',
    '[    0.8]  driver: virtio_blk',
    '[    0.8] No filesystem could mount root, tried: ',
    '[    0.8] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(254,0)',
  ));
  assert.equal(fs.findings[0]?.code, 'CON_ROOT_FS_UNSUPPORTED');
  assert.deepEqual(get(fs, 'CON_KERNEL_PANIC').causedBy, ['CON_ROOT_FS_UNSUPPORTED']);

  const probe = classifyConsole(boot('[    0.4] virtio-mmio virtio-mmio.0: Wrong magic value 0x00000000!'));
  assert.equal(probe.findings[0]?.code, 'CON_VIRTIO_PROBE_FAILED');
});

test('IP-Config errors the kernel does print are named with their line', () => {
  const r = classifyConsole(boot("[    0.6] IP-Config: Device `eth1' not found", '[    0.8] VFS: Mounted root (ext4 filesystem) on device 254:0.'));
  assert.equal(r.findings[0]?.code, 'CON_NO_NET_DEVICE');
  assert.deepEqual(get(r, 'CON_IP_CONFIG_FAILED').causedBy, ['CON_NO_NET_DEVICE']);
});

test('an empty log and a log without kernel messages are errors of their own', () => {
  assert.equal(classifyConsole('').findings[0]?.code, 'CON_EMPTY_LOG');
  assert.equal(classifyConsole('qemu: something\r\nnothing else\r\n').findings[0]?.code, 'CON_NO_KERNEL_OUTPUT');
});

// ---- pure helpers

test('parseIpParam and parseCommandLine read the nfsroot ip= syntax and repeated params', () => {
  assert.deepEqual(parseIpParam('172.16.0.2::172.16.0.1:255.255.255.0::eth0:off'), {
    address: '172.16.0.2', gateway: '172.16.0.1', netmask: '255.255.255.0', device: 'eth0', autoconf: 'off',
  });
  assert.deepEqual(parseIpParam('dhcp'), { address: null, gateway: null, netmask: null, device: null, autoconf: 'dhcp' });
  const p = parseCommandLine('root=/dev/vda rw virtio_mmio.device=a virtio_mmio.device=b -- init-arg root=x');
  assert.deepEqual(p.get('virtio_mmio.device'), ['a', 'b']);
  assert.deepEqual(p.get('root'), ['/dev/vda']);
  assert.deepEqual(p.get('rw'), ['']);
});

test('orderByCause: nearest cause only, causes raised to the severity of what they explain', () => {
  const f = (code: ConsoleFinding['code'], severity: ConsoleFinding['severity']): ConsoleFinding => ({ code, severity, option: null, message: code, fix: '-', evidence: [] });
  const out = orderByCause([f('CON_READY_MISSING', 'error'), f('CON_KERNEL_PANIC', 'error'), f('CON_INIT_SCRIPT_ERROR', 'warning'), f('CON_INIT_EXITED', 'error')]);
  assert.deepEqual(out.map((x) => x.code), ['CON_INIT_SCRIPT_ERROR', 'CON_INIT_EXITED', 'CON_KERNEL_PANIC', 'CON_READY_MISSING']);
  assert.equal(out[0]!.severity, 'error');
  // INIT_SCRIPT_ERROR also explains READY_MISSING, but through INIT_EXITED and the panic: only the nearest is named.
  assert.deepEqual(out[3]!.causedBy, ['CON_KERNEL_PANIC']);
  assert.deepEqual(out[1]!.causedBy, ['CON_INIT_SCRIPT_ERROR']);
});
