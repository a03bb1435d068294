// The app shell (issue 12): the Account menu (Escape, a click outside, "Sign out everywhere"
// asks first), the profile (display name, seen live by others), dark mode, and the keyboard
// shortcuts (Ctrl+K quick switcher, Alt+Up/Down, Escape marks read, ? for help).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { cspViolations, launchBrowser, newPerson, registerInUI, RestClient, signInUI, startServer, uniquePerson } from './harness.mjs';

const T = 15_000;
let server, browser, alice, A, B, bob, carol, withBob, withCarol, group;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  alice = await newPerson(browser, server);
  A = uniquePerson('Alice');
  await registerInUI(alice.page, A);
  bob = new RestClient(server.url);
  B = { ...uniquePerson('Bob'), name: 'Bob Chen' };
  await bob.register(B);
  carol = new RestClient(server.url);
  await carol.register({ ...uniquePerson('Carol'), name: 'Carol Díaz' });
  const { users } = await bob.call('GET', `/users?q=${A.username}`);
  const aliceId = users[0].id;
  group = await carol.group('Weekend trip', [aliceId, bob.user.id]);
  await carol.send(group.id, 'lake on Saturday?');
  withCarol = await carol.direct(aliceId);
  await carol.send(withCarol.id, 'hi from Carol');
  withBob = await bob.direct(aliceId);
  await bob.send(withBob.id, 'hi from Bob');
  await alice.page.getByRole('button', { name: /^Bob Chen/ }).waitFor({ timeout: T });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const menuButton = () => alice.page.getByRole('button', { name: 'Account menu' });
const menuItem = (name) => alice.page.getByRole('button', { name, exact: true });

test('the Account menu closes with Escape (focus back on its button) and with a click outside', async () => {
  const page = alice.page;
  await menuButton().click();
  assert.equal(await menuButton().getAttribute('aria-expanded'), 'true');
  await menuItem('Sign out').waitFor();
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Edit profile', 'Down moves into the menu');
  await page.keyboard.press('Escape');
  await menuItem('Sign out').waitFor({ state: 'detached', timeout: 2000 });
  assert.equal(await menuButton().getAttribute('aria-expanded'), 'false');
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Account menu');
  await menuButton().click();
  await menuItem('Sign out').waitFor();
  await page.locator('.conv-nav').click({ position: { x: 5, y: 300 } });
  await menuItem('Sign out').waitFor({ state: 'detached', timeout: 2000 });
});

test('"Sign out everywhere" asks first; Cancel keeps the session', async () => {
  await menuButton().click();
  await menuItem('Sign out everywhere…').click();
  const dialog = alice.page.getByRole('dialog', { name: 'Sign out everywhere?' });
  await dialog.waitFor();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  await alice.page.waitForTimeout(500);
  assert.equal(await alice.page.getByLabel('Username or email').count(), 0, 'still signed in');
  // The session really is alive: a message goes through.
  await alice.page.getByRole('button', { name: /^Bob Chen/ }).click();
  await alice.page.getByLabel('Message', { exact: true }).fill('still here');
  await alice.page.keyboard.press('Enter');
  await alice.page.locator('[data-testid=message][data-status]').waitFor({ state: 'detached', timeout: T });
});

