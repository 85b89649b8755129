/**
 * The --report page in a real browser (headless Chromium over the DevTools protocol): it draws its charts (the
 * canvases hold pixels, the screenshot is not blank), fetches nothing from anywhere, throws nothing, and every figure
 * on it is the --json output's.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadResult } from '../../load/result.js';
import { CHROMIUM, launchChromium, type Browser } from '../support/chromium.js';
import { tempDir } from '../support/files.js';
import { decodePng } from '../support/png.js';
import { loadCli, smtpError, startTarget, type Target } from './helpers.js';

describe.skipIf(!CHROMIUM)('the HTML report in Chromium', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let target: Target;
  let browser: Browser;
  let json: LoadResult;
  let file: string;

  beforeAll(async () => {
    dir = await tempDir('mailroom-load-report-');
    // Replies that take a while and a share of 451s: every chart has something to draw.
    target = await startTarget({ delayMs: 30, reply: (n) => (n % 10 === 9 ? smtpError(451, '4.3.0 Try again later') : undefined), server: { closeTimeout: 500 } });
    file = join(dir.path, 'run.html');
    const r = await loadCli(['smtp', '--target', `127.0.0.1:${target.port}`, '--to', 'user@example.com', '--rate', '60', '--duration', '3s', '--report', file, '--json']);
    expect(r.code, r.stderr).toBe(0);
    json = r.json!;
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await target?.close();
    await dir?.remove();
  });

  it('is one file: uPlot inlined, the result embedded, nothing to load', async () => {
    const html = await readFile(file, 'utf8');
    expect(html).toContain('https://github.com/leeoniya/uPlot (v1.6.32)');
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|@import|url\(http/i);
    expect(json.errors.byClass['smtp-4xx']).toBeGreaterThan(0);
  });

  it('opened as a browser would: charts drawn, nothing fetched, no script error, the figures equal the JSON', async () => {
    const { targetInfos } = await browser.send<{ targetInfos: Array<{ targetId: string; type: string }> }>('Target.getTargets');
    const page = targetInfos.find((t) => t.type === 'page')!;
    const { sessionId } = await browser.send<{ sessionId: string }>('Target.attachToTarget', { targetId: page.targetId, flatten: true });
    for (const domain of ['Page', 'Runtime', 'Network']) await browser.send(`${domain}.enable`, {}, sessionId);
    await browser.send('Emulation.setDeviceMetricsOverride', { width: 1280, height: 3000, deviceScaleFactor: 1, mobile: false }, sessionId);
    const loaded = browser.once('Page.loadEventFired', sessionId);
    const url = pathToFileURL(file).href;
    await browser.send('Page.navigate', { url }, sessionId);
    await loaded;

    const evaluate = async <T>(expression: string): Promise<T> => {
      const r = await browser.send<{ result: { value: T }; exceptionDetails?: unknown }>('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true }, sessionId);
      if (r.exceptionDetails) throw new Error(JSON.stringify(r.exceptionDetails));
      return r.result.value;
    };
    // Let uPlot paint (it draws on the next animation frame).
    await evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');

    const charts = await evaluate<Array<{ id: string; canvases: number; inked: number; colours: number }>>(`
      [...document.querySelectorAll('.chart')].map((el) => {
        const cs = [...el.querySelectorAll('canvas')];
        let inked = 0; const colours = new Set();
        for (const c of cs) {
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0) { inked++; colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]); }
        }
        return { id: el.id, canvases: cs.length, inked, colours: colours.size };
      })`);
    expect(charts.map((c) => c.id)).toEqual(['chart-throughput', 'chart-latency-accept', 'chart-latency-response', 'chart-distribution', 'chart-errors']);
    for (const c of charts) {
      expect(c.canvases, c.id).toBe(1);
      expect(c.inked, c.id).toBeGreaterThan(2_000);
      expect(c.colours, c.id).toBeGreaterThan(3);
    }
    expect(await evaluate('document.body.getAttribute("data-charts")')).toBe('5');

    // The figures: each [data-key] is the JSON's value at that path, as it is.
    const figures = await evaluate<Array<[string, string]>>(`[...document.querySelectorAll('[data-key]')].map((e) => [e.getAttribute('data-key'), e.textContent])`);
    expect(figures.length).toBeGreaterThan(30);
    const at = (path: string) => path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], json);
    for (const [key, text] of figures) expect(text, key).toBe(String(at(key)));
    for (const key of ['counts.accepted', 'counts.failed', 'latency.accept.p50', 'latency.accept.p99', 'latency.accept.max', 'latency.response.p99', 'errors.total', 'errors.byClass.smtp-4xx', 'throughput.accepted']) {
      expect(figures.map(([k]) => k), key).toContain(key);
    }
    const params = await evaluate<Record<string, string>>(`Object.fromEntries([...document.querySelectorAll('[data-param]')].map((e) => [e.getAttribute('data-param'), e.textContent]))`);
    expect(params).toMatchObject({ target: `127.0.0.1:${target.port}`, rate: '60', duration: '3s', size: '10 KB', to: 'user@example.com' });

    // A screenshot, as a person would see the page: not blank.
    const shot = await browser.send<{ data: string }>('Page.captureScreenshot', { format: 'png' }, sessionId);
    const img = decodePng(Buffer.from(shot.data, 'base64'));
    expect(img.width).toBe(1280);
    let notWhite = 0;
    const colours = new Set<number>();
    for (let i = 0; i < img.pixels.length; i += img.channels) {
      const [r, g, b] = [img.pixels[i]!, img.pixels[i + 1]!, img.pixels[i + 2]!];
      if (r < 245 || g < 245 || b < 245) notWhite++;
      colours.add((r << 16) | (g << 8) | b);
    }
    expect(notWhite / (img.width * img.height)).toBeGreaterThan(0.02);
    expect(colours.size).toBeGreaterThan(50);

    // Nothing but the file itself was requested, and no script failed.
    const requested = browser.events.filter((e) => e.method === 'Network.requestWillBeSent' && e.sessionId === sessionId).map((e) => (e.params!.request as { url: string }).url);
    expect(requested).toEqual([url]);
    expect(browser.events.filter((e) => e.method === 'Runtime.exceptionThrown')).toEqual([]);
  });
});
