// Test harness for the browser tests: builds (or reuses) the real chat server, starts it
// on a free loopback port with a temporary data folder, and drives Debian's Chromium
// through playwright-core. No browser download, no mock server.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '../../..');
export const webRoot = resolve(here, '..');
const serverBin = join(repoRoot, 'bin', 'chatserver');

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function newestMtime(dir, filter) {
  let newest = 0;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (filter(p)) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(dir);
  return newest;
}

/**
 * Builds bin/chatserver unless it is newer than every Go source and the built client it embeds.
 * PARLEY_E2E_SERVER_BIN names another binary to use instead (one built elsewhere, e.g. from
 * a clean checkout while the working tree's server does not build).
 */
export function ensureServerBinary() {
  if (process.env.PARLEY_E2E_SERVER_BIN) return resolve(process.env.PARLEY_E2E_SERVER_BIN);
  const goSources = Math.max(
    newestMtime(join(repoRoot, 'chatserver'), (p) => p.endsWith('.go') && !p.endsWith('_test.go')),
    statSync(join(repoRoot, 'go.mod')).mtimeMs,
    existsSync(join(repoRoot, 'go.sum')) ? statSync(join(repoRoot, 'go.sum')).mtimeMs : 0,
    newestMtime(join(webRoot, 'dist'), () => true),
  );
  if (existsSync(serverBin) && statSync(serverBin).mtimeMs > goSources) return serverBin;
  const t0 = Date.now();
  const r = spawnSync('go', ['build', '-o', serverBin, './chatserver/cmd/chatserver'], {
    cwd: repoRoot,
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: 9 * 60_000,
  });
  if (r.status !== 0) throw new Error(`go build ./chatserver/cmd/chatserver failed (${r.status ?? r.signal})`);
  console.error(`# built bin/chatserver in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return serverBin;
}

// Servers still running when the test process ends (a failed hook, Ctrl-C) die with it.
const live = new Set();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    for (const p of live) p.kill('SIGKILL');
    process.exit(130);
  });
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/**
 * Starts the chat server. Returns { url, port, dataDir, stop(), kill(), restart(), logs() }.
 * `env` adds or overrides PARLEY_* settings.
 */
export async function startServer({ env = {}, port, dataDir } = {}) {
  const bin = ensureServerBinary();
  port ??= await freePort();
  dataDir ??= mkdtempSync(join(tmpdir(), 'parley-e2e-'));
  const logs = [];
  const s = {
    url: `http://127.0.0.1:${port}`,
    port,
    dataDir,
    proc: null,
    logs: () => logs.join(''),
  };
  const launch = async () => {
    const proc = spawn(bin, [], {
      cwd: repoRoot,
      env: {
        ...process.env,
        PARLEY_ADDR: `127.0.0.1:${port}`,
        PARLEY_DATA_DIR: dataDir,
        PARLEY_RATE_LOGIN: '1000/1m',
        PARLEY_RATE_MESSAGES: '1000/1m',
        PARLEY_LOG_LEVEL: 'warn',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    s.proc = proc;
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    proc.stdout.on('data', (d) => logs.push(String(d)));
    proc.stderr.on('data', (d) => logs.push(String(d)));
    const exited = new Promise((res) => proc.once('exit', (code, sig) => res(`exited (${code ?? sig})`)));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await Promise.race([
        exited,
        fetch(`${s.url}/healthz`).then((x) => (x.ok ? 'up' : 'no'), () => 'no'),
      ]);
      if (r === 'up') return;
      if (r !== 'no') throw new Error(`chat server ${r} before listening:\n${s.logs()}`);
      if (Date.now() > deadline) throw new Error(`chat server not listening after 30 s:\n${s.logs()}`);
      await sleep(100);
    }
  };
  const exitOf = (proc) =>
    proc.exitCode !== null || proc.signalCode !== null ? Promise.resolve() : new Promise((res) => proc.once('exit', res));
  s.kill = async (signal = 'SIGKILL') => {
    const p = s.proc;
    if (!p) return;
    p.kill(signal);
    await exitOf(p);
    s.proc = null;
  };
  s.restart = launch;
  s.stop = async () => {
    await s.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  };
  await launch();
  return s;
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Debian's Chromium, headless; `extraArgs` adds switches (e.g. the fake media devices). */
export function launchBrowser(extraArgs = []) {
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: [...CHROMIUM_ARGS, ...extraArgs] });
}

/**
 * A person: a browser context (own cookies) and a page, with everything a test must
 * assert is absent collected: dialogs, page errors, CSP violations, console errors.
 */
export async function newPerson(browser, server, opts = {}) {
  const context = await browser.newContext({
    baseURL: server.url,
    viewport: opts.viewport ?? { width: 1200, height: 800 },
    // For axe checks only (e2e/axe.mjs): the injected axe script would break the CSP.
    ...(opts.bypassCSP ? { bypassCSP: true } : {}),
    ...(opts.colorScheme ? { colorScheme: opts.colorScheme } : {}),
    ...(opts.hasTouch ? { hasTouch: true, isMobile: true } : {}),
  });
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const page = await context.newPage();
  const p = { context, page, dialogs: [], pageErrors: [], console: [], sockets: [] };
  page.on('dialog', (d) => {
    p.dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => p.pageErrors.push(String(e.stack ?? e)));
  page.on('console', (m) => p.console.push({ type: m.type(), text: m.text() }));
  page.on('websocket', (ws) => {
    const rec = { url: ws.url(), sent: [], closed: false };
    ws.on('framesent', (f) => rec.sent.push(String(f.payload)));
    ws.on('close', () => (rec.closed = true));
    p.sockets.push(rec);
  });
  return p;
}

/** CSP violations seen by a person's page (events and console reports). */
export async function cspViolations(p) {
  const fromEvents = await p.page.evaluate(() => window.__csp ?? []).catch(() => []);
  const fromConsole = p.console.filter((m) => /Content Security Policy|Refused to (execute|load|apply|connect|frame)/i.test(m.text)).map((m) => m.text);
  return [...fromEvents, ...fromConsole];
}

let counter = 0;
export function uniquePerson(name) {
  counter++;
  const tag = `${Date.now().toString(36).slice(-4)}${counter}`;
  const username = `${name.toLowerCase()}_${tag}`;
  return { name, username, email: `${username}@example.com`, password: `correct horse ${name} battery ${tag}` };
}

export async function registerInUI(page, who) {
  await page.goto('/');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByLabel('Your name').fill(who.name);
  await page.getByLabel('Username', { exact: true }).fill(who.username);
  await page.getByLabel('Email', { exact: true }).fill(who.email);
  await page.getByLabel('Password', { exact: true }).fill(who.password);
  await page.locator('form').getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('button', { name: 'New chat' }).waitFor();
}

export async function signInUI(page, who) {
  await page.goto('/');
  await page.getByLabel('Username or email').fill(who.username);
  await page.getByLabel('Password', { exact: true }).fill(who.password);
  await page.locator('form').getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'New chat' }).waitFor();
}

