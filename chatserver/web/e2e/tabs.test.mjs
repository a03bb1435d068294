// Issue 12 defect 2: the tabs of one browser share one session (the refresh cookie), so they
// sign out together; a session ended elsewhere is noticed in every tab; and a first visit
// does not ask for a session it cannot have (no 401 in the console, defect 8).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { cspViolations, launchBrowser, newPerson, registerInUI, RestClient, startServer, uniquePerson } from './harness.mjs';

const T = 15_000;
let server, browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('signing out in one tab signs out every tab of the browser, at its / address', async () => {
  const A = uniquePerson('Alice');
  const p = await newPerson(browser, server);
  await registerInUI(p.page, A);
  const bob = new RestClient(server.url);
  await bob.register(uniquePerson('Bob'));
  const { users } = await bob.call('GET', `/users?q=${A.username}`);
  const conv = await bob.direct(users[0].id);
  await bob.send(conv.id, 'hello there');
  const tab2 = await p.context.newPage();
  const tab2Errors = [];
  tab2.on('pageerror', (e) => tab2Errors.push(String(e)));
  await tab2.goto('/');
  await tab2.getByRole('button', { name: /^Bob/ }).click({ timeout: T });
  assert.match(tab2.url(), /\/c\//);

  await p.page.getByRole('button', { name: 'Account menu' }).click();
  await p.page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await p.page.getByLabel('Username or email').waitFor({ timeout: T });
  // The other tab follows within moments, without a reload, and cannot send any more.
  await tab2.getByLabel('Username or email').waitFor({ timeout: 3000 });
  assert.equal(await tab2.getByLabel('Message', { exact: true }).count(), 0);
  assert.equal(new URL(tab2.url()).pathname, '/', 'the conversation address is gone');
  assert.equal(await tab2.getByText('Your session has ended').count(), 0, 'a sign-out is not "session ended"');
  // Both stay signed out across a reload.
  await tab2.reload();
  await tab2.getByLabel('Username or email').waitFor({ timeout: T });

  // Signing in in one tab brings the other one in too.
  await tab2.getByLabel('Username or email').fill(A.username);
  await tab2.getByLabel('Password', { exact: true }).fill(A.password);
  await tab2.locator('form').getByRole('button', { name: 'Sign in' }).click();
  await tab2.getByRole('button', { name: 'New chat' }).waitFor({ timeout: T });
  await p.page.getByRole('button', { name: 'New chat' }).waitFor({ timeout: T });
  assert.deepEqual(tab2Errors, []);
  assert.deepEqual(p.pageErrors, []);
  assert.deepEqual(await cspViolations(p), []);
});

test('a session ended elsewhere (signed out everywhere from another device) is noticed in every tab', async () => {
  const A = uniquePerson('Alice');
  const p = await newPerson(browser, server);
  await registerInUI(p.page, A);
  const tab2 = await p.context.newPage();
  await tab2.goto('/');
  await tab2.getByRole('button', { name: 'New chat' }).waitFor({ timeout: T });
  const phone = new RestClient(server.url);
  await phone.login(A);
  await phone.call('POST', '/auth/logout-all');
  for (const page of [p.page, tab2]) {
    await page.getByText('Your session has ended. Please sign in again.').waitFor({ timeout: T });
    assert.equal(new URL(page.url()).pathname, '/');
  }
});

test('a first visit, and a visit after signing out, ask for no session (no 401 in the console)', async () => {
  const p = await newPerson(browser, server);
  const refreshes = [];
  p.page.on('request', (r) => {
    if (r.url().includes('/api/v1/auth/refresh')) refreshes.push(r.url());
  });
  await p.page.goto('/');
  await p.page.getByLabel('Username or email').waitFor({ timeout: T });
  await p.page.waitForTimeout(500);
  assert.deepEqual(refreshes, [], 'no refresh on a first visit');
  const A = uniquePerson('Alice');
  await registerInUI(p.page, A);
  await p.page.reload();
  await p.page.getByRole('button', { name: 'New chat' }).waitFor({ timeout: T });
  assert.equal(refreshes.length, 1, 'a reload while signed in restores the session');
  await p.page.getByRole('button', { name: 'Account menu' }).click();
  await p.page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await p.page.getByLabel('Username or email').waitFor({ timeout: T });
  await p.page.reload();
  await p.page.getByLabel('Username or email').waitFor({ timeout: T });
  await p.page.waitForTimeout(500);
  assert.equal(refreshes.length, 1, 'no refresh after signing out');
  const errors = p.console.filter((m) => m.type === 'error');
  assert.deepEqual(errors, [], 'nothing in the console');
});
