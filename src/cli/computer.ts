// `hangar vm screenshot|type|key|click|move|scroll|drag|clipboard|computer`: the computer-use API
// (POST /v1/vms/:id/computer) from the command line. Each command builds one action of the Anthropic vocabulary;
// `hangar vm computer ID JSON` sends any action as is.
import { writeFileSync } from 'node:fs';
import { HangarError } from '../errors.js';
import { clientFromEnv } from './client.js';
import { jsonOption, type ArgDef, type CliIO, type Command, type OptionSpec, type ParsedArgs } from './command.js';
import { resolveVm, VM_ARG } from './resolve.js';

type Result = Record<string, unknown> & { action: string; image?: { data: string; media_type: string } };

const X: ArgDef = { name: 'X', description: 'pixels from the left of the screen' };
const Y: ArgDef = { name: 'Y', description: 'pixels from the top of the screen' };

function int(v: string | undefined, what: string): number {
  if (v === undefined || !/^\d+$/.test(v)) throw new HangarError('INVALID_ARGUMENT', `${what} must be a non-negative integer (got ${JSON.stringify(v ?? '')})`, { field: what });
  return Number(v);
}

const str = (values: ParsedArgs['values'], k: string): string | undefined => (typeof values[k] === 'string' ? (values[k] as string) : undefined);

/** `x,y,w,h` → {x, y, width, height}. */
export function parseRegion(s: string): { x: number; y: number; width: number; height: number } {
  const m = /^(\d+),(\d+),(\d+),(\d+)$/.exec(s);
  if (!m) throw new HangarError('INVALID_ARGUMENT', `--region must be X,Y,WIDTH,HEIGHT (got ${JSON.stringify(s)})`, { field: '--region' });
  return { x: Number(m[1]), y: Number(m[2]), width: Number(m[3]), height: Number(m[4]) };
}

async function send(args: ParsedArgs, body: Record<string, unknown>, io: CliIO): Promise<Result> {
  const api = clientFromEnv(io.env);
  const vm = await resolveVm(api, args.positionals[0]!);
  return api.request<Result>('POST', `/v1/vms/${encodeURIComponent(vm.id)}/computer`, body);
}

const print = (r: Result, values: ParsedArgs['values'], io: CliIO, human: string): number => {
  io.out(values.json ? JSON.stringify(r) + '\n' : human);
  return 0;
};

const command = (name: string, summary: string, args: ArgDef[], options: OptionSpec, examples: string[],
  body: (p: string[], values: ParsedArgs['values']) => Record<string, unknown>, human: (r: Result, p: string[]) => string = () => ''): Command => ({
  path: ['vm', name], summary, args: [VM_ARG, ...args], options: { ...options, ...jsonOption }, examples,
  usage: `ID${args.map((a) => (a.optional ? ` [${a.name}]` : ` ${a.name}`)).join('')}${Object.keys(options).map((o) => ` [--${o}${options[o]!.arg ? ` ${options[o]!.arg}` : ''}]`).join('')} [--json]`,
  run: async (a, io) => {
    const b = body(a.positionals.slice(1), a.values); // checked before anything is asked of the controller
    const r = await send(a, b, io);
    return print(r, a.values, io, human(r, a.positionals.slice(1)));
  },
});

const modifiers = { with: { type: 'string', arg: 'KEYS', description: 'modifier keys held meanwhile, e.g. ctrl or shift+alt' } } as const satisfies OptionSpec;

