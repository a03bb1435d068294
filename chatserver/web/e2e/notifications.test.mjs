// Issue 14, the web client's notifications, in Chromium against a real chat server:
// the service worker, the opt-in, in-tab notifications while the page is hidden, mute,
// do-not-disturb, mentions (autocomplete and highlight), and the worker's push and click
// handlers with a push delivered over CDP.
//
// Hiding the page: headless Chromium never hides a page (no window to minimise or tab to
// switch), and CDP has no call that makes document.visibilityState "hidden" while the page
// keeps running (Page.setWebLifecycleState "frozen" stops its scripts, which is not a
// background tab; Emulation.setFocusEmulationEnabled changes focus only). So an init script
// overrides Document.prototype's visibilityState and hidden getters behind a flag and
// fires `visibilitychange` when the test flips it: the app sees exactly what a background
// tab shows it, and sends the same `visibility` frame to the server.
//
// Push: Chromium here reaches no vendor push service, so PushManager.subscribe fails and
// the page says so ("Push is not available in this browser…") and keeps in-tab
// notifications. The worker's `push` handler is driven with CDP's
// ServiceWorker.deliverPushMessage (the payload a push carries, unencrypted: the browser
// decrypts before the worker sees it); delivery, RFC 8291 encryption and VAPID are
// covered by the Go tests against chatserver/push/pushtest.
import assert from 'node:assert/strict';
import { createECDH, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { newAxePerson, seriousViolations } from './axe.mjs';
import { cspViolations, launchBrowser, newPerson, RestClient, signInUI, sleep, startServer, uniquePerson } from './harness.mjs';

const T = 15_000;
let server, browser;

before(async () => {
  // A short push grace, and pushes to a loopback http endpoint (the recorder below).
  server = await startServer({ env: { PARLEY_PUSH_GRACE: '300ms', PARLEY_PUSH_ALLOW_LOOPBACK: 'true' } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A context whose page can be "hidden" by the test (see above) and may show notifications. */
async function person(opts = {}) {
  const p = await (opts.axe ? newAxePerson : newPerson)(browser, server, opts);
  await p.context.grantPermissions(['notifications'], { origin: server.url });
  await p.context.addInitScript(() => {
    let hidden = false;
    Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
    Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => hidden });
    window.__setHidden = (h) => {
      hidden = h;
      document.dispatchEvent(new Event('visibilitychange'));
    };
  });
  return p;
}

const setHidden = (page, h) => page.evaluate((x) => window.__setHidden(x), h);

/** The notifications the app's service worker registration shows now. */
function shown(page) {
  return page.evaluate(async () => {
    const reg = await navigator.serviceWorker.ready;
    const list = await reg.getNotifications();
    return list.map((n) => ({ title: n.title, body: n.body, tag: n.tag, renotify: n.renotify, icon: n.icon, data: n.data }));
  });
}

function closeAll(page) {
  return page.evaluate(async () => {
    const reg = await navigator.serviceWorker.ready;
    for (const n of await reg.getNotifications()) n.close();
  });
}

async function waitShown(page, pred, what) {
  const deadline = Date.now() + T;
  let last = [];
  while (Date.now() < deadline) {
    last = await shown(page);
    const hit = last.find(pred);
    if (hit) return hit;
    await sleep(100);
  }
  throw new Error(`no notification ${what}; shown: ${JSON.stringify(last)}`);
}

/** Waits until the page has the message (the unread badge of its conversation says n). */
async function waitUnread(page, convId, n) {
  await page.locator(`[data-conversation="${convId}"] [data-testid="unread"]`).filter({ hasText: String(n) }).waitFor({ timeout: T });
}

async function openNotifications(page) {
  await page.getByRole('button', { name: 'Account menu' }).click();
  await page.getByRole('button', { name: 'Notifications', exact: true }).click();
  return page.getByRole('dialog', { name: 'Notifications' });
}

async function optIn(page) {
  const dialog = await openNotifications(page);
  await dialog.getByLabel('Notify me on this device').check();
  // No vendor push service in this Chromium: in-tab notifications, said in words.
  await dialog.getByTestId('notify-status').getByText('Push is not available in this browser; you will be notified while Parley is open.').waitFor({ timeout: T });
  return dialog;
}

async function setup() {
  const A = uniquePerson('Alice');
  const B = uniquePerson('Bob');
  const bob = new RestClient(server.url);
  await bob.register(B);
  const aliceRest = new RestClient(server.url);
  await aliceRest.register(A);
  const conv = await bob.direct(aliceRest.user.id);
  const alice = await person();
  await signInUI(alice.page, A);
  return { A, B, bob, aliceRest, conv, alice };
}

test('the service worker registers and controls the page; the page tells the server when it is hidden', async () => {
  const { alice } = await setup();
  const { page } = alice;
  const sw = await page.evaluate(async () => {
    const reg = await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) await new Promise((r) => navigator.serviceWorker.addEventListener('controllerchange', r, { once: true }));
    return { scope: reg.scope, script: reg.active?.scriptURL, controller: navigator.serviceWorker.controller?.scriptURL };
  });
  assert.equal(sw.scope, `${server.url}/`);
  assert.equal(sw.script, `${server.url}/sw.js`);
  assert.equal(sw.controller, `${server.url}/sw.js`, 'the worker controls the page');
  const res = await fetch(`${server.url}/sw.js`);
  assert.match(res.headers.get('content-type') ?? '', /javascript/);

  // The visibility frame: on connect, and on every change.
  const frames = () => alice.sockets.flatMap((s) => s.sent.map((x) => JSON.parse(x))).filter((f) => f.type === 'visibility');
  await waitFor(() => frames().length >= 1, 'a visibility frame on connect');
  assert.deepEqual(frames()[0], { type: 'visibility', visible: true });
  await setHidden(page, true);
  await waitFor(() => frames().some((f) => f.visible === false), 'visible:false when hidden');
  await setHidden(page, false);
  await waitFor(() => frames().at(-1).visible === true, 'visible:true when shown again');
  assert.equal(alice.sockets.filter((s) => !s.closed).length, 1);
  assert.deepEqual(await cspViolations(alice), []);
  assert.deepEqual(alice.pageErrors, []);
  await alice.context.close();
});

test('the server pushes only while no page is visible (the visibility frame, through its effect)', async () => {
  const { bob, aliceRest, conv, alice } = await setup();
  const { page } = alice;
  // A stand-in push service that only counts what reaches it (the Go tests decrypt and
  // check the pushes themselves: chatserver/push/pushtest). Alice's device is subscribed
  // to it over REST: this Chromium cannot make a real subscription.
  const pushes = [];
  const rec = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      pushes.push({ path: req.url, topic: req.headers.topic, encoding: req.headers['content-encoding'] });
      res.writeHead(201).end();
    });
  });
  await new Promise((r) => rec.listen(0, '127.0.0.1', r));
  try {
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const endpoint = `http://127.0.0.1:${rec.address().port}/push/alice`;
    const keys = { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') };
    const made = await aliceRest.call('POST', '/push/subscriptions', { endpoint, keys });
    const frames = () => alice.sockets.flatMap((x) => x.sent.map((f) => JSON.parse(f))).filter((f) => f.type === 'visibility');
    await waitFor(() => frames().length >= 1, 'the visibility frame on connect');

    // Visible: the message is seen in the page, nothing is pushed (grace 300 ms).
    await bob.send(conv.id, 'while visible');
    await waitUnread(page, conv.id, 1);
    await sleep(1500);
    assert.equal(pushes.length, 0, 'no push while a page is visible');

    // Hidden: pushed.
    await setHidden(page, true);
    await waitFor(() => frames().at(-1).visible === false, 'visible:false sent');
    await bob.send(conv.id, 'while hidden');
    await waitFor(() => pushes.length === 1, 'a push while hidden');
    assert.equal(pushes[0].path, '/push/alice');
    assert.equal(pushes[0].encoding, 'aes128gcm');

    // Visible again: no more pushes.
    await setHidden(page, false);
    await waitFor(() => frames().at(-1).visible === true, 'visible:true sent');
    await bob.send(conv.id, 'visible again');
    await waitUnread(page, conv.id, 3);
    await sleep(1500);
    assert.equal(pushes.length, 1, 'no push once the page is visible again');

    // Signing out deletes this device's subscription on the server. The page knows its
    // endpoint from its own subscription, or from its note in localStorage (which the test
    // writes here, as the page would have after subscribing: Chromium cannot subscribe).
    await page.evaluate(([id, ep]) => localStorage.setItem(`parley:v1:${id}:push`, JSON.stringify({ on: true, key: null, endpoint: ep })), [aliceRest.user.id, endpoint]);
    await page.getByRole('button', { name: 'Account menu' }).click();
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.getByRole('button', { name: 'Sign in' }).first().waitFor({ timeout: T });
    // No page of Alice's at all now: with the subscription still there, this would be pushed.
    await bob.send(conv.id, 'after sign-out');
    await sleep(1500);
    assert.equal(pushes.length, 1, 'nothing pushed to the device after it signed out');
    // Gone on the server: the same endpoint again is a new subscription (an existing one
    // would keep its id).
    const again = await aliceRest.call('POST', '/push/subscriptions', { endpoint, keys });
    assert.notEqual(again.id, made.id, 'the subscription was deleted at sign-out');
    // The opt-in is remembered for the next sign-in, the endpoint is not.
    assert.deepEqual(JSON.parse(await page.evaluate((id) => localStorage.getItem(`parley:v1:${id}:push`), aliceRest.user.id)), { on: true, key: null, endpoint: null });
  } finally {
    rec.close();
  }
  assert.deepEqual(await cspViolations(alice), []);
  assert.deepEqual(alice.pageErrors, []);
  await alice.context.close();
});

