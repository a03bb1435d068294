// Message lifecycle in the browser (issue 11), part 2: message actions against the real
// server. Alice and Bob use two separate Chromium processes: reactions (quick, picker,
// chips with counts and who), replies with quotes that go to the original (also one not
// loaded yet), edits (also with Up arrow), deletion with a confirmation seen on the other
// browser, a long press on a touch screen, and the disappearing-messages setting.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cspViolations, launchBrowser, newPerson, RestClient, signInUI, startServer, uniquePerson } from './harness.mjs';

const T = 15_000;

describe('message actions', () => {
  let server, browserA, browserB, alice, bob;
  const people = [];
  let A, B, restA, restB, conv;

  before(async () => {
    server = await startServer();
    browserA = await launchBrowser();
    browserB = await launchBrowser();
    A = uniquePerson('Alice');
    B = uniquePerson('Bob');
    restA = new RestClient(server.url);
    await restA.register(A);
    restB = new RestClient(server.url);
    await restB.register(B);
    conv = await restB.direct(restA.user.id);
    await restB.send(conv.id, 'Are we still on for Saturday?');
    await restA.send(conv.id, 'Yes, 9 at the lake.');
    alice = await newPerson(browserA, server);
    bob = await newPerson(browserB, server);
    people.push(alice, bob);
    await signInUI(alice.page, A);
    await signInUI(bob.page, B);
    await alice.page.getByRole('button', { name: /^Bob/ }).click();
    await bob.page.getByRole('button', { name: /^Alice/ }).click();
  });

  after(async () => {
    await browserA?.close();
    await browserB?.close();
    await server?.stop();
  });

  const msgWith = (p, text) => p.page.locator('[data-testid=message]').filter({ has: p.page.locator('.msg-body', { hasText: text }) });
  const composer = (p) => p.page.locator('#composer-input');
  const chip = (p, text, emoji) => msgWith(p, text).locator(`.reaction[data-emoji="${emoji}"]`);

  /** Hovers a stored (not pending) message and clicks one of its toolbar's buttons. */
  async function action(p, text, name) {
    const m = p.page.locator('[data-testid=message]:not([data-status])').filter({ has: p.page.locator('.msg-body', { hasText: text }) });
    await m.waitFor({ timeout: T });
    const button = m.getByRole('toolbar', { name: 'Message actions' }).getByRole('button', { name, exact: true });
    await button.waitFor({ state: 'attached', timeout: T });
    await m.locator('.bubble').hover();
    await button.click({ timeout: T });
  }

  test('react from the hover toolbar and the emoji picker; chips count, say who, and toggle', async () => {
    const text = 'Are we still on for Saturday?';
    await action(alice, text, 'React with thumbs up');
    for (const p of [alice, bob]) {
      await chip(p, text, '👍').waitFor({ timeout: T });
      assert.match(await chip(p, text, '👍').textContent(), /👍\s*1/);
    }
    assert.equal(await chip(alice, text, '👍').getAttribute('aria-pressed'), 'true');
    assert.equal(await chip(bob, text, '👍').getAttribute('aria-pressed'), 'false');
    assert.equal(await chip(bob, text, '👍').getAttribute('title'), 'Alice');

    // Bob adds the same by clicking the chip: 2, "You and Alice".
    await chip(bob, text, '👍').click();
    await chip(alice, text, '👍').filter({ hasText: '2' }).waitFor({ timeout: T });
    await chip(bob, text, '👍').filter({ hasText: '2' }).waitFor({ timeout: T });
    assert.equal(await chip(bob, text, '👍').getAttribute('title'), 'You and Alice');

    // The picker: keyboard reachable, Escape closes it and gives the focus back.
    await action(alice, text, 'React');
    const picker = alice.page.getByRole('dialog', { name: 'Choose a reaction' });
    await picker.waitFor({ timeout: T });
    assert.equal(await alice.page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'thumbs up', 'the focus is in the picker');
    await alice.page.keyboard.press('Escape');
    await picker.waitFor({ state: 'detached', timeout: T });
    assert.equal(await alice.page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'React');
    await action(alice, text, 'React');
    await picker.getByRole('button', { name: 'party' }).click();
    await picker.waitFor({ state: 'detached', timeout: T });
    await chip(bob, text, '🎉').waitFor({ timeout: T });

    // Alice takes her 👍 back by clicking her chip.
    await chip(alice, text, '👍').click();
    await chip(bob, text, '👍').filter({ hasText: '1' }).waitFor({ timeout: T });
    await alice.page.waitForFunction(() => document.querySelector('.reaction[data-emoji="👍"]')?.getAttribute('aria-pressed') === 'false', null, { timeout: T });
    const stored = await restB.call('GET', `/conversations/${conv.id}/messages?limit=50`);
    const m = stored.messages.find((x) => x.body === text);
    assert.deepEqual(
      m.reactions.map((r) => [r.emoji, r.count, r.me]),
      [
        ['👍', 1, true],
        ['🎉', 1, false],
      ],
    );
  });

  test('reply with a quote; the quote goes to the original', async () => {
    await action(alice, 'Are we still on for Saturday?', 'Reply');
    await alice.page.getByTestId('reply-bar').getByText('Replying to Bob').waitFor({ timeout: T });
    assert.equal(await alice.page.evaluate(() => document.activeElement?.id), 'composer-input', 'the composer has the focus');
    await composer(alice).fill('Of course! Bringing snacks.');
    await composer(alice).press('Enter');
    await alice.page.getByTestId('reply-bar').waitFor({ state: 'detached', timeout: T });
    for (const p of [alice, bob]) {
      const reply = msgWith(p, 'Of course! Bringing snacks.');
      await reply.waitFor({ timeout: T });
      await reply.getByTestId('quote').getByText('Are we still on for Saturday?').waitFor({ timeout: T });
    }
    const reply = msgWith(bob, 'Of course! Bringing snacks.');
    assert.equal(await reply.getByTestId('quote').locator('.quote-name').textContent(), 'You');
    await reply.getByTestId('quote').click();
    const original = msgWith(bob, 'Are we still on for Saturday?');
    await bob.page.waitForFunction(() => document.activeElement?.matches('[data-testid=message].highlight'), null, { timeout: T });
    assert.equal(await original.evaluate((el) => el === document.activeElement), true, 'the original has the focus');

    // Cancel a reply with Escape.
    await action(bob, 'Yes, 9 at the lake.', 'Reply');
    await bob.page.getByTestId('reply-bar').waitFor({ timeout: T });
    await composer(bob).press('Escape');
    await bob.page.getByTestId('reply-bar').waitFor({ state: 'detached', timeout: T });
  });

  test('a quote of a message not loaded yet loads history until the original is shown', async () => {
    const stored = await restA.call('GET', `/conversations/${conv.id}/messages?limit=50`);
    const original = stored.messages.find((m) => m.body === 'Yes, 9 at the lake.');
    for (let i = 1; i <= 60; i++) await restB.send(conv.id, `filler ${i}`);
    await restB.call('POST', `/conversations/${conv.id}/messages`, { clientId: `reply-${Date.now()}`, body: 'About the time you said', replyTo: original.id });
    // A fresh page of Alice's: only the newest 50 are loaded.
    const second = await newPerson(browserA, server);
    people.push(second);
    await signInUI(second.page, A);
    await second.page.getByRole('button', { name: /^Bob/ }).click();
    const reply = msgWith(second, 'About the time you said');
    await reply.waitFor({ timeout: T });
    assert.equal(await msgWith(second, 'Yes, 9 at the lake.').count(), 0, 'the original is not loaded');
    await reply.getByTestId('quote').click();
    await msgWith(second, 'Yes, 9 at the lake.').waitFor({ timeout: T });
    await second.page.waitForFunction(() => document.activeElement?.querySelector('.msg-body')?.textContent === 'Yes, 9 at the lake.', null, { timeout: T });
    await second.context.close();
  });

  test('edit from the toolbar and with Up arrow; "edited" on both sides', async () => {
    await composer(alice).fill('See you at 9');
    await composer(alice).press('Enter');
    await msgWith(bob, 'See you at 9').waitFor({ timeout: T });
    await action(alice, 'See you at 9', 'Edit');
    await alice.page.getByTestId('editing-bar').waitFor({ timeout: T });
    assert.equal(await composer(alice).inputValue(), 'See you at 9');
    await composer(alice).fill('See you at 9:30');
    await composer(alice).press('Enter');
    await alice.page.getByTestId('editing-bar').waitFor({ state: 'detached', timeout: T });
    for (const p of [alice, bob]) {
      const m = msgWith(p, 'See you at 9:30');
      await m.getByTestId('edited').waitFor({ timeout: T });
    }
    assert.equal(await msgWith(bob, /^See you at 9$/).count(), 0);

    // Up arrow in the empty composer edits the last message; Escape cancels and keeps the draft.
    await composer(alice).fill('');
    await composer(alice).press('ArrowUp');
    await alice.page.getByTestId('editing-bar').waitFor({ timeout: T });
    assert.equal(await composer(alice).inputValue(), 'See you at 9:30');
    await composer(alice).press('Escape');
    await alice.page.getByTestId('editing-bar').waitFor({ state: 'detached', timeout: T });
    assert.equal(await composer(alice).inputValue(), '');
    await composer(alice).press('ArrowUp');
    await composer(alice).fill('See you at 10');
    await composer(alice).press('Enter');
    await msgWith(bob, 'See you at 10').getByTestId('edited').waitFor({ timeout: T });
    // Someone else's message has no Edit.
    await msgWith(alice, 'filler 60').locator('.bubble').hover();
    assert.equal(await msgWith(alice, 'filler 60').getByRole('button', { name: 'Edit' }).count(), 0);
  });

  test('delete asks first, then shows "Message deleted" in both browsers, quotes too', async () => {
    await composer(alice).fill('Oops, wrong chat');
    await composer(alice).press('Enter');
    await msgWith(bob, 'Oops, wrong chat').waitFor({ timeout: T });
    // Bob replies to it before it goes.
    await action(bob, 'Oops, wrong chat', 'Reply');
    await composer(bob).fill('What was that?');
    await composer(bob).press('Enter');
    await msgWith(alice, 'What was that?').getByTestId('quote').getByText('Oops, wrong chat').waitFor({ timeout: T });

    // Cancel keeps it.
    await action(alice, 'Oops, wrong chat', 'Delete');
    const dialog = alice.page.getByRole('dialog', { name: 'Delete message?' });
    await dialog.waitFor({ timeout: T });
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'detached', timeout: T });
    assert.equal(await msgWith(alice, 'Oops, wrong chat').count(), 1);

    await action(alice, 'Oops, wrong chat', 'Delete');
    await dialog.getByRole('button', { name: 'Delete for everyone' }).click();
    for (const p of [alice, bob]) {
      await p.page.locator('[data-testid=message] [data-testid=deleted]', { hasText: 'Message deleted' }).waitFor({ timeout: T });
      assert.equal(await p.page.locator('.msg-list').getByText('Oops, wrong chat').count(), 0, 'the text is gone');
      await msgWith(p, 'What was that?').getByTestId('quote').getByText('Message deleted').waitFor({ timeout: T });
    }
    await composer(alice).fill('Never mind');
    await composer(alice).press('Enter');
    await msgWith(bob, 'Never mind').waitFor({ timeout: T });
    // Bob's browser, after a reload: still a tombstone (from the server), no text.
    await bob.page.reload();
    await msgWith(bob, 'Never mind').waitFor({ timeout: T });
    await bob.page.locator('[data-testid=deleted]', { hasText: 'Message deleted' }).waitFor({ timeout: T });
    assert.equal(await bob.page.getByText('Oops, wrong chat').count(), 0);
  });

  test('a long press on a touch screen opens the actions', async () => {
    const context = await browserB.newContext({ baseURL: server.url, viewport: { width: 390, height: 800 }, hasTouch: true, isMobile: true });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await signInUI(page, B);
    await page.getByRole('button', { name: /^Alice/ }).click();
    const m = page.locator('[data-testid=message]').filter({ has: page.locator('.msg-body', { hasText: 'Never mind' }) });
    await m.waitFor({ timeout: T });
    const box = await m.locator('.bubble').boundingBox();
    const cdp = await context.newCDPSession(page);
    const at = [{ x: box.x + box.width / 2, y: box.y + box.height / 2 }];
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: at });
    await page.waitForTimeout(800);
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    await m.locator('.msg-actions').waitFor({ state: 'visible', timeout: T });
    assert.equal(await m.evaluate((el) => el.classList.contains('actions-open')), true);
    await m.getByRole('button', { name: 'React with red heart' }).tap();
    await msgWith(alice, 'Never mind').locator('.reaction[data-emoji="❤️"]').waitFor({ timeout: T });
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('disappearing messages: set in the header, a notice on both sides, new messages marked', async () => {
    await alice.page.getByRole('button', { name: 'Disappearing messages: off' }).click();
    const dialog = alice.page.getByRole('dialog', { name: 'Disappearing messages' });
    await dialog.getByRole('radio', { name: '1 day' }).check();
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached', timeout: T });
    for (const p of [alice, bob]) {
      await p.page.getByTestId('expiry-notice').getByText('new messages disappear 1 day after they are sent').waitFor({ timeout: T });
      await p.page.getByRole('button', { name: 'Disappearing messages: 1 day' }).waitFor({ timeout: T });
    }
    await alice.page.getByTestId('setting-notice').getByText('You turned on disappearing messages: 1 day.').waitFor({ timeout: T });
    await bob.page.getByTestId('setting-notice').getByText('Alice turned on disappearing messages: 1 day.').waitFor({ timeout: T });
    await composer(bob).fill('This one will disappear');
    await composer(bob).press('Enter');
    for (const p of [alice, bob]) await msgWith(p, 'This one will disappear').getByTestId('expires').waitFor({ timeout: T });
    assert.equal(await msgWith(alice, 'Never mind').getByTestId('expires').count(), 0, 'earlier messages keep no expiry');

    // Bob turns it off.
    await bob.page.getByRole('button', { name: 'Disappearing messages: 1 day' }).click();
    const d2 = bob.page.getByRole('dialog', { name: 'Disappearing messages' });
    await d2.getByRole('radio', { name: 'Off' }).check();
    await d2.getByRole('button', { name: 'Save' }).click();
    await alice.page.getByTestId('setting-notice').getByText('Bob turned off disappearing messages.').waitFor({ timeout: T });
    await alice.page.getByTestId('expiry-notice').waitFor({ state: 'detached', timeout: T });
  });

  test('in a group: who reacted, and the owner deletes a member\'s message after confirming', async () => {
    const C = uniquePerson('Carol');
    const restC = new RestClient(server.url);
    await restC.register(C);
    const group = await restA.group('Picnic', [restB.user.id, restC.user.id]);
    const carolMsg = await restC.send(group.id, 'I will bring the blanket');
    for (const p of [alice, bob]) {
      await p.page.getByRole('button', { name: /^Picnic/ }).click({ timeout: T });
      await msgWith(p, 'I will bring the blanket').waitFor({ timeout: T });
    }
    // Names of who reacted, as this page saw them.
    await restC.call('PUT', `/conversations/${group.id}/messages/${carolMsg.id}/reactions/${encodeURIComponent('👍')}`);
    await action(bob, 'I will bring the blanket', 'React with thumbs up');
    await chip(alice, 'I will bring the blanket', '👍').filter({ hasText: '2' }).waitFor({ timeout: T });
    assert.equal(await chip(alice, 'I will bring the blanket', '👍').getAttribute('title'), 'Carol and Bob');
    assert.equal(await chip(bob, 'I will bring the blanket', '👍').getAttribute('title'), 'You and Carol');

    // Bob, a plain member, cannot delete Carol's message; Alice, the owner, can.
    await msgWith(bob, 'I will bring the blanket').locator('.bubble').hover();
    assert.equal(await msgWith(bob, 'I will bring the blanket').getByRole('button', { name: 'Delete' }).count(), 0);
    await action(alice, 'I will bring the blanket', 'Delete');
    const dialog = alice.page.getByRole('dialog', { name: 'Delete message?' });
    await dialog.getByText('This message by Carol will be deleted for everyone').waitFor({ timeout: T });
    await dialog.getByRole('button', { name: 'Delete for everyone' }).click();
    for (const p of [alice, bob]) {
      await p.page.locator('[data-testid=deleted]', { hasText: 'Message deleted' }).waitFor({ timeout: T });
      assert.equal(await p.page.locator('.msg-list').getByText('I will bring the blanket').count(), 0);
    }
    const { messages } = await restC.call('GET', `/conversations/${group.id}/messages?limit=10`);
    assert.equal(messages.find((m) => m.id === carolMsg.id).deleted.by, restA.user.id);
  });

  test('keyboard: the list is one Tab stop; arrows move between messages; Tab reaches their actions', async () => {
    const page = alice.page;
    await page.getByRole('button', { name: /^Bob/ }).click();
    await bob.page.getByRole('button', { name: /^Alice/ }).click();
    await msgWith(alice, 'Never mind').waitFor({ timeout: T });
    const list = page.locator('.messages');
    await list.focus();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'composer-input', 'from the list, Tab goes on to the composer');
    await list.focus();
    await page.keyboard.press('ArrowUp');
    const focusedText = () => page.evaluate(() => document.activeElement?.closest('[data-testid=message]')?.querySelector('.msg-body')?.textContent);
    assert.equal(await focusedText(), 'This one will disappear');
    await page.keyboard.press('ArrowUp');
    assert.equal(await focusedText(), 'Never mind');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'React with thumbs up');
    await page.keyboard.press('Enter');
    await msgWith(bob, 'Never mind').locator('.reaction[data-emoji="👍"]').waitFor({ timeout: T });
    // Tab onwards: React, Reply, Edit, Delete of the same message, then its chips.
    const labels = [];
    for (let i = 0; i < 6; i++) {
      await page.keyboard.press('Tab');
      labels.push(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')));
    }
    assert.deepEqual(labels.slice(0, 6), ['React with red heart', 'React with tears of joy', 'React', 'Reply', 'Edit', 'Delete']);
  });

  test('no CSP violation, no page error, no dialog', async () => {
    for (const p of people) {
      if (p.page.isClosed()) continue;
      assert.deepEqual(await cspViolations(p), []);
      assert.deepEqual(p.pageErrors, []);
      assert.deepEqual(p.dialogs, []);
      assert.equal(await p.page.locator('.notice').count(), 0, 'no error notice');
    }
  });
});
