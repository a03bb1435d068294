// Browser tests: real chat server, Debian's Chromium. Two people chat live, typing and
// "seen" show on the other side, a group of three works, a reload keeps the session,
// hostile message text stays text, and the CSP is never violated.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cspViolations, launchBrowser, newPerson, registerInUI, RestClient, signInUI, startServer, uniquePerson } from './harness.mjs';

const T = 15_000;

describe('chat in the browser', () => {
  let server, browser;
  const people = [];
  let alice, bob, carol;
  let A, B, C;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    A = uniquePerson('Alice');
    B = uniquePerson('Bob');
    C = uniquePerson('Carol');
    alice = await newPerson(browser, server);
    bob = await newPerson(browser, server);
    carol = await newPerson(browser, server);
    people.push(alice, bob, carol);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  const messages = (p) => p.page.locator('[data-testid=message]');
  const messageWith = (p, text) => p.page.locator('[data-testid=message] .msg-body', { hasText: text });

  test('two people register, start a direct conversation and chat live', async () => {
    await registerInUI(alice.page, A);
    await registerInUI(bob.page, B);

    // Alice finds Bob and starts a conversation.
    await alice.page.getByRole('button', { name: 'New chat' }).click();
    await alice.page.getByLabel('Find a person').fill(B.username);
    await alice.page.getByRole('button', { name: `Message Bob (@${B.username})` }).click();
    await alice.page.getByRole('heading', { name: 'Bob' }).waitFor({ timeout: T });

    await alice.page.getByLabel('Message', { exact: true }).fill('Hi Bob, how are you?');
    await alice.page.keyboard.press('Enter');
    // Shown at once, then confirmed by the ack.
    await messageWith(alice, 'Hi Bob, how are you?').waitFor({ timeout: T });
    await alice.page.locator('[data-testid=message][data-status]').waitFor({ state: 'detached', timeout: T });

    // Bob sees the conversation appear with an unread badge, live.
    const conv = bob.page.getByRole('button', { name: /^Alice.*1 unread/ });
    await conv.waitFor({ timeout: T });
    await conv.click();
    await messageWith(bob, 'Hi Bob, how are you?').waitFor({ timeout: T });

    // Alice sees that Bob has seen it.
    await alice.page.locator('[data-testid=seen]', { hasText: 'Seen' }).waitFor({ timeout: T });

    // Bob types: Alice sees the typing indicator.
    await bob.page.getByLabel('Message', { exact: true }).pressSequentially('Fine', { delay: 30 });
    await alice.page.getByTestId('typing').getByText('Bob is typing…').waitFor({ timeout: T });
    await bob.page.getByRole('button', { name: 'Send' }).click();
    await messageWith(alice, 'Fine').waitFor({ timeout: T });
    // The typing indicator goes away once his message arrives.
    await alice.page.getByTestId('typing').getByText('Bob is typing…').waitFor({ state: 'detached', timeout: T });

    // Presence: each sees the other online.
    await alice.page.getByTestId('conv-subtitle').getByText('Online').waitFor({ timeout: T });

    assert.equal(await messages(alice).count(), 2);
    assert.equal(await messages(bob).count(), 2);
  });

  test('hostile message text is shown as text and runs nothing', async () => {
    const evil = ['<img src=x onerror=alert(1)>', '<script>alert(1)</script>', 'javascript:alert(1) <a href="javascript:alert(2)">x</a>'];
    for (const text of evil) {
      await alice.page.getByLabel('Message', { exact: true }).fill(text);
      await alice.page.keyboard.press('Enter');
    }
    for (const p of [alice, bob]) {
      for (const text of evil) {
        const el = p.page.locator('[data-testid=message] .msg-body').filter({ hasText: text }).last();
        await el.waitFor({ timeout: T });
        assert.equal(await el.textContent(), text);
      }
      assert.equal(await p.page.locator('.msg-list img, .msg-list script').count(), 0);
      assert.equal(await p.page.locator('.msg-list a[href^="javascript"]').count(), 0);
    }
    // Give a would-be handler a moment to fire.
    await alice.page.waitForTimeout(500);
    assert.deepEqual(alice.dialogs, []);
    assert.deepEqual(bob.dialogs, []);
  });

  test('long words wrap and links are safe', async () => {
    const long = 'x'.repeat(600);
    await bob.page.getByLabel('Message', { exact: true }).fill(`${long} see https://example.com/page`);
    await bob.page.keyboard.press('Enter');
    const bubble = alice.page.locator('[data-testid=message] .bubble').filter({ hasText: 'example.com/page' });
    await bubble.waitFor({ timeout: T });
    const pane = await alice.page.locator('.messages').boundingBox();
    const box = await bubble.boundingBox();
    assert.ok(box.width <= pane.width, `bubble ${box.width}px wider than the pane ${pane.width}px`);
    const link = bubble.getByRole('link', { name: 'https://example.com/page' });
    assert.equal(await link.getAttribute('href'), 'https://example.com/page');
    assert.equal(await link.getAttribute('rel'), 'noopener noreferrer');
  });

  test('a group of three: create, talk, add and remove members', async () => {
    await registerInUI(carol.page, C);

    // Alice creates a group with Bob.
    await alice.page.getByRole('button', { name: 'New group' }).click();
    await alice.page.getByLabel('Group name').fill('Weekend trip');
    await alice.page.getByLabel('Add people').fill(B.username);
    await alice.page.getByRole('button', { name: `Add Bob (@${B.username})` }).click();
    await alice.page.getByRole('button', { name: 'Create group' }).click();
    await alice.page.getByRole('heading', { name: 'Weekend trip' }).waitFor({ timeout: T });

    // She adds Carol from the members dialog.
    await alice.page.getByRole('button', { name: 'Members' }).click();
    await alice.page.getByLabel('Add people').fill(C.username);
    await alice.page.getByRole('button', { name: `Add Carol (@${C.username})` }).click();
    await alice.page.getByRole('dialog').getByText(`@${C.username}`).waitFor({ timeout: T });
    await alice.page.getByRole('button', { name: 'Close' }).click();

    await alice.page.getByLabel('Message', { exact: true }).fill('Who is in for Saturday?');
    await alice.page.keyboard.press('Enter');

    for (const p of [bob, carol]) {
      await p.page.getByRole('button', { name: /^Weekend trip/ }).click({ timeout: T });
      await messageWith(p, 'Who is in for Saturday?').waitFor({ timeout: T });
    }
    await carol.page.getByLabel('Message', { exact: true }).fill('Me!');
    await carol.page.keyboard.press('Enter');
    for (const p of [alice, bob]) {
      const m = p.page.locator('[data-testid=message]').filter({ hasText: 'Me!' });
      await m.waitFor({ timeout: T });
      assert.equal(await m.locator('.msg-sender').textContent(), 'Carol');
    }
    // Seen by both in the group.
    await alice.page.locator('[data-testid=seen]', { hasText: /Seen by (Bob, Carol|Carol, Bob)/ }).waitFor({ timeout: T });

    // Alice removes Carol: the group leaves Carol's list.
    await alice.page.getByRole('button', { name: 'Members' }).click();
    await alice.page.getByRole('button', { name: 'Remove Carol' }).click();
    await alice.page.getByRole('dialog').getByText(`@${C.username}`).waitFor({ state: 'detached', timeout: T });
    await alice.page.getByRole('button', { name: 'Close' }).click();
    await carol.page.getByRole('button', { name: /^Weekend trip/ }).waitFor({ state: 'detached', timeout: T });
    await alice.page.getByLabel('Message', { exact: true }).fill('Carol cannot read this');
    await alice.page.keyboard.press('Enter');
    await messageWith(bob, 'Carol cannot read this').waitFor({ timeout: T });
    assert.equal(await messageWith(carol, 'Carol cannot read this').count(), 0);
  });

  test('history loads as you scroll up, with day order kept and nothing twice', async () => {
    const rest = new RestClient(server.url);
    await rest.login(B);
    const { users } = await rest.call('GET', `/users?q=${A.username}`);
    const conv = await rest.direct(users[0].id);
    for (let i = 1; i <= 120; i++) await rest.send(conv.id, `history ${i}`);
    // Alice on a second device: only the newest page is loaded at first.
    const second = await newPerson(browser, server);
    people.push(second);
    await signInUI(second.page, A);
    await second.page.getByRole('button', { name: /^Bob/ }).click();
    await messageWith(second, 'history 120').waitFor({ timeout: T });
    assert.equal(await messageWith(second, /^history 1$/).count(), 0, 'the oldest message is not loaded yet');
    const list = second.page.locator('.messages');
    for (let i = 0; i < 10 && (await messageWith(second, /^history 1$/).count()) === 0; i++) {
      await list.evaluate((el) => (el.scrollTop = 0));
      await second.page.waitForTimeout(400);
    }
    await messageWith(second, /^history 1$/).waitFor({ timeout: T });
    const seqs = await second.page.locator('.msg[data-seq]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))));
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'messages in seq order');
    assert.equal(new Set(seqs).size, seqs.length, 'no message twice');
    assert.equal(seqs[0], 1);
    assert.equal(seqs.length, seqs[seqs.length - 1], 'no gap');
    await second.context.close();
  });

  test('a reload keeps the session and the conversation', async () => {
    await bob.page.getByRole('button', { name: /^Alice/ }).click();
    const url = bob.page.url();
    assert.match(url, /\/c\//);
    await bob.page.reload();
    await bob.page.getByRole('button', { name: 'New chat' }).waitFor({ timeout: T });
    await messageWith(bob, 'history 120').waitFor({ timeout: T });
    assert.equal(await bob.page.getByLabel('Username or email').count(), 0);
    // Still live after the reload.
    await alice.page.getByRole('button', { name: /^Bob/ }).click();
    await alice.page.getByLabel('Message', { exact: true }).fill('Still here after your reload?');
    await alice.page.keyboard.press('Enter');
    await messageWith(bob, 'Still here after your reload?').waitFor({ timeout: T });
    await alice.page.locator('[data-testid=seen]').waitFor({ timeout: T });
    // "Seen" comes back after Alice reloads too (members' read markers in the list).
    await alice.page.reload();
    const last = alice.page.locator('[data-testid=message]').filter({ hasText: 'Still here after your reload?' });
    await last.locator('[data-testid=seen]', { hasText: 'Seen' }).waitFor({ timeout: T });
  });

  test('keyboard only: start a conversation and send a message', async () => {
    const page = bob.page;
    await page.locator('body').focus();
    let found = false;
    for (let i = 0; i < 15 && !found; i++) {
      await page.keyboard.press('Tab');
      found = (await page.evaluate(() => document.activeElement?.textContent?.trim())) === 'New chat';
    }
    assert.ok(found, 'Tab reaches "New chat"');
    await page.keyboard.press('Enter');
    // The dialog puts the focus in its search field.
    await page.waitForFunction(() => document.activeElement?.id === 'user-search', null, { timeout: T });
    await page.keyboard.type(C.username);
    await page.getByRole('button', { name: `Message Carol (@${C.username})` }).waitFor({ timeout: T });
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), `Message Carol (@${C.username})`);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Carol' }).waitFor({ timeout: T });
    // The composer has the focus: type and press Enter.
    await page.waitForFunction(() => document.activeElement?.id === 'composer-input', null, { timeout: T });
    await page.keyboard.type('Typed without a mouse');
    await page.keyboard.press('Enter');
    await carol.page.getByRole('button', { name: /^Bob.*1 unread/ }).click({ timeout: T });
    await messageWith(carol, 'Typed without a mouse').waitFor({ timeout: T });
    // Escape closes a dialog and gives the focus back to the button that opened it.
    await page.getByRole('button', { name: 'New group' }).focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.activeElement?.id === 'group-title', null, { timeout: T });
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    assert.equal(await page.evaluate(() => document.activeElement?.textContent?.trim()), 'New group');
  });

  test('sign out, then sign out everywhere', async () => {
    // Carol signs out: the sign-in screen, and a reload does not bring the session back.
    await carol.page.getByText('Account').click();
    await carol.page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await carol.page.getByLabel('Username or email').waitFor({ timeout: T });
    await carol.page.reload();
    await carol.page.getByLabel('Username or email').waitFor({ timeout: T });
    // Carol signs in on a second device, then signs out everywhere from the first.
    const other = await newPerson(browser, server);
    people.push(other);
    await other.page.goto('/');
    for (const p of [carol, other]) {
      await p.page.getByLabel('Username or email').fill(C.username);
      await p.page.getByLabel('Password', { exact: true }).fill(C.password);
      await p.page.locator('form').getByRole('button', { name: 'Sign in' }).click();
      await p.page.getByRole('button', { name: 'New chat' }).waitFor({ timeout: T });
    }
    await carol.page.getByText('Account').click();
    await carol.page.getByRole('button', { name: 'Sign out everywhere…' }).click();
    await carol.page.getByRole('dialog', { name: 'Sign out everywhere?' }).getByRole('button', { name: 'Sign out everywhere' }).click();
    await carol.page.getByLabel('Username or email').waitFor({ timeout: T });
    // The other device's socket is closed by the server; its refresh is refused: signed out.
    await other.page.getByText('Your session has ended. Please sign in again.').waitFor({ timeout: T });
  });

  test('no CSP violation, no page error, no dialog on any page', async () => {
    for (const p of people) {
      assert.deepEqual(await cspViolations(p), []);
      assert.deepEqual(p.pageErrors, []);
      assert.deepEqual(p.dialogs, []);
    }
  });
});