async function waitForAsync(f, what) {
  const deadline = Date.now() + T;
  while (Date.now() < deadline) {
    if (await f()) return;
    await sleep(100);
  }
  throw new Error(`timed out: ${what}`);
}

/** Back to the list with no conversation open (as the browser's Back button would). */
function backToList(page) {
  return page.evaluate(() => {
    history.pushState(null, '', '/');
    dispatchEvent(new PopStateEvent('popstate'));
  });
}

async function waitFor(f, what) {
  const deadline = Date.now() + T;
  while (Date.now() < deadline) {
    if (f()) return;
    await sleep(50);
  }
  throw new Error(`timed out: ${what}`);
}

test('hidden page: a message notifies (no text unless preview is on); mute silences it, a mention breaks the mute; DND silences all', async () => {
  const { A, B, bob, aliceRest, conv, alice } = await setup();
  const { page } = alice;
  const dialog = await optIn(page);
  await dialog.getByRole('button', { name: 'Close' }).click();

  // Visible: nothing is shown (the person sees the app).
  await bob.send(conv.id, 'seen in the open page');
  await waitUnread(page, conv.id, 1);
  await sleep(300);
  assert.deepEqual(await shown(page), []);

  // Hidden: a notification, one per conversation (tag), with no text by default.
  await setHidden(page, true);
  await bob.send(conv.id, 'the secret plan');
  const n1 = await waitShown(page, (n) => n.tag === conv.id, 'for the first hidden message');
  assert.equal(n1.title, B.name);
  assert.equal(n1.body, '2 new messages');
  assert.ok(!JSON.stringify(n1).includes('secret'), 'no text without preview');
  assert.equal(n1.renotify, false);
  assert.match(n1.icon, /\/icon\.png$/);
  await bob.send(conv.id, 'and another');
  await waitUnread(page, conv.id, 3);
  await waitShown(page, (n) => n.body === '3 new messages', 'updated in place');
  assert.equal((await shown(page)).length, 1, 'one notification for the conversation');

  // Preview on (the server's setting, from the dialog): the text is shown.
  await setHidden(page, false);
  const d2 = await openNotifications(page);
  await d2.getByLabel('Include message text').check();
  await waitForAsync(async () => (await aliceRest.call('GET', '/me/notifications')).pushPreview === true, 'pushPreview on the server');
  await d2.getByRole('button', { name: 'Close' }).click();
  await closeAll(page);
  await setHidden(page, true);
  await bob.send(conv.id, 'now you may read this');
  const n2 = await waitShown(page, (n) => n.body === 'now you may read this', 'with the preview');
  assert.equal(n2.title, B.name);
  assert.equal(n2.tag, conv.id);
  assert.equal(n2.data.conversationId, conv.id);

  // Mute for an hour (in the conversation's header): it says until when, the list shows it
  // muted; nothing notifies, the unread count still goes up.
  await setHidden(page, false);
  await closeAll(page);
  await page.locator(`[data-conversation="${conv.id}"]`).click();
  await page.getByTestId('mute-button').click();
  await page.getByRole('menuitemradio', { name: 'For 1 hour' }).click();
  await page.getByTestId('mute-button').getByText(/^Muted until \d{1,2}:\d\d( [AP]M)?$/).waitFor({ timeout: T });
  await page.locator(`[data-conversation="${conv.id}"] [data-testid="conv-muted"]`).waitFor({ timeout: T });
  const until = (await aliceRest.call('GET', `/conversations/${conv.id}`)).mutedUntil;
  assert.ok(until && Math.abs(Date.parse(until) - Date.now() - 3600_000) < 120_000, `muted for about an hour on the server: ${until}`);
  await backToList(page);
  await setHidden(page, true);
  await bob.send(conv.id, 'muted, quiet');
  await waitUnread(page, conv.id, 1);
  await sleep(500);
  assert.deepEqual(await shown(page), [], 'a muted conversation does not notify');

  // A mention breaks the mute (mentionsBreakMute, on by default), and sounds again (renotify).
  await bob.send(conv.id, `hey @${A.username} look`);
  const n3 = await waitShown(page, (n) => n.tag === conv.id, 'for the mention');
  assert.equal(n3.renotify, true);
  assert.equal(n3.body, `hey @${A.username} look`);

  // Mentions no longer break mutes: silent again.
  await closeAll(page);
  await setHidden(page, false);
  const d3 = await openNotifications(page);
  await d3.getByLabel('Mentions notify me in muted conversations').uncheck();
  await waitForAsync(async () => (await aliceRest.call('GET', '/me/notifications')).mentionsBreakMute === false, 'mentionsBreakMute off on the server');
  await d3.getByRole('button', { name: 'Close' }).click();
  await setHidden(page, true);
  await bob.send(conv.id, `@${A.username} again`);
  await waitUnread(page, conv.id, 3);
  await sleep(500);
  assert.deepEqual(await shown(page), [], 'a mention in a muted conversation, mentions not breaking mutes');

  // Unmuted (here from another device: the server tells this page); do-not-disturb "until I
  // turn it off" silences everything.
  await aliceRest.call('PUT', `/conversations/${conv.id}/notifications`, { mute: 'off' });
  await page.locator(`[data-conversation="${conv.id}"] [data-testid="conv-muted"]`).waitFor({ state: 'detached', timeout: T });
  await setHidden(page, false);
  const d4 = await openNotifications(page);
  await d4.getByLabel('Until I turn it off').check();
  await d4.getByTestId('dnd-state').getByText('On until you turn it off').waitFor({ timeout: T });
  await d4.getByRole('button', { name: 'Close' }).click();
  await setHidden(page, true);
  await bob.send(conv.id, 'during do not disturb');
  await waitUnread(page, conv.id, 4);
  await sleep(500);
  assert.deepEqual(await shown(page), [], 'nothing in do-not-disturb');
  // DND off: notifies again.
  await setHidden(page, false);
  const d5 = await openNotifications(page);
  await d5.getByLabel('Off', { exact: true }).check();
  await d5.getByTestId('dnd-state').getByText('Off', { exact: true }).waitFor({ timeout: T });
  await d5.getByRole('button', { name: 'Close' }).click();
  assert.equal((await aliceRest.call('GET', '/me/notifications')).dndUntil, null);
  await setHidden(page, true);
  await bob.send(conv.id, 'back to normal');
  await waitShown(page, (n) => n.tag === conv.id && n.body === 'back to normal', 'after DND');
  assert.deepEqual(await cspViolations(alice), []);
  assert.deepEqual(alice.pageErrors, []);
  await alice.context.close();
});

