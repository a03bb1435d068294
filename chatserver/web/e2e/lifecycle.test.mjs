// Message lifecycle in the browser (issue 11), part 1: drafts kept per conversation
// across switching, reloads and cleared on send and sign-out; a message still "Sending…"
// survives a reload while the server is down and is stored once when it is back; the
// "New messages" divider; "jump to newest" when a message arrives while scrolled up.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cspViolations, launchBrowser, newPerson, RestClient, signInUI, startServer, uniquePerson } from './harness.mjs';

const T = 15_000;

describe('message lifecycle: drafts, unsent messages, unread', () => {
  let server, browser, alice;
  const people = [];
  let A, bob, carol, withBob, withCarol;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    A = uniquePerson('Alice');
    const a = new RestClient(server.url);
    await a.register(A);
    bob = new RestClient(server.url);
    await bob.register(uniquePerson('Bob'));
    carol = new RestClient(server.url);
    await carol.register(uniquePerson('Carol'));
    withBob = await bob.direct(a.user.id);
    withCarol = await carol.direct(a.user.id);
    await bob.send(withBob.id, 'hello from Bob');
    await carol.send(withCarol.id, 'hello from Carol');
    alice = await newPerson(browser, server);
    people.push(alice);
    await signInUI(alice.page, A);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  const composer = (p) => p.page.getByLabel('Message', { exact: true });
  const body = (p, text) => p.page.locator('[data-testid=message] .msg-body', { hasText: text });
  const stored = async (convId, text) => (await bob.call('GET', `/conversations/${convId}/messages?limit=200`)).messages.filter((m) => m.body === text);
  const parleyKeys = (p) => p.page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('parley:')));

  test('a draft is kept per conversation across switching and reloading, and cleared on send', async () => {
    const page = alice.page;
    await page.getByRole('button', { name: /^Bob/ }).click();
    await body(alice, 'hello from Bob').waitFor({ timeout: T });
    await composer(alice).fill('half-written to Bob');
    await page.getByRole('button', { name: /^Carol/ }).click();
    await body(alice, 'hello from Carol').waitFor({ timeout: T });
    assert.equal(await composer(alice).inputValue(), '', "Carol's composer starts empty");
    // The list shows the draft in Bob's conversation.
    await page.locator(`[data-conversation="${withBob.id}"] [data-testid=conv-preview]`, { hasText: 'Draft: half-written to Bob' }).waitFor({ timeout: T });
    await composer(alice).fill('and one to Carol');
    await page.getByRole('button', { name: /^Bob/ }).click();
    assert.equal(await composer(alice).inputValue(), 'half-written to Bob');

    await page.reload();
    await composer(alice).waitFor({ timeout: T });
    assert.equal(await composer(alice).inputValue(), 'half-written to Bob', 'the draft survives a reload');
    await page.getByRole('button', { name: /^Carol/ }).click();
    assert.equal(await composer(alice).inputValue(), 'and one to Carol');

    // Sending clears it, also after a reload.
    await composer(alice).press('Enter');
    await body(alice, 'and one to Carol').waitFor({ timeout: T });
    assert.equal(await composer(alice).inputValue(), '');
    await page.reload();
    await composer(alice).waitFor({ timeout: T });
    assert.equal(await composer(alice).inputValue(), '', 'a sent draft does not come back');
    await page.getByRole('button', { name: /^Bob/ }).click();
    assert.equal(await composer(alice).inputValue(), 'half-written to Bob');
    assert.equal((await stored(withBob.id, 'half-written to Bob')).length, 0, 'a draft is not sent');
  });

  test('a message still sending survives a reload while the server is down, and is stored once', async () => {
    const page = alice.page;
    await page.getByRole('button', { name: /^Bob/ }).click();
    await body(alice, 'hello from Bob').waitFor({ timeout: T });
    await composer(alice).fill('');
    await server.kill('SIGKILL');
    await page.getByTestId('conn-banner').getByText('Reconnecting…').waitFor({ timeout: T });
    await composer(alice).fill('written before the reload');
    await page.keyboard.press('Enter');
    await page.locator('[data-testid=message][data-status=pending]', { hasText: 'written before the reload' }).waitFor({ timeout: T });

    // The reload finds no server: the browser cannot even load the page.
    await page.reload().catch(() => {});
    await server.restart();
    await page.goto(`/c/${withBob.id}`);
    // Back: the message is there, sent (no longer pending), and stored once.
    await body(alice, 'written before the reload').waitFor({ timeout: T });
    await page.locator('[data-testid=message][data-status]').waitFor({ state: 'detached', timeout: T });
    assert.equal(await body(alice, 'written before the reload').count(), 1);
    assert.equal((await stored(withBob.id, 'written before the reload')).length, 1);
    assert.deepEqual(await parleyKeys(alice).then((ks) => ks.filter((k) => k.endsWith(':pending'))), [], 'nothing left unsent');
  });

  test('when the API is down at page load the page keeps trying, then sends what was waiting', async () => {
    const page = alice.page;
    await page.locator('[data-testid=message]').first().waitFor({ timeout: T });
    // The socket never says "ready" and sending over REST fails: the message waits.
    let block = true;
    await alice.context.routeWebSocket(/\/api\/v1\/ws/, (ws) => {
      if (!block) ws.connectToServer();
    });
    await alice.context.route(/\/api\/v1\/conversations\/[^/]+\/messages$/, (route) =>
      block && route.request().method() === 'POST' ? route.abort('connectionrefused') : route.fallback(),
    );
    await page.reload();
    await composer(alice).waitFor({ timeout: T });
    await composer(alice).fill('waiting for the API');
    await page.keyboard.press('Enter');
    await page.locator('[data-testid=message][data-status=pending]', { hasText: 'waiting for the API' }).waitFor({ timeout: T });
    // Reload while every API request fails (the pages are served, the API is not).
    await alice.context.route('**/api/v1/**', (route) => (block ? route.abort('connectionrefused') : route.fallback()));
    await page.reload();
    await page.getByRole('alert').getByText("Can't reach Parley", { exact: false }).waitFor({ timeout: T });
    assert.equal(await page.getByLabel('Username or email').count(), 0, 'not sent to the sign-in form');
    block = false;
    // No click: the page tries again by itself, signs in and sends the message.
    await body(alice, 'waiting for the API').waitFor({ timeout: 30_000 });
    await page.locator('[data-testid=message][data-status]').waitFor({ state: 'detached', timeout: T });
    assert.equal(await body(alice, 'waiting for the API').count(), 1);
    assert.equal((await stored(withBob.id, 'waiting for the API')).length, 1);
    await alice.context.unrouteAll({ behavior: 'ignoreErrors' });
  });

  test('a message whose ack was lost goes out again after a reload and is not stored twice', async () => {
    const page = alice.page;
    // The server's answers about it are lost on the way (the send itself arrives).
    let drop = true;
    let ready;
    const socketReady = new Promise((r) => (ready = r));
    await alice.context.routeWebSocket(/\/api\/v1\/ws/, (ws) => {
      const srv = ws.connectToServer();
      srv.onMessage((m) => {
        const f = JSON.parse(String(m));
        if (f.type === 'ready') setTimeout(ready, 100);
        const lost = drop && ((f.type === 'ack' && f.message.body === 'ack lost') || (f.type === 'message' && f.message.body === 'ack lost'));
        if (!lost) ws.send(m);
      });
    });
    await page.reload();
    await body(alice, 'hello from Bob').waitFor({ timeout: T });
    // Over the socket (not REST, which would answer at once).
    await socketReady;
    await composer(alice).fill('ack lost');
    await page.keyboard.press('Enter');
    await page.locator('[data-testid=message][data-status=pending]', { hasText: 'ack lost' }).waitFor({ timeout: T });
    // It did arrive, but the page does not know.
    for (let i = 0; i < 50 && (await stored(withBob.id, 'ack lost')).length === 0; i++) await page.waitForTimeout(100);
    assert.equal((await stored(withBob.id, 'ack lost')).length, 1);
    await page.waitForTimeout(500);
    assert.equal(await page.locator('[data-testid=message][data-status=pending]', { hasText: 'ack lost' }).count(), 1, 'still sending');
    drop = false;
    await page.reload();
    await body(alice, 'ack lost').waitFor({ timeout: T });
    await page.locator('[data-testid=message][data-status]').waitFor({ state: 'detached', timeout: T });
    assert.equal(await body(alice, 'ack lost').count(), 1, 'shown once');
    assert.equal((await stored(withBob.id, 'ack lost')).length, 1, 'stored once');
    await alice.context.unrouteAll({ behavior: 'ignoreErrors' });
  });

  test('"New messages" marks where the unread start when a conversation is opened', async () => {
    const page = alice.page;
    await page.getByRole('button', { name: /^Carol/ }).click();
    await body(alice, 'hello from Carol').waitFor({ timeout: T });
    assert.equal(await page.getByTestId('new-divider').count(), 0, 'nothing unread, no divider');
    // Bob writes while Alice looks at Carol's conversation.
    for (let i = 1; i <= 3; i++) await bob.send(withBob.id, `unread ${i}`);
    await page.getByRole('button', { name: /^Bob.*3 unread/ }).click({ timeout: T });
    await body(alice, 'unread 3').waitFor({ timeout: T });
    const divider = page.getByRole('separator', { name: 'New messages' });
    await divider.waitFor({ timeout: T });
    // It stands right before "unread 1".
    const next = await divider.evaluate((el) => el.nextElementSibling?.querySelector('.msg-body')?.textContent);
    assert.equal(next, 'unread 1');
    // A reload (everything read now): no divider.
    await page.reload();
    await body(alice, 'unread 3').waitFor({ timeout: T });
    assert.equal(await page.getByTestId('new-divider').count(), 0);

    // Many unread: the view opens at the divider, not at the end.
    await page.getByRole('button', { name: /^Carol/ }).click();
    for (let i = 1; i <= 40; i++) await bob.send(withBob.id, `backlog ${i}`);
    await page.getByRole('button', { name: /^Bob.*40 unread/ }).click({ timeout: T });
    await divider.waitFor({ timeout: T });
    await page.waitForTimeout(200);
    const list = await page.locator('.messages').boundingBox();
    const d = await divider.boundingBox();
    assert.ok(d.y >= list.y && d.y < list.y + list.height, 'the divider is in view');
    const last = await body(alice, 'backlog 40').boundingBox();
    assert.ok(last.y > list.y + list.height, 'the newest is below, out of view');
  });

  test('"jump to newest" appears when a message arrives while scrolled up, and goes there', async () => {
    const page = alice.page;
    const messages = page.locator('.messages');
    // At the end: a new message scrolls into view, no button.
    await messages.evaluate((el) => (el.scrollTop = el.scrollHeight));
    await page.waitForTimeout(200);
    await bob.send(withBob.id, 'seen at the bottom');
    await body(alice, 'seen at the bottom').waitFor({ timeout: T });
    await page.waitForTimeout(300);
    assert.equal(await page.getByTestId('jump-newest').count(), 0);

    // Scrolled up: the button says how many arrived.
    await messages.evaluate((el) => (el.scrollTop = 0));
    await page.waitForTimeout(300);
    await bob.send(withBob.id, 'while you read old ones 1');
    await bob.send(withBob.id, 'while you read old ones 2');
    const jump = page.getByRole('button', { name: /2 new messages, jump to newest/ });
    await jump.waitFor({ timeout: T });
    await jump.click();
    await jump.waitFor({ state: 'detached', timeout: T });
    const box = await messages.boundingBox();
    const last = await body(alice, 'while you read old ones 2').boundingBox();
    assert.ok(last.y + last.height <= box.y + box.height + 1 && last.y >= box.y, 'the newest is in view');
    assert.equal(await page.evaluate(() => document.activeElement?.classList.contains('messages')), true, 'the focus goes to the messages');

    // Scrolling down by hand also dismisses it.
    await messages.evaluate((el) => (el.scrollTop = 0));
    await page.waitForTimeout(300);
    await bob.send(withBob.id, 'one more');
    await page.getByRole('button', { name: /1 new message, jump to newest/ }).waitFor({ timeout: T });
    await messages.evaluate((el) => (el.scrollTop = el.scrollHeight));
    await page.getByTestId('jump-newest').waitFor({ state: 'detached', timeout: T });
  });

  test('signing out leaves no draft or unsent message in the browser', async () => {
    const page = alice.page;
    await page.getByRole('button', { name: /^Carol/ }).click();
    await composer(alice).fill('a draft to forget');
    assert.ok((await parleyKeys(alice)).length > 0);
    await page.getByText('Account').click();
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.getByLabel('Username or email').waitFor({ timeout: T });
    assert.deepEqual(await parleyKeys(alice), []);
    await signInUI(page, A);
    await page.getByRole('button', { name: /^Carol/ }).click();
    assert.equal(await composer(alice).inputValue(), '');
  });

  test('no CSP violation, no page error, no dialog', async () => {
    for (const p of people) {
      assert.deepEqual(await cspViolations(p), []);
      assert.deepEqual(p.pageErrors, []);
      assert.deepEqual(p.dialogs, []);
    }
  });
});
