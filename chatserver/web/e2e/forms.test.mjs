// Issue 12 defect 6: errors are on the field they concern, in one style, with no browser
// bubbles: the field is marked aria-invalid and described by the error, and the focus goes
// to the first field in error. The server's `error.field` says which field, when it can.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, newPerson, registerInUI, RestClient, startServer, uniquePerson } from './harness.mjs';

const T = 15_000;
let server, browser, p;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  p = await newPerson(browser, server);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The state of a field as a screen reader and the eye get it. */
async function fieldState(page, id) {
  return page.evaluate((id) => {
    const el = document.getElementById(id);
    const described = (el.getAttribute('aria-describedby') ?? '').split(/\s+/).filter(Boolean).map((d) => document.getElementById(d)?.textContent?.trim());
    return { invalid: el.getAttribute('aria-invalid'), described, focused: document.activeElement === el, validationMessage: el.validationMessage };
  }, id);
}

test('sign-in: the first field has the focus; empty fields are reported on the fields, no bubble', async () => {
  await p.page.goto('/');
  await p.page.getByLabel('Username or email').waitFor();
  assert.equal(await p.page.evaluate(() => document.activeElement?.id), 'login', 'focus in the first field');
  assert.equal(await p.page.locator('form[novalidate]').count(), 1);
  await p.page.locator('form').getByRole('button', { name: 'Sign in' }).click();
  const login = await fieldState(p.page, 'login');
  assert.equal(login.invalid, 'true');
  assert.ok(login.described.includes('! Enter your username or email.') || login.described.some((d) => d?.endsWith('Enter your username or email.')), JSON.stringify(login));
  assert.equal(login.focused, true);
  assert.equal((await fieldState(p.page, 'password')).invalid, 'true');
  // Typing clears the field's error.
  await p.page.getByLabel('Username or email').fill('someone');
  assert.equal((await fieldState(p.page, 'login')).invalid, null);
});

test("registration: a taken username is reported on the username field, with the focus there", async () => {
  const A = uniquePerson('Alice');
  await new RestClient(server.url).register(A);
  await p.page.goto('/');
  await p.page.getByRole('button', { name: 'Create account' }).click();
  await p.page.getByLabel('Your name').fill('Alice Again');
  await p.page.getByLabel('Username', { exact: true }).fill(A.username);
  await p.page.getByLabel('Email', { exact: true }).fill(`other-${A.email}`);
  await p.page.getByLabel('Password', { exact: true }).fill('a perfectly fine passphrase');
  await p.page.locator('form').getByRole('button', { name: 'Create account' }).click();
  await p.page.getByTestId('username-error').waitFor({ timeout: T });
  const u = await fieldState(p.page, 'username');
  assert.equal(u.invalid, 'true');
  assert.equal(u.focused, true, 'the focus is on the username');
  assert.ok(u.described.some((d) => d?.includes('That username is taken')), JSON.stringify(u.described));
  assert.equal((await fieldState(p.page, 'new-password')).invalid, null, 'the password is not blamed');
  assert.equal(await p.page.getByTestId('new-password-error').count(), 0);

  // A taken email, on the email field.
  await p.page.getByLabel('Username', { exact: true }).fill(`${A.username}x`);
  await p.page.getByLabel('Email', { exact: true }).fill(A.email);
  await p.page.locator('form').getByRole('button', { name: 'Create account' }).click();
  await p.page.getByTestId('email-error').waitFor({ timeout: T });
  const e = await fieldState(p.page, 'email');
  assert.equal(e.focused, true);
  assert.ok(e.described.some((d) => d?.includes('account with that email')), JSON.stringify(e.described));
  assert.equal(await p.page.getByTestId('username-error').count(), 0);
});

test('registration: checks done here are on their fields too, the focus on the first one, no browser bubbles', async () => {
  await p.page.goto('/');
  await p.page.getByRole('button', { name: 'Create account' }).click();
  await p.page.getByLabel('Your name').fill('Zed');
  await p.page.getByLabel('Username', { exact: true }).fill('no spaces allowed');
  await p.page.getByLabel('Email', { exact: true }).fill('not-an-email');
  await p.page.getByLabel('Password', { exact: true }).fill('short');
  await p.page.locator('form').getByRole('button', { name: 'Create account' }).click();
  const u = await fieldState(p.page, 'username');
  assert.equal(u.focused, true, 'the focus is on the first field in error');
  for (const id of ['username', 'email', 'new-password']) assert.equal((await fieldState(p.page, id)).invalid, 'true', id);
  assert.equal((await fieldState(p.page, 'displayName')).invalid, null);
  // The errors look the same: one class, and the browser's own bubbles never show
  // (novalidate: the browser's checks do not block the submit).
  const classes = await p.page.locator('.field-error').evaluateAll((els) => els.map((e) => e.className));
  assert.deepEqual(classes, ['field-error', 'field-error', 'field-error']);
  assert.equal(await p.page.locator('form[novalidate]').count(), 1);
  // A weak password the server refuses goes on the password field.
  await p.page.getByLabel('Username', { exact: true }).fill(uniquePerson('Zed').username);
  await p.page.getByLabel('Email', { exact: true }).fill(`zed${Date.now()}@example.com`);
  await p.page.getByLabel('Password', { exact: true }).fill('password');
  await p.page.locator('form').getByRole('button', { name: 'Create account' }).click();
  await p.page.getByTestId('new-password-error').getByText(/Please choose a stronger password/).waitFor({ timeout: T });
  assert.equal((await fieldState(p.page, 'new-password')).focused, true);
});

test('change password: a wrong current password is on that field; a too short new one on its own', async () => {
  const A = uniquePerson('Alice');
  await registerInUI(p.page, A);
  await p.page.getByRole('button', { name: 'Account menu' }).click();
  await p.page.getByRole('button', { name: 'Change password' }).click();
  const dialog = p.page.getByRole('dialog', { name: 'Change password' });
  await dialog.getByLabel('Current password').fill('not my password at all');
  await dialog.getByLabel('New password', { exact: true }).fill('short');
  await dialog.getByLabel('New password again').fill('short');
  await dialog.getByRole('button', { name: 'Change password' }).click();
  assert.equal((await fieldState(p.page, 'new-password-1')).focused, true);
  assert.equal((await fieldState(p.page, 'current-password')).invalid, null);
  await dialog.getByLabel('New password', { exact: true }).fill('a brand new long passphrase');
  await dialog.getByLabel('New password again').fill('a brand new long passphrase');
  await dialog.getByRole('button', { name: 'Change password' }).click();
  await p.page.getByTestId('current-password-error').getByText('Your current password is not right').waitFor({ timeout: T });
  const cur = await fieldState(p.page, 'current-password');
  assert.equal(cur.invalid, 'true');
  assert.equal(cur.focused, true);
  assert.equal((await fieldState(p.page, 'new-password-1')).invalid, null);
  assert.deepEqual(p.pageErrors, []);
});