/** A REST client for the test itself (session in the body, as an API client would). */
export class RestClient {
  constructor(base) {
    this.base = `${base}/api/v1`;
    this.token = null;
    this.refreshToken = null;
    this.user = null;
  }
  async raw(method, path, body, auth = true) {
    const headers = { 'Content-Type': 'application/json' };
    if (auth && this.token) headers.Authorization = `Bearer ${this.token}`;
    const r = await fetch(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    const data = text ? JSON.parse(text) : null;
    return { status: r.status, data };
  }
  adopt(d) {
    this.token = d.accessToken;
    this.refreshToken = d.refreshToken;
    this.user = d.user;
    return d;
  }
  async register(who) {
    const r = await this.raw('POST', '/auth/register', { username: who.username, email: who.email, password: who.password, displayName: who.name, session: 'body' }, false);
    if (r.status !== 201) throw new Error(`register ${who.username}: ${r.status} ${JSON.stringify(r.data)}`);
    return this.adopt(r.data);
  }
  async login(who) {
    const r = await this.raw('POST', '/auth/login', { login: who.username, password: who.password, session: 'body' }, false);
    if (r.status !== 200) throw new Error(`login ${who.username}: ${r.status} ${JSON.stringify(r.data)}`);
    return this.adopt(r.data);
  }
  async call(method, path, body) {
    let r = await this.raw(method, path, body);
    if (r.status === 401 && this.refreshToken) {
      const f = await this.raw('POST', '/auth/refresh', { refreshToken: this.refreshToken }, false);
      if (f.status !== 200) throw new Error(`refresh: ${f.status} ${JSON.stringify(f.data)}`);
      this.adopt(f.data);
      r = await this.raw(method, path, body);
    }
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.data)}`);
    return r.data;
  }
  direct(userId) {
    return this.call('POST', '/conversations/direct', { userId });
  }
  group(title, memberIds) {
    return this.call('POST', '/conversations/group', { title, memberIds });
  }
  send(conversationId, body) {
    const clientId = `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
    return this.call('POST', `/conversations/${conversationId}/messages`, { clientId, body });
  }
}
