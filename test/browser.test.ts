import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDemoKey, SqliteStore } from '@pushwire/server';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, ROOT, startServer, tempDir } from './helpers/server.js';

/**
 * The browser SDK, the demo page and the dashboard in a real headless Chromium (Debian's
 * `chromium`, installed by scripts/ci-setup.sh), against a real server on 127.0.0.1. The tests run
 * in order as one person's session: register, receive, go offline, reload, use the dashboard.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// Screenshots go to test-results/ on every run; UPDATE_SCREENSHOTS=1 refreshes the ones the README links.
const SHOTS = join(ROOT, process.env.UPDATE_SCREENSHOTS === '1' ? 'docs/screenshots' : 'test-results');

/** Records every `new Notification(title, options)`; the real class still does the work. */
const recordNotifications = () => {
  const Real = window.Notification;
  const seen: { title: string; body: string | undefined }[] = [];
  class Recorded extends Real {
    constructor(title: string, options?: NotificationOptions) {
      super(title, options);
      seen.push({ title, body: options?.body });
    }
  }
  Object.defineProperty(Recorded, 'permission', { get: () => Real.permission });
  Object.defineProperty(Recorded, 'requestPermission', { value: Real.requestPermission.bind(Real) });
  Object.defineProperty(window, 'Notification', { value: Recorded, configurable: true, writable: true });
  Object.defineProperty(window, 'notificationsSeen', { value: seen });
};

type Stop = Awaited<ReturnType<typeof startServer>>['stop'];

