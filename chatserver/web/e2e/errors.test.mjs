// Server errors reach people as sentences: wrong password, taken username, weak password,
// a message over the server's limit, and sending too fast.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { cspViolations, launchBrowser, newPerson, registerInUI, RestClient, startServer, uniquePerson } from './harness.mjs';

const T = 15_000;
let server, browser, page, person;

before(async () => {
  server = await startServer({ env: { PARLEY_MAX_MESSAGE_CHARS: '200', PARLEY_RATE_MESSAGES: '6/1m' } });
  browser = await launchBrowser();
  person = await newPerson(browser, server);
  page = person.page;
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('sign-in and registration errors are shown in words', async () => {
  const A = uniquePerson('Alice');
  await new RestClient(server.url).register(A);
  await page.goto('/');
  await page.getByLabel('Username or email').fill(A.username);
  await page.getByLabel('Password', { exact: true }).fill('not the password at all');
  await page.locator('form').getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').getByText("That username or email and password don't match. Please try again.").waitFor({ timeout: T });

  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByLabel('Your name').fill('Alice Again');
  await page.getByLabel('Username', { exact: true }).fill(A.username);
  await page.getByLabel('Email', { exact: true }).fill(`other-${A.email}`);
  await page.getByLabel('Password', { exact: true }).fill('a perfectly fine passphrase');
  await page.locator('form').getByRole('button', { name: 'Create account' }).click();
  await page.getByTestId('username-error').getByText('That username is taken. Please choose another.').waitFor({ timeout: T });

  await page.getByLabel('Username', { exact: true }).fill(`${A.username}x`);
  await page.getByLabel('Password', { exact: true }).fill('password');
  await page.locator('form').getByRole('button', { name: 'Create account' }).click();
  await page.getByTestId('new-password-error').getByText(/Please choose a stronger password/).waitFor({ timeout: T });
});

test('a message over the limit, and sending too fast, fail in words', async () => {
  const A = uniquePerson('Alice');
  const B = uniquePerson('Bob');
  const bob = new RestClient(server.url);
  await bob.register(B);
  await registerInUI(page, A);
  const { users } = await bob.call('GET', `/users?q=${A.username}`);
  const conv = await bob.direct(users[0].id);
  await bob.send(conv.id, 'hi');
  await page.getByRole('button', { name: /^Bob/ }).click({ timeout: T });

  const composer = page.getByLabel('Message', { exact: true });
  await composer.fill('y'.repeat(201));
  await page.keyboard.press('Enter');
  const failed = page.locator('[data-testid=message][data-status=failed]');
  await failed.getByText('That message is too long. Please shorten it (200 characters at most).').waitFor({ timeout: T });
  await failed.getByRole('button', { name: 'Discard' }).click();
  await failed.waitFor({ state: 'detached', timeout: T });

  // 6 messages a minute: the 7th (at the latest) is refused.
  for (let i = 1; i <= 8; i++) {
    await composer.fill(`quick ${i}`);
    await page.keyboard.press('Enter');
    await page.waitForTimeout(100);
  }
  await failed.first().getByText(/You're going a bit fast/).waitFor({ timeout: T });
  assert.equal(await page.getByRole('alert').filter({ hasText: /internal|undefined|null/i }).count(), 0);
  assert.deepEqual(await cspViolations(person), []);
  assert.deepEqual(person.pageErrors, []);
});