test('changing my display name shows at once here, and live at a contact', async () => {
  const bobPage = await newPerson(browser, server);
  await signInUI(bobPage.page, B);
  await bobPage.page.getByRole('button', { name: /^Alice/ }).click();
  await menuButton().click();
  await menuItem('Edit profile').click();
  const dialog = alice.page.getByRole('dialog', { name: 'Edit profile' });
  const name = dialog.getByLabel('Your name');
  assert.equal(await name.inputValue(), 'Alice');
  await name.fill('');
  await dialog.getByRole('button', { name: 'Save' }).click();
  assert.equal(await name.getAttribute('aria-invalid'), 'true', 'an empty name is refused on the field');
  await name.fill('Alice Martin');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await dialog.waitFor({ state: 'detached', timeout: T });
  await alice.page.getByTestId('my-name').getByText('Alice Martin').waitFor({ timeout: T });
  // Bob's page hears it (a `user` frame): the conversation list and the open conversation.
  await bobPage.page.getByRole('button', { name: /^Alice Martin/ }).waitFor({ timeout: T });
  // Stored: a reload shows it too.
  await bobPage.page.reload();
  await bobPage.page.getByRole('button', { name: /^Alice Martin/ }).waitFor({ timeout: T });
  assert.deepEqual(bobPage.pageErrors, []);
  await bobPage.context.close();
});

test('dark mode: follows the system, and the Light / Dark choice is kept across a reload', async () => {
  const bg = (page) => page.evaluate(() => getComputedStyle(document.body).backgroundColor || getComputedStyle(document.documentElement).backgroundColor);
  const rootBg = (page) => page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue('--bg').trim());
  // The system says dark; nothing chosen yet.
  const dark = await newPerson(browser, server, { colorScheme: 'dark' });
  await signInUI(dark.page, A);
  assert.equal(await rootBg(dark.page), '#0f141b');
  // Light, chosen in the Account menu, wins over the system; and stays after a reload.
  await dark.page.getByRole('button', { name: 'Account menu' }).click();
  await dark.page.getByRole('button', { name: 'Light', exact: true }).click();
  assert.equal(await dark.page.getByRole('button', { name: 'Light', exact: true }).getAttribute('aria-pressed'), 'true');
  assert.equal(await rootBg(dark.page), '#eef1f5');
  await dark.page.reload();
  await dark.page.getByRole('button', { name: 'New chat' }).waitFor({ timeout: T });
  assert.equal(await rootBg(dark.page), '#eef1f5');
  assert.ok(await dark.page.evaluate(() => document.documentElement.classList.contains('theme-light')));
  // Dark on a light system.
  await alice.page.getByRole('button', { name: 'Account menu' }).click();
  await alice.page.getByRole('button', { name: 'Dark', exact: true }).click();
  assert.equal(await rootBg(alice.page), '#0f141b');
  assert.notEqual(await bg(alice.page), 'rgb(238, 241, 245)');
  await alice.page.getByRole('button', { name: 'System', exact: true }).click();
  assert.equal(await rootBg(alice.page), '#eef1f5');
  await alice.page.keyboard.press('Escape');
  assert.deepEqual(await cspViolations(dark), []);
  await dark.context.close();
});

test('Ctrl+K opens the quick switcher: a filter over titles and member names, arrows and Enter', async () => {
  const page = alice.page;
  await page.getByRole('button', { name: /^Bob Chen/ }).click();
  await page.getByLabel('Message', { exact: true }).focus();
  await page.keyboard.press('Control+k');
  const dialog = page.getByRole('dialog', { name: 'Go to a conversation' });
  await dialog.waitFor({ timeout: 2000 });
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'switcher-input');
  assert.equal(await dialog.getByRole('option').count(), 3);
  // A member's name finds the group she is in too (and without the accent).
  await page.keyboard.type('diaz');
  const titles = async () => (await dialog.getByRole('option').allTextContents()).map((t) => t.replace(/\d+ members|\d+$/g, '').trim());
  assert.deepEqual((await titles()).map((t) => t.replace(/^[A-Z]{1,2}/, '')).sort(), ['Carol Díaz', 'Weekend trip'].sort());
  await page.keyboard.press('ArrowDown');
  const chosen = await dialog.locator('[role=option][aria-selected=true] .switcher-title').textContent();
  await page.keyboard.press('Enter');
  await dialog.waitFor({ state: 'detached' });
  await page.locator(`.conv[aria-current=page]`).getByText(chosen).waitFor({ timeout: T });
  // Escape closes it without going anywhere.
  await page.keyboard.press('Control+k');
  await dialog.waitFor();
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  await page.locator(`.conv[aria-current=page]`).getByText(chosen).waitFor();
});