describe('browser: demo page and dashboard in Chromium', () => {
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let url: string;
  let stop: Stop;
  let deviceId: string;
  /** Every message id published to the page's device, in order. */
  const sent: string[] = [];
  /** The app backend's key (publish only) and the dashboard's (status, publish): no admin key in any page. */
  let publishKey: string;
  let dashboardKey: string;
  let demoKey: string;
  let cleanupDir: () => void;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`no Chromium at ${CHROMIUM}: run scripts/ci-setup.sh (apt-get install chromium)`);
    }
    // The page loads /sdk/pushwire.mjs: bundle the SDK's current source (esbuild, ~0.1 s).
    execFileSync(process.execPath, [join(ROOT, 'scripts/build-browser.mjs')], { stdio: 'ignore' });
    const tmp = tempDir();
    cleanupDir = tmp.cleanup;
    const store = SqliteStore.open({ path: join(tmp.dir, 'pushwire.db') });
    demoKey = (await ensureDemoKey(store.apiKeys, join(tmp.dir, 'demo-key'), Date.now())).key;
    ({ url, stop } = await startServer({ store, demoKey, sweepIntervalMs: 3_600_000 }));
    const key = async (scopes: string[]) =>
      (await http<{ key: string }>(url, 'POST', '/v1/keys', { scopes })).body.key;
    publishKey = await key(['publish']);
    dashboardKey = await key(['status', 'publish']);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    context = await browser.newContext({ viewport: { width: 1100, height: 820 } });
    await context.grantPermissions(['notifications'], { origin: url });
    await context.addInitScript(recordNotifications);
    page = await context.newPage();
    mkdirSync(SHOTS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await stop?.();
    cleanupDir?.();
  });

  const publish = async (title: string, body = `body of ${title}`) => {
    const r = await http<{ id: string }>(
      url,
      'POST',
      '/v1/messages',
      { to: { device: deviceId }, notification: { title, body }, data: { n: sent.length } },
      publishKey,
    );
    expect(r.status).toBe(202);
    sent.push(r.body.id);
    return r.body.id;
  };
  /** Message ids the page shows, oldest first. */
  const shown = (p = page) =>
    p.$$eval('#messages li', (lis) => lis.map((li) => (li as HTMLElement).dataset.id!).reverse());
  const waitForState = (state: string, p = page) =>
    p.waitForFunction((s) => document.getElementById('state')?.textContent === s, state, { timeout: 15_000 });
  const waitForShown = (ids: string[], p = page) =>
    p.waitForFunction(
      (want) => {
        const have = new Set(
          Array.from(document.querySelectorAll('#messages li'), (li) => (li as HTMLElement).dataset.id),
        );
        return want.every((id) => have.has(id));
      },
      ids,
      { timeout: 15_000 },
    );

  it('registers a device with the demo register key (no key typed, no admin key) and connects', async () => {
    const res = await page.goto(`${url}/demo?heartbeat=3`);
    // HTML pages cannot be framed and send no Referer.
    expect(res?.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(res?.headers()['referrer-policy']).toBe('no-referrer');
    expect(await page.textContent('#permission')).toBe('granted');
    await page.waitForSelector('#register-form button[type=submit]', { state: 'visible' });
    expect(await page.isVisible('#api-key')).toBe(false); // the page has its key: nothing to paste
    expect(await page.isVisible('#setup-demo')).toBe(true);
    await page.click('#register-form button[type=submit]');
    await waitForState('open');
    deviceId = (await page.textContent('#device-id'))!;
    expect(deviceId).toMatch(/^[A-Za-z0-9._~:-]+$/);
    const device = await http<{ online: boolean; heartbeat: number }>(
      url,
      'GET',
      `/v1/devices/${deviceId}`,
      undefined,
      dashboardKey,
    );
    expect(device.body).toMatchObject({ online: true, heartbeat: 3 });
    // The page shows the commands that target this browser, with no key in them.
    expect(await page.textContent('#cmd-cli')).toContain(`--device ${deviceId}`);
    expect(await page.textContent('#cmd-curl')).toContain(`"to":{"device":"${deviceId}"}`);
    expect(await page.textContent('#cmd-curl')).toContain('$PUSHWIRE_API_KEY');
    // What the page holds (its register key) can neither publish, nor read, nor delete.
    const tried = await page.evaluate(async (key) => {
      const call = async (method: string, path: string, body?: unknown) =>
        (
          await fetch(path, {
            method,
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
            ...(body !== undefined && { body: JSON.stringify(body) }),
          })
        ).status;
      const id = (window as unknown as { pushwireDemo: { client: { deviceId: string } } }).pushwireDemo.client
        .deviceId;
      return [
        await call('POST', '/v1/messages', { to: { device: id }, data: 1 }),
        await call('GET', `/v1/devices/${id}/messages`),
        await call('DELETE', `/v1/devices/${id}`),
      ];
    }, demoKey);
    expect(tried).toEqual([403, 403, 403]);
    // Following topics: demo/* yes, anything else is refused without closing anything.
    await page.fill('#follow-topic', 'alerts');
    await page.click('#follow-form button[type=submit]');
    await page.waitForFunction(() =>
      /ForbiddenError/.test(document.getElementById('follow-result')?.textContent ?? ''),
    );
    await page.fill('#follow-topic', 'demo/news');
    await page.click('#follow-form button[type=submit]');
    await page.waitForFunction(
      () => document.getElementById('follow-result')?.textContent === 'following demo/news',
    );
    expect(await page.textContent('#state')).toBe('open');
    // "Send it from here": the device sends to itself, with its own credential.
    await page.fill('#test-title', 'echo');
    await page.click('#test-send');
    await page.waitForFunction(() =>
      /accepted/.test(document.getElementById('test-result')?.textContent ?? ''),
    );
    await page.waitForFunction(() => document.querySelector('#messages li strong')?.textContent === 'echo');
    const echoed = await page.$eval('#messages li', (li) => (li as HTMLElement).dataset.id!);
    sent.push(echoed);
  });

  it('shows a published message and fires a real Notification with its title and body', async () => {
    const id = await publish('Build failed', 'main: 3 tests failed');
    await waitForShown([id]);
    const seen = await page.evaluate(
      () => (window as unknown as { notificationsSeen: unknown[] }).notificationsSeen,
    );
    expect(seen).toHaveLength(2); // the echo, then this one
    expect(seen.at(-1)).toEqual({ title: 'Build failed', body: 'main: 3 tests failed' });
    expect(await page.textContent(`#messages li[data-id="${id}"] strong`)).toBe('Build failed');
    // The page shows the cursor once the message is persisted and acknowledged.
    await page.waitForFunction(() =>
      /"d:[^"]+":2\b/.test(document.getElementById('cursors')?.textContent ?? ''),
    );
    await page.screenshot({ path: join(SHOTS, 'demo.png'), fullPage: true });
  });

  it('loses nothing across the browser going offline and online again', async () => {
    const received = sent.length;
    await context.setOffline(true);
    await page.waitForFunction(() => !navigator.onLine);
    const whileOffline: string[] = [];
    for (let i = 0; i < 5; i++) whileOffline.push(await publish(`offline ${i}`));
    // The socket still looks open; the heartbeat (3 s, pong deadline 5 s) finds it dead.
    await page.waitForFunction(() => document.getElementById('state')?.textContent !== 'open', undefined, {
      timeout: 15_000,
    });
    for (let i = 5; i < 10; i++) whileOffline.push(await publish(`offline ${i}`));
    await page.waitForTimeout(500);
    expect(await shown()).toHaveLength(received); // the offline switch really cut the traffic
    expect(await page.textContent('#state')).toBe('backoff'); // no reconnect attempts while offline

    await context.setOffline(false);
    await waitForState('open');
    await waitForShown(whileOffline);
    const ids = await shown();
    expect(ids).toEqual(sent); // all of them, in order
    expect(new Set(ids).size).toBe(ids.length); // no duplicates
    const seen = await page.evaluate(
      () => (window as unknown as { notificationsSeen: unknown[] }).notificationsSeen,
    );
    expect(seen).toHaveLength(sent.length);
  });

  it('resumes from stored cursors after a reload without repeating a message', async () => {
    const before = [...sent];
    await page.goto('about:blank');
    const whileAway = [await publish('while away 1'), await publish('while away 2')];
    await page.goto(`${url}/demo?heartbeat=3`);
    await waitForState('open');
    expect(await page.textContent('#device-id')).toBe(deviceId); // same device, from localStorage
    await waitForShown(whileAway);
    await page.reload();
    await waitForState('open');
    const after = [await publish('after reload')];
    await waitForShown(after);
    const ids = await shown();
    expect(ids).toEqual(after);
    expect(ids.filter((id) => before.includes(id) || whileAway.includes(id))).toEqual([]);
  });

  it('dashboard: shows the device online and sends it a test message with the form', async () => {
    const dash = await context.newPage();
    await dash.goto(`${url}/dashboard`);
    await dash.fill('#key', dashboardKey);
    await dash.click('#login-form button[type=submit]');
    await dash.waitForFunction(() => document.getElementById('s-sessions')?.textContent === '1');
    expect(await dash.textContent('#powers')).toMatch(/may: status, publish/);

    await dash.fill('#lookup-id', deviceId);
    await dash.click('#lookup-form button[type=submit]');
    await dash.waitForFunction(() => document.getElementById('d-online')?.textContent === 'yes');
    expect(await dash.textContent('#d-heartbeat')).toBe('3 s');

    await dash.fill('#send-to', deviceId);
    await dash.fill('#send-title', 'Hello from the dashboard');
    await dash.fill('#send-body', 'sent with the form');
    await dash.click('#send');
    await page.waitForFunction(
      () => document.querySelector('#messages li strong')?.textContent === 'Hello from the dashboard',
      undefined,
      { timeout: 15_000 },
    );
    const seen = await page.evaluate(
      () => (window as unknown as { notificationsSeen: unknown[] }).notificationsSeen,
    );
    expect(seen.at(-1)).toEqual({ title: 'Hello from the dashboard', body: 'sent with the form' });
    // The form's delivery status, and the device's recent messages, both say delivered.
    await dash.waitForFunction(
      () => /delivered/.test(document.getElementById('status')?.textContent ?? ''),
      undefined,
      {
        timeout: 15_000,
      },
    );
    await dash.waitForFunction(
      () => document.querySelector('#d-messages tr td:last-child')?.textContent?.startsWith('delivered'),
      undefined,
      { timeout: 15_000 },
    );
    // Some traffic for the chart in the screenshot: 10 rounds, 400 ms apart, 1 to 5 messages each.
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 1 + (round % 5); i++) await publish(`chart ${round}.${i}`);
      await dash.waitForTimeout(400);
    }
    await dash.screenshot({ path: join(SHOTS, 'dashboard.png'), fullPage: true });
    await dash.close();
  });

  it('a second demo tab says the device is open elsewhere and stops; taking it over stops the first', async () => {
    await waitForState('open');
    const second = await context.newPage();
    await second.goto(`${url}/demo?heartbeat=3`);
    await second.waitForSelector('#elsewhere', { state: 'visible', timeout: 15_000 });
    expect(await second.textContent('#state')).toBe('idle'); // it never connected
    const first = [await publish('still the first tab')];
    await waitForShown(first);

    // "Use it here": the second tab connects, the first is told (REPLACED) and stops for good.
    await second.click('#use-here');
    await waitForState('open', second);
    await page.waitForSelector('#elsewhere', { state: 'visible', timeout: 15_000 });
    await waitForState('closed');
    const moved = [await publish('now the second tab')];
    await waitForShown(moved, second);
    // No flip-flop: after two more heartbeats of the second tab, the first is still closed.
    const sessions = async () =>
      (await http<{ sessions: number }>(url, 'GET', '/v1/admin/stats')).body.sessions;
    const third = [await publish('later')];
    await waitForShown(third, second);
    expect(await page.textContent('#state')).toBe('closed');
    expect(await second.textContent('#state')).toBe('open');
    expect(await sessions()).toBe(1);
    expect(await shown()).not.toContain(moved[0]);
    await second.close();
  });
});
