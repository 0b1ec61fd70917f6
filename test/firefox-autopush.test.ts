import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import puppeteer, { type Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import webpush from 'web-push';
import { spawnServer, tempDir, until } from './helpers/server.js';
import { type BrowserSubscription, sendWebPush } from './helpers/webpush-http.js';

/**
 * Firefox's own push client against Pushwire's autopush endpoint: Debian's firefox-esr (installed
 * by scripts/ci-setup.sh) driven headless by puppeteer-core over WebDriver BiDi, a real
 * `pushwire serve --autopush` child process on a SQLite data dir, and the `web-push` library
 * publishing with VAPID. The service worker reports each push event's plaintext to the page's
 * origin, so the test counts what Firefox delivered: sent, received, duplicated, lost.
 */

const FIREFOX = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';

const SW = `
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));
self.addEventListener('push', (e) => {
  const text = e.data ? e.data.text() : null;
  e.waitUntil(fetch('/record', { method: 'POST', body: JSON.stringify({ text }) }));
});
`;
const PAGE = '<!doctype html><meta charset="utf-8"><title>push test</title><p>push test</p>';

/** The test app's origin: the page, its service worker, and /record where the worker reports. */
function startApp(): Promise<{ server: Server; url: string; received: (string | null)[] }> {
  const received: (string | null)[] = [];
  const server = createServer((req, res) => {
    if (req.url === '/sw.js') {
      res.writeHead(200, { 'content-type': 'text/javascript', 'cache-control': 'no-store' });
      return res.end(SW);
    }
    if (req.url === '/record' && req.method === 'POST') {
      let body = '';
      req.on('data', (d) => {
        body += d;
        if (body.length > 10_000) req.destroy();
      });
      req.on('end', () => {
        received.push((JSON.parse(body) as { text: string | null }).text);
        res.writeHead(204).end();
      });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(PAGE);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received });
    });
  });
}