test('Alt+Down and Alt+Up go to the next and previous conversation in list order', async () => {
  const page = alice.page;
  const order = await page.locator('.conv .conv-title').allTextContents();
  await page.locator('.conv').first().click();
  await page.getByLabel('Message', { exact: true }).focus();
  const current = () => page.locator('.conv[aria-current=page] .conv-title').textContent();
  assert.equal(await current(), order[0]);
  await page.keyboard.press('Alt+ArrowDown');
  await page.waitForFunction((t) => document.querySelector('.conv[aria-current=page] .conv-title')?.textContent === t, order[1]);
  await page.keyboard.press('Alt+ArrowDown');
  await page.waitForFunction((t) => document.querySelector('.conv[aria-current=page] .conv-title')?.textContent === t, order[2]);
  await page.keyboard.press('Alt+ArrowUp');
  await page.waitForFunction((t) => document.querySelector('.conv[aria-current=page] .conv-title')?.textContent === t, order[1]);
  assert.match(page.url(), /\/c\//);
});

test('Escape in a conversation marks it read ("New messages" goes); not while editing or in a dialog', async () => {
  const page = alice.page;
  await page.getByRole('button', { name: /^Bob Chen/ }).click();
  await page.getByRole('button', { name: /^Carol Díaz/ }).click();
  await bob.send(withBob.id, 'one');
  await bob.send(withBob.id, 'two');
  await page.getByRole('button', { name: /^Bob Chen.*2 unread/ }).click({ timeout: T });
  await page.getByTestId('new-divider').waitFor({ timeout: T });
  // In a dialog, Escape closes the dialog only. (The open conversation put the focus in
  // its message box, where ? is a character: the focus goes to the list first.)
  await page.locator('.conv[aria-current=page]').focus();
  await page.keyboard.press('?');
  const help = page.getByRole('dialog', { name: 'Keyboard shortcuts' });
  await help.waitFor({ timeout: 2000 });
  await page.keyboard.press('Escape');
  await help.waitFor({ state: 'detached' });
  assert.equal(await page.getByTestId('new-divider').count(), 1, 'the dialog took that Escape');
  await page.getByLabel('Message', { exact: true }).focus();
  await page.keyboard.press('Escape');
  await page.getByTestId('new-divider').waitFor({ state: 'detached', timeout: 2000 });
  assert.equal(await page.locator('[data-testid=unread]').count(), 0);
});

test('? outside a text field, and the Account menu, open the list of shortcuts; in a text field ? is a character', async () => {
  const page = alice.page;
  const help = page.getByRole('dialog', { name: 'Keyboard shortcuts' });
  const box = page.getByLabel('Message', { exact: true });
  await box.focus();
  await page.keyboard.type('why?');
  assert.equal(await help.count(), 0);
  assert.equal(await box.inputValue(), 'why?');
  await box.fill('');
  await page.locator('.conv-nav').click({ position: { x: 5, y: 300 } });
  await page.keyboard.press('?');
  await help.waitFor({ timeout: 2000 });
  for (const what of ['Find a conversation', 'Previous conversation', 'Next conversation', 'Mark the open conversation as read', 'Show these shortcuts']) {
    await help.getByText(what, { exact: false }).first().waitFor();
  }
  await help.getByRole('button', { name: 'Close', exact: true }).first().click();
  await help.waitFor({ state: 'detached' });
  await menuButton().click();
  await menuItem('Keyboard shortcuts').click();
  await help.waitFor({ timeout: 2000 });
  await page.keyboard.press('Escape');
  await help.waitFor({ state: 'detached' });
  assert.deepEqual(alice.pageErrors, []);
  assert.deepEqual(await cspViolations(alice), []);
});
