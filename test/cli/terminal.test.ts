import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sanitizeTerminal, TerminalSanitizer } from '../../src/cli/terminal.js';
import { fakeApi, fakeVm, hangar, ok } from './fake-api.js';

const ESC = '\x1b';
const BEL = '\x07';

test('OSC 52 (clipboard), window titles, CSI, BEL and other controls are removed; text, newlines and tabs stay', () => {
  assert.equal(sanitizeTerminal(`before${ESC}]52;c;ZWNobyBwd25lZA==${BEL}after\n`), 'beforeafter\n', 'OSC 52 ended by BEL');
  assert.equal(sanitizeTerminal(`a${ESC}]52;c;ZWNobw==${ESC}\\b`), 'ab', 'OSC 52 ended by ST');
  assert.equal(sanitizeTerminal(`${ESC}]0;pwned title${BEL}${ESC}]2;other${ESC}\\login:`), 'login:', 'title changes');
  assert.equal(sanitizeTerminal(`${ESC}[31mred${ESC}[0m ${ESC}[2J${ESC}[?1049h${ESC}[6n ok`), 'red  ok', 'CSI: colours, clear, alt screen, a cursor report request');
  assert.equal(sanitizeTerminal(`ding${BEL}\tx\r\n\b\x00\x7f\x85y`), 'ding\tx\ny', 'BEL, BS, NUL, DEL and C1 NEL dropped; tab and newline kept');
  assert.equal(sanitizeTerminal('\x9b31mc1 csi\x9d0;t\x9c ok'), 'c1 csi ok', '8-bit CSI and OSC');
  assert.equal(sanitizeTerminal(`${ESC}Pq#0;2;0;0;0~${ESC}\\${ESC}_apc${ESC}\\${ESC}^pm${ESC}\\${ESC}Xsos${ESC}\\done`), 'done', 'DCS, APC, PM, SOS strings');
  assert.equal(sanitizeTerminal(`${ESC}(B${ESC}7${ESC}8${ESC}c=`), '=', 'charset, save/restore, reset');
  assert.equal(sanitizeTerminal('Grüße — ☃ 𝄞'), 'Grüße — ☃ 𝄞', 'printable Unicode passes');
  assert.equal(sanitizeTerminal(`${ESC}]0;title${ESC}[1mbold`), 'bold', 'an ESC inside a string ends it and starts a sequence');
});

test('sequences split across chunks are still removed', () => {
  const whole = `log ${ESC}]52;c;ZWNobyBwd25lZA==${BEL}one ${ESC}[1;31mtwo${ESC}[0m ${ESC}]0;t${ESC}\\three\n`;
  const expected = 'log one two three\n';
  for (let size = 1; size <= whole.length; size++) {
    const s = new TerminalSanitizer();
    let out = '';
    for (let i = 0; i < whole.length; i += size) out += s.push(whole.slice(i, i + size));
    assert.equal(out, expected, `chunks of ${size}`);
  }
});

test('an unterminated string sequence is given up after 8 KiB: the console is not swallowed for good', () => {
  const out = sanitizeTerminal(`${ESC}]52;c;${'A'.repeat(9000)}\nstill here\n`);
  assert.ok(out.endsWith('\nstill here\n'));
  assert.ok(out.length < 1000);
});

test('hangar vm console: escape sequences removed unless --raw, for the tail and for --follow', async () => {
  const evil = `boot ok\n${ESC}]52;c;cm0gLXJmIH4=${BEL}${ESC}]0;owned${BEL}${ESC}[2Jlogin: \n`;
  const api = await fakeApi((r) => {
    if (r.path === '/v1/vms') return ok({ vms: [fakeVm({ id: 'vm-aaaa0000', name: 'alice' })] });
    if (r.path.endsWith('/console') && r.query.get('follow') === 'true') {
      return (res) => {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.write(evil.slice(0, 12)); // split inside the OSC 52 sequence
        setTimeout(() => res.end(evil.slice(12)), 30);
      };
    }
    if (r.path.endsWith('/console')) return (res) => { res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }); res.end(evil); };
    return ok({});
  });
  try {
    const clean = 'boot ok\nlogin: \n';
    assert.equal((await hangar(['vm', 'console', 'alice'], api.env)).out, clean);
    assert.equal((await hangar(['vm', 'console', 'alice', '--follow'], api.env)).out, clean);
    assert.equal((await hangar(['vm', 'console', 'alice', '--raw'], api.env)).out, evil);
  } finally {
    await api.close();
  }
});
