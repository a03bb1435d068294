// Changing the password: a wrong current password is shown in words; a good change
// keeps this device signed in (it can still chat) and signs the other device out.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { cspViolations, launchBrowser, newPerson, registerInUI, RestClient, signInUI, startServer, uniquePerson } from './harness.mjs';

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

test('changing the password signs out the other device and keeps this one', async () => {
  const A = uniquePerson('Alice');
  const laptop = await newPerson(browser, server);
  const phone = await newPerson(browser, server);
  await registerInUI(laptop.page, A);
  await signInUI(phone.page, A);

  const page = laptop.page;
  await page.getByLabel('Account menu').click();
  await page.getByRole('button', { name: 'Change password' }).click();
  const dialog = page.getByRole('dialog', { name: 'Change password' });
  await dialog.getByLabel('Current password').fill('not my password at all');
  await dialog.getByLabel('New password', { exact: true }).fill('a brand new long passphrase');
  await dialog.getByLabel('New password again').fill('a brand new long passphrase');
  await dialog.getByRole('button', { name: 'Change password' }).click();
  await dialog.getByTestId('current-password-error').getByText('Your current password is not right. Please try again.').waitFor({ timeout: T });

  await dialog.getByLabel('Current password').fill(A.password);
  await dialog.getByRole('button', { name: 'Change password' }).click();
  await page.getByRole('status').getByText(/Your password is changed/).waitFor({ timeout: T });
  await page.getByRole('button', { name: 'Done' }).click();

  // The other device is signed out within seconds (its socket is closed, its refresh refused).
  await phone.page.getByRole('button', { name: 'Sign in' }).first().waitFor({ timeout: T });

  // This device still works: Bob messages Alice and she sees it live.
  const B = uniquePerson('Bob');
  const bob = new RestClient(server.url);
  await bob.register(B);
  const { users } = await bob.call('GET', `/users?q=${A.username}`);
  const conv = await bob.direct(users[0].id);
  await bob.send(conv.id, 'still there after the password change?');
  await page.getByRole('button', { name: /^Bob/ }).click({ timeout: T });
  await page.locator('[data-testid=message]').getByText('still there after the password change?').waitFor({ timeout: T });

  // The new password signs in; the old one does not.
  const check = new RestClient(server.url);
  await assert.rejects(check.login({ ...A }), /401|invalid_credentials/);
  await check.login({ ...A, password: 'a brand new long passphrase' });

  for (const p of [laptop, phone]) {
    assert.deepEqual(await cspViolations(p), []);
    assert.deepEqual(p.dialogs, []);
    assert.deepEqual(p.pageErrors, []);
  }
});