test('mention autocomplete inserts @username; the receiver sees it highlighted and "@ mentioned you" until read', async () => {
  const A = uniquePerson('Alice');
  const B = uniquePerson('Bob');
  const C = uniquePerson('Carol');
  const aliceRest = new RestClient(server.url);
  await aliceRest.register(A);
  const bobRest = new RestClient(server.url);
  await bobRest.register(B);
  const carolRest = new RestClient(server.url);
  await carolRest.register(C);
  const group = await aliceRest.group('Launch', [bobRest.user.id, carolRest.user.id]);
  const other = await bobRest.direct(carolRest.user.id);
  await carolRest.send(other.id, 'elsewhere');

  const alice = await person();
  await signInUI(alice.page, A);
  const bob = await person();
  await signInUI(bob.page, B);
  await bob.page.locator(`[data-conversation="${other.id}"]`).click();

  const page = alice.page;
  await page.locator(`[data-conversation="${group.id}"]`).click();
  const box = page.getByRole('combobox', { name: 'Message' });
  await box.click();
  await box.pressSequentially('Ping @');
  const list = page.getByRole('listbox', { name: 'Members to mention' });
  await list.waitFor({ timeout: T });
  const names = () => list.getByRole('option').locator('.mention-name').allTextContents();
  assert.deepEqual(await names(), [B.name, C.name], 'the other members, not me');
  assert.equal(await box.getAttribute('aria-expanded'), 'true');
  // Filter as you type, on the display name too: "car" finds Carol.
  await box.pressSequentially('car');
  assert.deepEqual(await names(), [C.name]);
  await box.press('Backspace');
  await box.press('Backspace');
  await box.press('Backspace');
  // Down moves the selection (aria-activedescendant follows); Up back; Enter inserts.
  const active = () => box.getAttribute('aria-activedescendant');
  const first = await active();
  await box.press('ArrowDown');
  assert.notEqual(await active(), first);
  assert.equal(await page.locator(`#${await active()}`).getAttribute('aria-selected'), 'true');
  await box.press('ArrowUp');
  assert.equal(await active(), first);
  await box.press('Escape');
  await list.waitFor({ state: 'detached' });
  await box.pressSequentially('b');
  await list.waitFor();
  await box.press('Enter');
  await list.waitFor({ state: 'detached' });
  assert.equal(await box.inputValue(), `Ping @${B.username} `);
  // Tab inserts too.
  await box.pressSequentially('and @car');
  await box.press('Tab');
  assert.equal(await box.inputValue(), `Ping @${B.username} and @${C.username} `);
  await box.press('Enter');

  // Alice's own message: both marked, neither as "me".
  const mine = page.getByTestId('message').last().getByTestId('mention');
  await mine.first().waitFor({ timeout: T });
  assert.deepEqual(await mine.allTextContents(), [`@${B.username}`, `@${C.username}`]);
  assert.equal(await page.locator('.mention-me').count(), 0);

  // Bob, in another conversation: the list says he was mentioned, until he reads it.
  const item = bob.page.locator(`[data-conversation="${group.id}"]`);
  await item.getByTestId('mentioned').waitFor({ timeout: T });
  await item.click();
  const his = bob.page.getByTestId('message').last();
  await his.locator('.mention.mention-me').getByText(`@${B.username}`).waitFor({ timeout: T });
  assert.equal(await his.locator('.mention:not(.mention-me)').textContent(), `@${C.username}`);
  await item.getByTestId('mentioned').waitFor({ state: 'detached', timeout: T });
  // The server parsed the mentions from the text.
  const stored = (await bobRest.call('GET', `/conversations/${group.id}/messages?limit=1`)).messages[0];
  assert.deepEqual([...stored.mentions].sort(), [bobRest.user.id, carolRest.user.id].sort());
  for (const p of [alice, bob]) {
    assert.deepEqual(await cspViolations(p), []);
    assert.deepEqual(p.pageErrors, []);
    await p.context.close();
  }
});