export const commands: Command[] = [
  {
    path: ['vm', 'screenshot'], summary: "Save a screenshot of the VM's screen (PNG, or JPEG with --format jpeg)", args: [VM_ARG],
    usage: 'ID -o FILE [--format png|jpeg] [--quality N] [--region X,Y,W,H] [--scale F] [--json]',
    options: {
      output: { type: 'string', short: 'o', arg: 'FILE', description: "where to write the image ('-': stdout)" },
      format: { type: 'string', arg: 'FMT', description: 'png (default) or jpeg' },
      quality: { type: 'string', arg: 'N', int: true, description: 'JPEG quality 1-100 (default 80)' },
      region: { type: 'string', arg: 'X,Y,W,H', description: 'only this part of the screen' },
      scale: { type: 'string', arg: 'F', description: 'scale down by this factor, in (0, 1]' },
      ...jsonOption,
    },
    examples: ['hangar vm screenshot alice -o shot.png', 'hangar vm screenshot alice -o part.jpg --format jpeg --region 0,0,640,400 --scale 0.5'],
    run: async (a, io) => {
      const out = str(a.values, 'output');
      if (!out) throw new HangarError('INVALID_ARGUMENT', 'missing -o FILE (where to write the screenshot)', { field: '--output' });
      const body: Record<string, unknown> = { action: 'screenshot' };
      const fmt = str(a.values, 'format');
      if (fmt !== undefined) body.format = fmt;
      if (str(a.values, 'quality') !== undefined) body.quality = Number(str(a.values, 'quality'));
      if (str(a.values, 'region') !== undefined) body.region = parseRegion(str(a.values, 'region')!);
      if (str(a.values, 'scale') !== undefined) body.scale = Number(str(a.values, 'scale'));
      const r = await send(a, body, io);
      const bytes = Buffer.from(r.image?.data ?? '', 'base64');
      if (out === '-') process.stdout.write(bytes);
      else writeFileSync(out, bytes);
      const info = { width: r.width, height: r.height, bytes: bytes.length, file: out, mediaType: r.image?.media_type };
      if (out !== '-') io.out(a.values.json ? JSON.stringify(info) + '\n' : `${out}: ${String(r.width)}x${String(r.height)}, ${bytes.length} bytes\n`);
      return 0;
    },
  },
  command('type', 'Type text on the VM desktop (any Unicode text)', [{ name: 'TEXT', description: 'the text ("\\n" in it presses Return)' }], {},
    ['hangar vm type alice "echo hello"', "hangar vm type alice 'žluťoučký 日本'"],
    (p) => ({ action: 'type', text: p[0] ?? '' })),
  command('key', 'Press keys or combinations (xdotool names: Return, ctrl+l, super, F5, shift+Tab)', [{ name: 'KEYS', description: 'space-separated combinations' }],
    { repeat: { type: 'string', arg: 'N', int: true, description: 'press the sequence N times' } },
    ['hangar vm key alice Return', 'hangar vm key alice ctrl+l', "hangar vm key alice 'ctrl+a Delete'"],
    (p, v) => ({ action: 'key', text: p[0] ?? '', ...(str(v, 'repeat') ? { repeat: Number(str(v, 'repeat')) } : {}) })),
  command('click', 'Click at X Y (or where the pointer is)', [{ ...X, optional: true }, { ...Y, optional: true }],
    { button: { type: 'string', arg: 'B', description: 'left (default), right or middle' }, count: { type: 'string', arg: 'N', int: true, description: '1 (default), 2 (double) or 3 (triple; left only)' }, ...modifiers },
    ['hangar vm click alice 200 150', 'hangar vm click alice 200 150 --button right', 'hangar vm click alice 200 150 --count 2'],
    (p, v) => {
      const button = str(v, 'button') ?? 'left';
      const count = Number(str(v, 'count') ?? '1');
      if (!['left', 'right', 'middle'].includes(button)) throw new HangarError('INVALID_ARGUMENT', '--button must be left, right or middle', { field: '--button' });
      if (![1, 2, 3].includes(count) || (count > 1 && button !== 'left')) throw new HangarError('INVALID_ARGUMENT', '--count must be 1, 2 or 3 (2 and 3 with the left button)', { field: '--count' });
      if (p.length === 1) throw new HangarError('INVALID_ARGUMENT', 'give both X and Y, or neither', { field: 'Y' });
      const action = count === 2 ? 'double_click' : count === 3 ? 'triple_click' : `${button}_click`;
      return { action, ...(p.length === 2 ? { coordinate: [int(p[0], 'X'), int(p[1], 'Y')] } : {}), ...(str(v, 'with') ? { text: str(v, 'with') } : {}) };
    }),
  command('move', 'Move the pointer to X Y', [X, Y], {}, ['hangar vm move alice 640 400'],
    (p) => ({ action: 'mouse_move', coordinate: [int(p[0], 'X'), int(p[1], 'Y')] })),
  command('scroll', 'Scroll at X Y (wheel clicks)', [X, Y],
    { direction: { type: 'string', arg: 'DIR', description: 'up, down (default), left or right' }, amount: { type: 'string', arg: 'N', int: true, description: 'wheel clicks (default 3)' }, ...modifiers },
    ['hangar vm scroll alice 640 400 --direction down --amount 5'],
    (p, v) => ({ action: 'scroll', coordinate: [int(p[0], 'X'), int(p[1], 'Y')], scroll_direction: str(v, 'direction') ?? 'down', scroll_amount: Number(str(v, 'amount') ?? '3'), ...(str(v, 'with') ? { text: str(v, 'with') } : {}) })),
  command('drag', 'Drag with the left button from X1 Y1 to X2 Y2', [{ name: 'X1', description: 'start x' }, { name: 'Y1', description: 'start y' }, { name: 'X2', description: 'end x' }, { name: 'Y2', description: 'end y' }], {},
    ['hangar vm drag alice 100 50 400 300'],
    (p) => ({ action: 'left_click_drag', start_coordinate: [int(p[0], 'X1'), int(p[1], 'Y1')], coordinate: [int(p[2], 'X2'), int(p[3], 'Y2')] })),
  command('clipboard', "Print the desktop's clipboard, or set it with --set (Latin-1 text: RFB carries no more)", [],
    { set: { type: 'string', arg: 'TEXT', description: 'put TEXT on the clipboard' } },
    ['hangar vm clipboard alice', 'hangar vm clipboard alice --set "hello"'],
    (_p, v) => (str(v, 'set') !== undefined ? { action: 'set_clipboard', text: str(v, 'set') } : { action: 'get_clipboard' }),
    (r) => (typeof r.text === 'string' ? `${r.text}\n` : '')),
  command('computer', "Send one computer-use action as JSON (Anthropic's computer-use tool input)", [{ name: 'JSON', description: 'e.g. \'{"action":"left_click","coordinate":[10,20]}\'' }], {},
    ['hangar vm computer alice \'{"action":"cursor_position"}\''],
    (p) => {
      try { return JSON.parse(p[0] ?? '') as Record<string, unknown>; } catch { throw new HangarError('INVALID_ARGUMENT', 'JSON must be a JSON object', { field: 'JSON' }); }
    },
    (r) => `${JSON.stringify(r.image ? { ...r, image: { ...r.image, data: `(${r.image.data.length} base64 characters)` } } : r)}\n`),
];
