// Driving the Hangar viewer page in a real headless Chromium (Debian's, through playwright-core): launch with a
// fresh profile, open a viewer URL, wait for the RFB connection, screenshot, check the canvas is not blank, type.
// Reused by the full-VM viewer test (guest desktop) as well as the host-desktop one.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ROOT } from './env.js';

export const CHROMIUM = process.env.HANGAR_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];
// Functions passed to page.evaluate run in the page; the project compiles without the DOM library, so they see
// the few DOM parts they use through these declarations (module-scoped: nothing leaks into other files).
interface PageElement { dataset: Record<string, string | undefined>; textContent: string | null }
interface PageCanvas { width: number; height: number; getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null }
declare const document: { getElementById(id: string): PageElement | null; querySelector(selector: string): unknown };

/** Test artifacts (screenshots): <repo>/artifacts, gitignored. */
export const ARTIFACTS = join(ROOT, 'artifacts');

export function skipUnlessChromium(): string | false {
  return existsSync(CHROMIUM) ? false : `needs Chromium at ${CHROMIUM} (Debian package chromium)`;
}

export interface Browser {
  context: BrowserContext;
  /** Console lines and page errors, for failure messages. */
  console: string[];
  close(): Promise<void>;
}

/** Headless Chromium with a fresh user-data dir (removed by close()). */
export async function launchBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'hangar-chromium-'));
  const console: string[] = [];
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1100, height: 860 },
    });
    context.on('page', (p) => {
      p.on('console', (m) => console.push(`${m.type()}: ${m.text()}`));
      p.on('pageerror', (e) => console.push(`pageerror: ${e.message}`));
    });
    return {
      context, console,
      close: async () => {
        await context.close().catch(() => undefined);
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
}

/** Opens `url` (the viewer URL with its token) in a new tab. */
export async function openViewer(b: Browser, url: string): Promise<Page> {
  const page = await b.context.newPage();
  page.on('console', (m) => b.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => b.console.push(`pageerror: ${e.message}`));
  await page.goto(url, { waitUntil: 'load' });
  return page;
}

/** The status element's state and message: { state: 'connected', message: '', reason: '' }. */
export async function viewerState(page: Page): Promise<{ state: string; message: string; reason: string }> {
  return page.evaluate(() => {
    const s = document.getElementById('status');
    const m = document.getElementById('message');
    return { state: s?.dataset.state ?? '', message: m?.textContent ?? '', reason: m?.dataset.reason ?? '' };
  });
}

/** Waits for #status[data-state=STATE] (default connected). */
export async function waitState(page: Page, state = 'connected', timeoutMs = 20_000): Promise<void> {
  await page.waitForSelector(`#status[data-state="${state}"]`, { timeout: timeoutMs });
}

/** Waits until the message element has `reason` (e.g. 'paused', 'stopped', 'not_found', 'expired'). */
export async function waitReason(page: Page, reason: string, timeoutMs = 20_000): Promise<void> {
  await page.waitForSelector(`#message[data-reason="${reason}"]`, { timeout: timeoutMs });
}

/** Saves a PNG of the page under artifacts/ and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name.replace(/[^\w.-]+/g, '-')}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}

export interface CanvasStats {
  width: number;
  height: number;
  samples: number;
  /** Distinct colours among the sampled pixels. */
  colours: number;
  /** Share of samples that have the most common colour (1 = single-coloured). */
  dominantShare: number;
}

/** Samples a grid of pixels from noVNC's canvas (`#screen canvas`). */
export async function canvasStats(page: Page, grid = 32): Promise<CanvasStats> {
  return page.evaluate((n) => {
    const c = document.querySelector('#screen canvas') as PageCanvas | null;
    if (!c || !c.width || !c.height) return { width: 0, height: 0, samples: 0, colours: 0, dominantShare: 1 };
    const data = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    const counts = new Map<number, number>();
    let samples = 0;
    for (let gy = 0; gy < n; gy++) {
      for (let gx = 0; gx < n; gx++) {
        const x = Math.floor(((gx + 0.5) * c.width) / n);
        const y = Math.floor(((gy + 0.5) * c.height) / n);
        const i = (y * c.width + x) * 4;
        const rgb = (data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!;
        counts.set(rgb, (counts.get(rgb) ?? 0) + 1);
        samples++;
      }
    }
    const top = Math.max(...counts.values());
    return { width: c.width, height: c.height, samples, colours: counts.size, dominantShare: top / samples };
  }, grid);
}

/** True when the canvas has a framebuffer and more than one colour in it. */
export function notBlank(s: CanvasStats): boolean {
  return s.width > 0 && s.height > 0 && s.colours >= 2 && s.dominantShare < 0.995;
}

/** Waits until the canvas shows something other than one flat colour (the first update can take a moment). */
export async function waitNotBlank(page: Page, timeoutMs = 20_000): Promise<CanvasStats> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await canvasStats(page);
    if (notBlank(s) || Date.now() > deadline) return s;
    await page.waitForTimeout(250);
  }
}

/**
 * Types text into the remote desktop: clicks the canvas at (fx, fy) (fractions of its size: this moves the remote
 * pointer there, which gives keyboard focus to the window under it), then types through noVNC's keyboard handler.
 */
export async function typeText(page: Page, text: string, at: { fx: number; fy: number } = { fx: 0.2, fy: 0.2 }): Promise<void> {
  const canvas = page.locator('#screen canvas');
  const box = await canvas.boundingBox();
  if (!box) throw new Error('no viewer canvas');
  await page.mouse.click(box.x + box.width * at.fx, box.y + box.height * at.fy);
  await page.keyboard.type(text, { delay: 30 });
}