test('the service worker shows a push delivered over CDP, and a click on it opens the conversation', async () => {
  const { B, conv, alice } = await setup();
  const { page, context } = alice;
  await page.evaluate(() => navigator.serviceWorker.ready);
  const cdp = await context.newCDPSession(page);
  const regs = [];
  cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => regs.push(...e.registrations));
  await cdp.send('ServiceWorker.enable');
  await waitFor(() => regs.some((r) => r.scopeURL === `${server.url}/`), 'the registration over CDP');
  const registrationId = regs.find((r) => r.scopeURL === `${server.url}/`).registrationId;

  // What the server's push carries (chatserver/push Payload), without text (preview off).
  const payload = { type: 'message', conversationId: conv.id, messageId: 'm1', seq: 3, kind: 'direct', title: B.name, sender: { id: 'u', displayName: B.name }, unread: 2, count: 2 };
  await cdp.send('ServiceWorker.deliverPushMessage', { origin: server.url, registrationId, data: JSON.stringify(payload) });
  const n = await waitShown(page, (x) => x.tag === conv.id, 'from the push');
  assert.equal(n.title, B.name);
  assert.equal(n.body, '2 new messages');
  assert.equal(n.renotify, false);
  // A burst: the next push updates the same notification; a mention renotifies.
  await cdp.send('ServiceWorker.deliverPushMessage', { origin: server.url, registrationId, data: JSON.stringify({ ...payload, unread: 3, count: 1, mention: true, body: 'hi @alice' }) });
  await waitShown(page, (x) => x.tag === conv.id && x.body === 'hi @alice' && x.renotify, 'updated by the second push');
  assert.equal((await shown(page)).length, 1);
  // An end-to-end encrypted conversation's push says only that something arrived.
  await cdp.send('ServiceWorker.deliverPushMessage', { origin: server.url, registrationId, data: JSON.stringify({ type: 'message', conversationId: 'c-e2e' }) });
  const e2e = await waitShown(page, (x) => x.tag === 'c-e2e', 'minimal payload');
  assert.deepEqual([e2e.title, e2e.body], ['Parley', 'New message']);

  // notificationclick: CDP cannot click a notification, so the test dispatches the event the
  // browser would (a NotificationEvent for the shown notification) in the worker itself.
  assert.equal(new URL(page.url()).pathname, '/');
  const [worker] = context.serviceWorkers();
  assert.ok(worker, 'Playwright sees the service worker');
  await worker.evaluate(async (tag) => {
    const [notification] = await self.registration.getNotifications({ tag });
    self.dispatchEvent(new NotificationEvent('notificationclick', { notification }));
  }, conv.id);
  await page.waitForURL(`**/c/${conv.id}`, { timeout: T });
  await page.getByRole('heading', { name: B.name, level: 2 }).waitFor({ timeout: T });
  assert.equal((await shown(page)).filter((x) => x.tag === conv.id).length, 0, 'the clicked notification is closed');
  assert.deepEqual(await cspViolations(alice), []);
  assert.deepEqual(alice.pageErrors, []);
  await alice.context.close();
});

