// With a 5-second access token the session goes on across many expiries: no visible
// error, one WebSocket kept alive by `auth` frames, and a reload still signs in.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { cspViolations, launchBrowser, newPerson, registerInUI, RestClient, sleep, startServer, uniquePerson } from './harness.mjs';

const T = 15_000;
let server, browser, alice;

before(async () => {
  server = await startServer({ env: { PARLEY_ACCESS_TOKEN_TTL: '5s' } });
  browser = await launchBrowser();
  alice = await newPerson(browser, server);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the session continues across access-token expiry without a visible error', async () => {
  const A = uniquePerson('Alice');
  const B = uniquePerson('Bob');
  const bob = new RestClient(server.url);
  await registerInUI(alice.page, A);
  await bob.register(B);
  const me = await (async () => {
    const r = new RestClient(server.url);
    await r.login(A);
    return r.user;
  })();
  const conv = await bob.direct(me.id);
  await bob.send(conv.id, 'hello from before');
  await alice.page.getByRole('button', { name: /^Bob/ }).click({ timeout: T });
  await alice.page.locator('.msg-body', { hasText: 'hello from before' }).waitFor({ timeout: T });

  // Four rounds over ~16 s: more than three token lifetimes.
  for (let i = 1; i <= 4; i++) {
    await sleep(4000);
    await bob.send(conv.id, `bob round ${i}`);
    await alice.page.locator('.msg-body', { hasText: `bob round ${i}` }).waitFor({ timeout: T });
    await alice.page.getByLabel('Message', { exact: true }).fill(`alice round ${i}`);
    await alice.page.keyboard.press('Enter');
    await alice.page.locator('[data-testid=message][data-status]').waitFor({ state: 'detached', timeout: T });
  }
  const bobSaw = await bob.call('GET', `/conversations/${conv.id}/messages?limit=50`);
  assert.deepEqual(
    bobSaw.messages.filter((m) => m.body.startsWith('alice round')).map((m) => m.body),
    ['alice round 1', 'alice round 2', 'alice round 3', 'alice round 4'],
  );

  // Nothing visible went wrong.
  assert.equal(await alice.page.getByRole('alert').count(), 0, 'an alert is shown');
  assert.equal(await alice.page.getByTestId('conn-banner').count(), 0, 'a connection banner is shown');
  assert.equal(await alice.page.getByLabel('Username or email').count(), 0, 'signed out');
  // One socket all along, its session extended with fresh tokens.
  const open = alice.sockets.filter((s) => !s.closed);
  assert.equal(alice.sockets.length, 1, `sockets opened: ${alice.sockets.length}`);
  assert.equal(open.length, 1);
  const auths = open[0].sent.filter((f) => f.includes('"type":"auth"')).length;
  assert.ok(auths >= 3, `auth frames sent: ${auths}`);

  // After a while with no activity at all, a reload still restores the session.
  await sleep(6000);
  await alice.page.reload();
  await alice.page.locator('.msg-body', { hasText: 'alice round 4' }).waitFor({ timeout: T });
  assert.equal(await alice.page.getByRole('alert').count(), 0);
  assert.deepEqual(await cspViolations(alice), []);
  assert.deepEqual(alice.pageErrors, []);
});

test('two tabs of one browser, sharing the refresh cookie, stay signed in across refreshes', async () => {
  // Same browser context: the tabs share the single-use refresh cookie.
  const tab2 = await alice.context.newPage();
  const errors = [];
  tab2.on('pageerror', (e) => errors.push(String(e)));
  await tab2.goto('/');
  await tab2.getByRole('button', { name: 'New chat' }).waitFor({ timeout: T });
  // Slow every refresh down and reload both tabs at once, so their refreshes overlap. (The
  // tabs take turns through a Web Lock; Chromium attaches the cookie when a held request
  // goes out, so this test does not by itself force two uses of one refresh token.)
  let held = 0;
  await alice.context.route('**/api/v1/auth/refresh', async (route) => {
    held++;
    await sleep(700);
    await route.continue().catch(() => {}); // the page may have gone away meanwhile
  });
  await Promise.all([alice.page.reload(), tab2.reload()]);
  for (const p of [alice.page, tab2]) await p.getByRole('button', { name: 'New chat' }).waitFor({ timeout: T });
  await sleep(7000); // and a couple of timed refreshes in each tab
  await alice.context.unroute('**/api/v1/auth/refresh');
  assert.ok(held >= 4, `refreshes seen: ${held}`);
  for (const p of [alice.page, tab2]) {
    assert.equal(await p.getByLabel('Username or email').count(), 0, 'a tab was signed out');
    assert.equal(await p.getByRole('alert').count(), 0);
  }
  // Both still work.
  await tab2.getByRole('button', { name: /^Bob/ }).click();
  await tab2.getByLabel('Message', { exact: true }).fill('from the second tab');
  await tab2.keyboard.press('Enter');
  await tab2.locator('[data-testid=message][data-status]').waitFor({ state: 'detached', timeout: T });
  await alice.page.locator('.msg-body', { hasText: 'from the second tab' }).waitFor({ timeout: T });
  assert.deepEqual(errors, []);
});