describe.skipIf(process.env.SKIP_FIREFOX === '1')(
  'Firefox (firefox-esr) as a Pushwire device over autopush',
  () => {
    const vapid = webpush.generateVAPIDKeys();
    const data = tempDir('pushwire-ff-data-');
    const profile = tempDir('pushwire-ff-profile-');
    let server: { proc: ChildProcess; url: string };
    let port = 0;
    let app: Awaited<ReturnType<typeof startApp>>;
    let browser: Browser | undefined;
    let sub: BrowserSubscription;

    const prefs = () => ({
      'dom.push.enabled': true,
      'dom.push.connection.enabled': true,
      'dom.push.serverURL': `ws://127.0.0.1:${port}/v1/autopush`,
      'dom.push.testing.allowInsecureServerURL': true,
      'dom.push.loglevel': process.env.FIREFOX_DEBUG === '1' ? 'debug' : 'error',
      'devtools.console.stdout.chrome': process.env.FIREFOX_DEBUG === '1',
      // Reconnect fast after the server's kill -9 (the default first retry is 5 s, then doubling).
      'dom.push.retryBaseInterval': 500,
      // Pushes that show no notification spend a quota (default 16; 0 would expire the subscription).
      'dom.push.maxQuotaPerSubscription': 1000,
      'dom.serviceWorkers.enabled': true,
      'dom.serviceWorkers.testing.enabled': true,
      'permissions.default.desktop-notification': 1,
      // Quiet: no first-run pages and no outside connections.
      'browser.shell.checkDefaultBrowser': false,
      'browser.startup.homepage_override.mstone': 'ignore',
      'datareporting.policy.dataSubmissionEnabled': false,
      'toolkit.telemetry.reportingpolicy.firstRun': false,
      'app.update.disabledForTesting': true,
      'network.captive-portal-service.enabled': false,
      'network.connectivity-service.enabled': false,
    });

    const launch = async () => {
      browser = await puppeteer.launch({
        browser: 'firefox',
        executablePath: FIREFOX,
        headless: true,
        userDataDir: profile.dir,
        extraPrefsFirefox: prefs(),
        timeout: 60_000,
        protocolTimeout: 60_000,
        // FIREFOX_DEBUG=1 shows Firefox's output, with the push service's debug log.
        dumpio: process.env.FIREFOX_DEBUG === '1',
      });
      return browser;
    };
    const closeBrowser = async () => {
      await browser?.close();
      browser = undefined;
    };

    beforeAll(async () => {
      if (!existsSync(FIREFOX))
        throw new Error(`no Firefox at ${FIREFOX}: run scripts/ci-setup.sh (apt-get install firefox-esr)`);
      server = await spawnServer(data.dir, 0, ['--autopush']);
      port = Number(new URL(server.url).port);
      app = await startApp();
    }, 30_000);

    afterAll(async () => {
      await closeBrowser().catch(() => {});
      server?.proc.kill('SIGKILL');
      await new Promise<void>((r) => app?.server.close(() => r()));
      data.cleanup();
      profile.cleanup();
    });

    const waitFor = (n: number, what: string) => until(() => app.received.length >= n, 60_000, what);

    it('subscribes with an applicationServerKey: the endpoint is a Pushwire /wp/ endpoint', async () => {
      const b = await launch();
      const page = await b.newPage();
      await page.goto(`${app.url}/`);
      const json = await page.evaluate(async (key: string) => {
        const reg = await navigator.serviceWorker.register('/sw.js');
        await navigator.serviceWorker.ready;
        const s = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
        return JSON.stringify(s.toJSON());
      }, vapid.publicKey);
      sub = JSON.parse(json) as BrowserSubscription;
      expect(sub.endpoint).toMatch(new RegExp(`^${server.url}/wp/[A-Za-z0-9_-]{32}$`));
      expect(sub.keys.p256dh).toBeTruthy();
    }, 120_000);

    it('a push while Firefox runs reaches the service worker', async () => {
      expect((await sendWebPush(sub, 'one: while open', vapid)).status).toBe(201);
      await waitFor(1, 'the first push');
      expect(app.received).toEqual(['one: while open']);
    }, 90_000);

    it('a push sent while Firefox is closed arrives after a restart on the same profile', async () => {
      await closeBrowser();
      expect((await sendWebPush(sub, 'two: while closed', vapid)).status).toBe(201);
      await launch();
      await waitFor(2, 'the push sent while Firefox was closed');
      expect(app.received).toEqual(['one: while open', 'two: while closed']);
    }, 120_000);

    it('a push accepted right before the server is killed (-9) arrives after its restart, once', async () => {
      expect((await sendWebPush(sub, 'three: across kill -9', vapid)).status).toBe(201);
      server.proc.kill('SIGKILL');
      await new Promise((r) => server.proc.once('exit', r));
      server = await spawnServer(data.dir, port, ['--autopush']);
      await waitFor(3, 'the push sent across the kill');
      expect((await sendWebPush(sub, 'four: after restart', vapid)).status).toBe(201);
      await waitFor(4, 'the push after the restart');
      // A marker after the four: a duplicate of any of them would reach the page before it.
      expect((await sendWebPush(sub, 'five: marker', vapid)).status).toBe(201);
      await until(() => app.received.includes('five: marker'), 60_000, 'the marker');
      const sent = [
        'one: while open',
        'two: while closed',
        'three: across kill -9',
        'four: after restart',
        'five: marker',
      ];
      expect(app.received).toEqual(sent);
      const dup = app.received.length - new Set(app.received).size;
      const lost = sent.filter((s) => !app.received.includes(s)).length;
      expect({ sent: sent.length, received: app.received.length, duplicated: dup, lost }).toEqual({
        sent: 5,
        received: 5,
        duplicated: 0,
        lost: 0,
      });
    }, 120_000);

    it('unsubscribe in the page makes the endpoint answer 410', async () => {
      const b = browser ?? (await launch());
      const page = await b.newPage();
      await page.goto(`${app.url}/`);
      const ok = await page.evaluate(async () => {
        const reg = await navigator.serviceWorker.ready;
        const s = await reg.pushManager.getSubscription();
        return s ? await s.unsubscribe() : false;
      });
      expect(ok).toBe(true);
      const status = await until(
        async () => {
          const r = await sendWebPush(sub, 'after unsubscribe', vapid);
          return r.status === 410 ? r.status : undefined;
        },
        30_000,
        'the endpoint to answer 410',
      );
      expect(status).toBe(410);
      await closeBrowser();
    }, 90_000);
  },
);