test('axe: the Notifications dialog and the mute menu have no serious or critical violation', async () => {
  const A = uniquePerson('Alice');
  const B = uniquePerson('Bob');
  const bob = new RestClient(server.url);
  await bob.register(B);
  const aliceRest = new RestClient(server.url);
  await aliceRest.register(A);
  const conv = await bob.direct(aliceRest.user.id);
  await bob.send(conv.id, 'hello');
  const alice = await person({ axe: true });
  await signInUI(alice.page, A);
  const page = alice.page;
  await openNotifications(page);
  assert.deepEqual(await seriousViolations(page, { include: 'dialog.modal' }), []);
  await page.getByRole('dialog', { name: 'Notifications' }).getByRole('button', { name: 'Close' }).click();
  await page.locator(`[data-conversation="${conv.id}"]`).click();
  await page.getByTestId('mute-button').click();
  await page.getByRole('menu', { name: 'Mute notifications' }).waitFor();
  // The focus is in the menu; arrows move it.
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'For 1 hour');
  await page.keyboard.press('ArrowUp');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Unmute');
  assert.deepEqual(await seriousViolations(page, { include: '.pane-head' }), []);
  await page.keyboard.press('Escape');
  await page.getByRole('menu', { name: 'Mute notifications' }).waitFor({ state: 'detached' });
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'mute-button');
  // The mention list too.
  const box = page.getByRole('combobox', { name: 'Message' });
  await box.pressSequentially('@');
  await page.getByRole('listbox', { name: 'Members to mention' }).waitFor();
  assert.deepEqual(await seriousViolations(page, { include: '.composer' }), []);
  await alice.context.close();
});
