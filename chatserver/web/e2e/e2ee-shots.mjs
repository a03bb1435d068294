// Screenshots of end-to-end encrypted conversations (issue 17) for docs/images: a device
// that joined later (the lock, the notice, messages from before it), the safety number
// dialog, and Devices with a second device. screenshots.mjs runs them with the rest;
// `node e2e/e2ee-shots.mjs docs/images` writes only these three.
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launchBrowser, newPerson, RestClient, signInUI, sleep, startServer, uniquePerson } from './harness.mjs';

const T = 20_000;

export async function e2eeShots({ browser, server, out }) {
  const who = {
    alice: { ...uniquePerson('Alice'), name: 'Alice Martin' },
    bob: { ...uniquePerson('Bob'), name: 'Bob Chen' },
    carol: { ...uniquePerson('Carol'), name: 'Carol Díaz' },
  };
  const api = {};
  for (const [k, p] of Object.entries(who)) {
    api[k] = new RestClient(server.url);
    await api[k].register(p);
  }
  const person = async (w, viewport = { width: 1280, height: 800 }) => {
    const p = await newPerson(browser, server, { viewport });
    await p.context.addInitScript(() => {
      window.__PARLEY_TEST__ = true;
    });
    await signInUI(p.page, w);
    await p.page.waitForFunction(() => !!window.__parleyStore?.e2ee?.deviceId, null, { timeout: T });
    return p;
  };
  const a = await person(who.alice);
  const b = await person(who.bob);
  const c = await person(who.carol);
  const send = async (p, text) => {
    await p.page.getByLabel('Message', { exact: true }).fill(text);
    await p.page.keyboard.press('Enter');
    await p.page.locator('[data-testid=message][data-status]').waitFor({ state: 'detached', timeout: T });
  };
  const conv = await a.page.evaluate(([bobId]) => window.__parleyStore.createGroup('Book club', [bobId], true).then((x) => x.id), [api.bob.user.id]);
  const open = async (p) => {
    await p.page.waitForFunction((id) => !!window.__parleyStore.e2ee.info(id), conv, { timeout: T });
    await p.page.locator(`[data-conversation="${conv}"]`).click();
    await p.page.getByRole('heading', { name: /Book club/ }).waitFor({ timeout: T });
  };
  await open(a);
  await open(b);
  await send(a, 'Next month: "The Left Hand of Darkness"?');
  await send(b, 'Yes! I have a copy to lend.');
  await a.page.evaluate(([id, carolId]) => window.__parleyStore.addMember(id, carolId), [conv, api.carol.user.id]);
  await open(c);
  await send(b, 'Welcome, Carol! We meet on Thursdays.');
  await c.page.locator('.msg-body', { hasText: 'We meet on Thursdays' }).waitFor({ timeout: T });
  await send(c, 'Thanks! Count me in.');
  await c.page.getByTestId('joined-later').waitFor({ timeout: T });
  await c.page.mouse.move(700, 150);
  await sleep(300);
  await c.page.screenshot({ path: join(out, 'e2ee-joined-later.png') });

  // The safety number Alice and Bob compare.
  await a.page.getByTestId('verify-button').click();
  await a.page.getByRole('dialog').getByRole('combobox').selectOption({ label: who.bob.name });
  await a.page.waitForFunction(() => document.querySelector('[data-testid=safety-number]')?.textContent?.length === 60, null, { timeout: T });
  await sleep(300);
  await a.page.screenshot({ path: join(out, 'safety-number.png') });
  await a.page.keyboard.press('Escape');

  // Alice signs in on a second browser: Devices lists both.
  const a2 = await person(who.alice);
  await a.page.getByRole('button', { name: 'Account menu' }).click();
  await a.page.getByRole('button', { name: 'Devices' }).click();
  await a.page.locator('[data-testid=device]').nth(1).waitFor({ timeout: T });
  await sleep(300);
  await a.page.screenshot({ path: join(out, 'devices.png') });
  for (const p of [a, a2, b, c]) await p.context.close();
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const out = resolve(process.argv[2] ?? 'docs/images');
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    await e2eeShots({ browser, server, out });
    console.log(`end-to-end encryption screenshots written to ${out}`);
  } finally {
    await browser.close();
    await server.stop();
  }
}
