// The server is killed and started again (same data, same port): the page says it is
// reconnecting, comes back by itself and shows what was sent meanwhile, once; what was
// written meanwhile goes out by itself.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { cspViolations, launchBrowser, newPerson, registerInUI, RestClient, startServer, uniquePerson } from './harness.mjs';

const T = 15_000;
let server, browser, alice;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  alice = await newPerson(browser, server);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the page reconnects after a server restart and shows messages sent meanwhile', async () => {
  const A = uniquePerson('Alice');
  const B = uniquePerson('Bob');
  await registerInUI(alice.page, A);
  const bob = new RestClient(server.url);
  await bob.register(B);
  const users = await bob.call('GET', `/users?q=${A.username}`);
  const conv = await bob.direct(users.users[0].id);
  await bob.send(conv.id, 'before the restart');
  await alice.page.getByRole('button', { name: /^Bob/ }).click({ timeout: T });
  const body = (text) => alice.page.locator('.msg-body', { hasText: text });
  await body('before the restart').waitFor({ timeout: T });

  await server.kill('SIGKILL');
  await alice.page.getByTestId('conn-banner').getByText('Reconnecting…').waitFor({ timeout: T });
  // Written while reconnecting: it waits, pending, and goes out once the page is back.
  await alice.page.getByLabel('Message', { exact: true }).fill('written while reconnecting');
  await alice.page.keyboard.press('Enter');
  await alice.page.locator('[data-testid=message][data-status=pending]').waitFor({ timeout: T });
  await alice.page.waitForTimeout(1000);
  assert.equal(await alice.page.locator('[data-testid=message][data-status=failed]').count(), 0);
  await server.restart();
  // Sent right after the restart, while the page waits for its next attempt.
  await bob.send(conv.id, 'sent while you were away 1');
  await bob.send(conv.id, 'sent while you were away 2');
  await body('sent while you were away 2').waitFor({ timeout: 30_000 });
  await alice.page.getByTestId('conn-banner').waitFor({ state: 'detached', timeout: T });
  await alice.page.locator('[data-testid=message][data-status]').waitFor({ state: 'detached', timeout: T });
  for (const t of ['before the restart', 'sent while you were away 1', 'sent while you were away 2', 'written while reconnecting']) {
    assert.equal(await body(t).count(), 1, `"${t}" shown once`);
  }
  const stored = await bob.call('GET', `/conversations/${conv.id}/messages?limit=50`);
  assert.equal(stored.messages.filter((m) => m.body === 'written while reconnecting').length, 1, 'stored once');
  // Live again, both ways.
  await alice.page.getByLabel('Message', { exact: true }).fill('back online');
  await alice.page.keyboard.press('Enter');
  await alice.page.locator('[data-testid=message][data-status]').waitFor({ state: 'detached', timeout: T });
  await bob.send(conv.id, 'welcome back');
  await body('welcome back').waitFor({ timeout: T });
});

test('a message written while the server is away waits, and goes out by itself once it is back (no Retry)', async () => {
  // (How long the page keeps trying is e2e/reconnect.test.mjs: longer than a minute.)
  await server.kill('SIGKILL');
  await alice.page.getByTestId('conn-banner').getByText('Reconnecting…').waitFor({ timeout: T });
  await alice.page.getByLabel('Message', { exact: true }).fill('written while offline');
  await alice.page.keyboard.press('Enter');
  await alice.page.locator('[data-testid=message][data-status=pending]').waitFor({ timeout: T });
  await alice.page.waitForTimeout(5000);
  assert.equal(await alice.page.locator('[data-testid=message][data-status=failed]').count(), 0, 'not failed');
  await server.restart();
  // The next attempt is at most 6 s away here (the 5 s step, jitter included).
  await alice.page.getByTestId('conn-banner').waitFor({ state: 'detached', timeout: 20_000 });
  await alice.page.locator('[data-testid=message][data-status]').waitFor({ state: 'detached', timeout: T });
  assert.equal(await alice.page.locator('.msg-body', { hasText: 'written while offline' }).count(), 1);
  assert.deepEqual(await cspViolations(alice), []);
  assert.deepEqual(alice.pageErrors, []);
  assert.deepEqual(alice.dialogs, []);
});

test('when the session cannot be checked at page load, the page offers to try again', async () => {
  // As the server answers while its database is down: 503 unavailable.
  await alice.context.route('**/api/v1/auth/refresh', (route) =>
    route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: { code: 'unavailable', message: 'database unavailable' } }) }),
  );
  await alice.page.reload();
  await alice.page.getByRole('alert').getByText('Parley is having trouble right now', { exact: false }).waitFor({ timeout: T });
  assert.equal(await alice.page.getByLabel('Username or email').count(), 0, 'not sent to the sign-in form');
  await alice.context.unroute('**/api/v1/auth/refresh');
  // The page also tries again by itself (2 s after the failure, then 5, 10, 30): the button
  // may already be gone.
  await alice.page.getByRole('button', { name: 'Try again' }).click({ timeout: 1000 }).catch(() => {});
  await alice.page.getByRole('button', { name: 'New chat' }).waitFor({ timeout: T });
  await alice.page.getByRole('button', { name: /^Bob/ }).click();
  await alice.page.locator('.msg-body', { hasText: 'written while offline' }).waitFor({ timeout: T });
  assert.deepEqual(alice.pageErrors, []);
});
