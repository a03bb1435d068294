// End-to-end encrypted conversations (issue 17) in Chromium against the real chat server:
// 3 users and 4 devices (Alice in two browser contexts, each its own MLS device with its
// keys in its own IndexedDB). An encrypted group is created, messages are exchanged, a
// member is added, Alice's second device joins (new messages readable, older ones shown as
// "before this device joined"), a safety number is compared and verified, an encrypted file
// makes the round trip, and a removed member's own page cannot decrypt what follows.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { newAxePerson, seriousViolations } from './axe.mjs';
import { cspViolations, launchBrowser, newPerson, RestClient, signInUI, startServer, uniquePerson } from './harness.mjs';

const T = 20_000;

describe('end-to-end encrypted conversations', () => {
  let server, browser;
  let A, B, C;
  let a1, a2, bob, carol;
  const rest = {};
  let convId = '';

  const person = async () => {
    const p = await newPerson(browser, server);
    await p.context.addInitScript(() => {
      window.__PARLEY_TEST__ = true;
    });
    return p;
  };
  /** Waits until the page (a Playwright Page) is an MLS device (registered, KeyPackages uploaded). */
  const deviceReady = (page) => page.waitForFunction(() => !!window.__parleyStore?.e2ee?.deviceId, null, { timeout: T });
  /** Waits until the page's device has joined the conversation's group. */
  const joined = (page, id = convId) => page.waitForFunction((x) => !!window.__parleyStore.e2ee.info(x), id, { timeout: T });
  /** The epoch of the conversation's group on the page's device. */
  const epochOf = (page, id = convId) => page.evaluate((x) => window.__parleyStore.e2ee.info(x).epoch, id);
  /** Signs in and waits until the page is an MLS device. */
  const signIn = async (p, who) => {
    await signInUI(p.page, who);
    await deviceReady(p.page);
    return p.page.evaluate(() => window.__parleyStore.e2ee.deviceId);
  };
  const messageWith = (p, text) => p.page.locator('[data-testid=message] .msg-body', { hasText: text });
  const send = async (p, text) => {
    await p.page.getByLabel('Message', { exact: true }).fill(text);
    await p.page.keyboard.press('Enter');
    await messageWith(p, text).waitFor({ timeout: T });
    await p.page.locator('[data-testid=message][data-status]').waitFor({ state: 'detached', timeout: T });
  };
  const open = async (p) => {
    await p.page.locator(`[data-conversation="${convId}"]`).click({ timeout: T });
    await p.page.getByRole('heading', { name: /Secret plans/ }).waitFor({ timeout: T });
  };

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    A = uniquePerson('Alice');
    B = uniquePerson('Bob');
    C = uniquePerson('Carol');
    for (const [k, who] of [
      ['A', A],
      ['B', B],
      ['C', C],
    ]) {
      rest[k] = new RestClient(server.url);
      await rest[k].register(who);
    }
    a1 = await person();
    bob = await person();
    carol = await person();
  });

  let axeBob;

  after(async () => {
    for (const p of [a1, a2, bob, carol]) if (p) assert.deepEqual(p.pageErrors, [], 'page errors');
    for (const p of [a1, a2, bob, carol]) if (p) assert.deepEqual(await cspViolations(p), [], 'CSP violations');
    await browser?.close();
    await server?.stop();
  });

  test('an encrypted group: created with its lock, messages both ways, the server holds only ciphertext', async () => {
    const [da1, db, dc] = [await signIn(a1, A), await signIn(bob, B), await signIn(carol, C)];
    assert.notEqual(da1, db);
    // Each device registered its key and uploaded KeyPackages (and a last-resort one).
    const kp = await rest.B.call('GET', `/devices/${db}/keypackages`);
    assert.ok(kp.count >= 10, `Bob's device holds ${kp.count} KeyPackages`);
    assert.equal(kp.lastResort, true);
    assert.ok(dc);

    await a1.page.getByRole('button', { name: 'New group' }).click();
    await a1.page.getByLabel('Group name').fill('Secret plans');
    await a1.page.getByLabel('Add people').fill(B.username);
    await a1.page.getByRole('button', { name: `Add Bob (@${B.username})` }).click();
    await a1.page.getByTestId('e2ee-option').check();
    await a1.page.getByRole('button', { name: 'Create group' }).click();
    await a1.page.getByRole('heading', { name: /Secret plans/ }).waitFor({ timeout: T });
    await a1.page.locator('.pane-head [data-testid=e2ee-lock]').waitFor({ timeout: T });
    convId = new URL(a1.page.url()).pathname.split('/')[2];
    assert.ok(convId, 'the conversation is in the address');
    const conv = await rest.A.call('GET', `/conversations/${convId}`);
    assert.equal(conv.e2ee, true);

    // Bob's list shows it with the lock; his device joined from the Welcome.
    await bob.page.locator(`[data-conversation="${convId}"] [data-testid=e2ee-lock]`).waitFor({ timeout: T });
    await joined(bob.page);
    await open(bob);

    await send(a1, 'Meet at the old mill at nine');
    await messageWith(bob, 'Meet at the old mill at nine').waitFor({ timeout: T });
    await send(bob, 'I will bring the map');
    await messageWith(a1, 'I will bring the map').waitFor({ timeout: T });

    // What the server stores and hands out: ciphertext, no body, no plaintext.
    const { messages } = await rest.B.call('GET', `/conversations/${convId}/messages?limit=50`);
    assert.equal(messages.length, 2);
    for (const m of messages) {
      assert.ok(m.ciphertext, 'a ciphertext');
      assert.ok(!m.body, 'no body');
      assert.ok(!Buffer.from(m.ciphertext, 'base64').toString('latin1').includes('old mill'));
    }
    // Encryption is for good: creating with e2ee is the only way, nothing turns it off.
    assert.equal((await rest.A.call('GET', `/conversations/${convId}`)).e2ee, true);
  });

  test('a member added later reads new messages, not older ones', async () => {
    await open(a1);
    await a1.page.getByRole('button', { name: 'Members' }).click();
    await a1.page.getByLabel('Add people').fill(C.username);
    await a1.page.getByRole('button', { name: `Add Carol (@${C.username})` }).click();
    await a1.page.getByRole('dialog').getByText('Carol', { exact: false }).first().waitFor({ timeout: T });
    await a1.page.keyboard.press('Escape');

    await joined(carol.page);
    await open(carol);
    await carol.page.getByTestId('joined-later').getByText("Messages sent before this device joined can't be read here").waitFor({ timeout: T });
    await carol.page.locator('[data-testid=undecryptable]', { hasText: 'Sent before this device joined' }).first().waitFor({ timeout: T });
    assert.equal(await messageWith(carol, 'old mill').count(), 0);

    await send(bob, 'Welcome, Carol');
    await messageWith(carol, 'Welcome, Carol').waitFor({ timeout: T });
    await send(carol, 'Thanks, both');
    await messageWith(a1, 'Thanks, both').waitFor({ timeout: T });
    await messageWith(bob, 'Thanks, both').waitFor({ timeout: T });

    // Reactions, edits and deletions in an encrypted conversation.
    const msgWith = (p, text) => p.page.locator('[data-testid=message]:not([data-status])').filter({ has: p.page.locator('.msg-body', { hasText: text }) });
    const action = async (p, text, name) => {
      const m = msgWith(p, text);
      await m.waitFor({ timeout: T });
      const button = m.getByRole('toolbar', { name: 'Message actions' }).getByRole('button', { name, exact: true });
      await button.waitFor({ state: 'attached', timeout: T });
      await m.locator('.bubble').hover();
      await button.click({ timeout: T });
    };
    const chip = (p, text, emoji) => msgWith(p, text).locator(`.reaction[data-emoji="${emoji}"]`);
    await action(bob, 'Thanks, both', 'React with thumbs up');
    for (const p of [a1, bob, carol]) await chip(p, 'Thanks, both', '👍').filter({ hasText: '1' }).waitFor({ timeout: T });
    assert.equal(await chip(bob, 'Thanks, both', '👍').getAttribute('aria-pressed'), 'true');
    await action(carol, 'Thanks, both', 'Edit');
    await carol.page.locator('#composer-input').fill('Thanks, both of you');
    await carol.page.locator('#composer-input').press('Enter');
    for (const p of [a1, bob]) await msgWith(p, 'Thanks, both of you').waitFor({ timeout: T });
    await action(bob, 'Welcome, Carol', 'Delete');
    await bob.page.getByRole('button', { name: 'Delete for everyone' }).click();
    for (const p of [a1, carol]) await p.page.locator('[data-testid=deleted]', { hasText: 'Message deleted' }).first().waitFor({ timeout: T });
    // The server saw neither the emoji nor the new text: its copy has no reactions, no edit.
    const { messages } = await rest.A.call('GET', `/conversations/${convId}/messages?limit=50`);
    assert.ok(messages.every((m) => !m.reactions?.length && !m.editedAt && !m.body));
  });

  test('safety numbers: both sides show the same 60 digits; Alice marks Bob verified', async () => {
    const digits = async (p, name) => {
      await p.page.getByTestId('verify-button').click();
      const dialog = p.page.getByRole('dialog');
      await dialog.getByRole('combobox').selectOption({ label: name });
      const n = dialog.getByTestId('safety-number');
      await n.waitFor({ timeout: T });
      await p.page.waitForFunction(() => document.querySelector('[data-testid=safety-number]')?.textContent?.length === 60, null, { timeout: T });
      return (await n.textContent()).trim();
    };
    const fromAlice = await digits(a1, 'Bob');
    const fromBob = await digits(bob, 'Alice');
    assert.match(fromAlice, /^\d{60}$/);
    assert.equal(fromAlice, fromBob);
    assert.equal(await a1.page.getByTestId('safety-number').locator('span').count(), 12);
    await a1.page.getByTestId('mark-verified').click();
    await a1.page.getByTestId('verified').waitFor({ timeout: T });
    await a1.page.keyboard.press('Escape');
    await bob.page.keyboard.press('Escape');
  });

  test('an encrypted direct conversation, started from either side, is one group', async () => {
    await bob.page.getByRole('button', { name: 'New chat' }).click();
    await bob.page.getByTestId('e2ee-option').check();
    await bob.page.getByLabel('Find a person').fill(C.username);
    await bob.page.getByRole('button', { name: `Message Carol (@${C.username})` }).click();
    await bob.page.getByRole('heading', { name: 'Carol' }).waitFor({ timeout: T });
    await bob.page.locator('.pane-head [data-testid=e2ee-lock]').waitFor({ timeout: T });
    const direct = new URL(bob.page.url()).pathname.split('/')[2];
    await joined(carol.page, direct);
    // Carol asks for the same encrypted conversation: the existing one (200), no second group.
    await carol.page.getByRole('button', { name: 'New chat' }).click();
    await carol.page.getByTestId('e2ee-option').check();
    await carol.page.getByLabel('Find a person').fill(B.username);
    await carol.page.getByRole('button', { name: `Message Bob (@${B.username})` }).click();
    await carol.page.getByRole('heading', { name: 'Bob' }).waitFor({ timeout: T });
    assert.equal(new URL(carol.page.url()).pathname.split('/')[2], direct);
    await send(carol, 'Just between us');
    await messageWith(bob, 'Just between us').waitFor({ timeout: T });
    await send(bob, 'Agreed');
    await messageWith(carol, 'Agreed').waitFor({ timeout: T });
    const epochs = await Promise.all([bob, carol].map((p) => epochOf(p.page, direct)));
    assert.deepEqual(epochs, [1, 1], 'one commit: the creator adding the other');
    // Back to the group for the next tests.
    await open(bob);
    await open(carol);
  });

  test('two tabs of one browser are one device: each reads what the other sends, and the keys stay in step', async () => {
    const tab2 = await bob.context.newPage();
    const errors = [];
    tab2.on('pageerror', (e) => errors.push(String(e)));
    await tab2.goto('/');
    await deviceReady(tab2);
    const [d1, d2] = await Promise.all([bob.page, tab2].map((pg) => pg.evaluate(() => window.__parleyStore.e2ee.deviceId)));
    assert.equal(d1, d2, 'the same device');
    const t2 = { page: tab2 };
    await open(t2);
    await open(bob);
    // Alternating sends from both tabs: each encrypts from the state the other left.
    for (const [p, text] of [
      [t2, 'From the second tab'],
      [bob, 'From the first tab'],
      [t2, 'Second tab again'],
    ]) {
      await send(p, text);
      await messageWith(a1, text).waitFor({ timeout: T });
      await messageWith(carol, text).waitFor({ timeout: T });
    }
    await messageWith(bob, 'Second tab again').waitFor({ timeout: T });
    await messageWith(t2, 'From the first tab').waitFor({ timeout: T });
    assert.equal(await bob.page.locator('[data-testid=undecryptable]', { hasText: 'could not be decrypted' }).count(), 0);
    const bad2 = await tab2.evaluate(() => [...document.querySelectorAll('[data-testid=message]')].filter((el) => el.querySelector('[data-testid=undecryptable]')).map((el) => el.getAttribute('data-seq') + ' ' + el.textContent));
    assert.deepEqual(bad2.filter((t) => t.includes('could not be decrypted')), [], JSON.stringify(bad2));
    await tab2.close();
    // What the tabs kept is intact after a reload.
    await bob.page.reload();
    await deviceReady(bob.page);
    await open(bob);
    for (const text of ['From the second tab', 'From the first tab', 'Second tab again']) await messageWith(bob, text).waitFor({ timeout: T });
    assert.deepEqual(errors, []);
  });

  test('an encrypted file: uploaded as ciphertext, decrypted and saved by the other side', async () => {
    const secret = Buffer.from('Treasure is under the third stone.\n'.repeat(20));
    await a1.page.getByTestId('file-input').setInputFiles({ name: 'plan.txt', mimeType: 'text/plain', buffer: secret });
    await a1.page.locator('[data-testid=upload-chip][data-status=done]').waitFor({ timeout: T });
    await a1.page.getByLabel('Message', { exact: true }).fill('The plan, attached');
    await a1.page.keyboard.press('Enter');
    await messageWith(bob, 'The plan, attached').waitFor({ timeout: T });
    const card = bob.page.locator('[data-testid=sealed-file]', { hasText: 'plan.txt' });
    await card.waitFor({ timeout: T });
    const [download] = await Promise.all([bob.page.waitForEvent('download', { timeout: T }), card.getByRole('button', { name: /Download plan\.txt/ }).click()]);
    assert.equal(download.suggestedFilename(), 'plan.txt');
    const chunks = [];
    for await (const ch of await download.createReadStream()) chunks.push(ch);
    assert.deepEqual(Buffer.concat(chunks), secret);

    // The server has the ciphertext only.
    const { messages } = await rest.B.call('GET', `/conversations/${convId}/messages?limit=50`);
    const last = messages[messages.length - 1];
    assert.ok(last.ciphertext && !last.body);
    const ids = (last.attachments ?? []).map((a) => a.id);
    assert.equal(ids.length, 1, 'the opaque upload is linked to the message');
    assert.equal(last.attachments[0].name, 'encrypted');
    const raw = await fetch(`${server.url}/api/v1/attachments/${ids[0]}`, { headers: { Authorization: `Bearer ${rest.B.token}` } });
    assert.equal(raw.status, 200);
    const stored = Buffer.from(await raw.arrayBuffer());
    assert.equal(stored.length, secret.length + 16, 'AES-GCM: the bytes and a 16-byte tag');
    assert.ok(!stored.toString('latin1').includes('Treasure'));
  });

  test("Alice's second device joins: reads new messages, not older ones; Bob is told her devices changed", async () => {
    // Bob has seen Alice's devices (the first-seen record) before the change.
    await open(bob);
    // Carol's browser is closed meanwhile: it will miss the commit and the messages.
    const carolEpoch = await epochOf(carol.page);
    await carol.page.close();
    a2 = await person();
    const d2 = await signIn(a2, A);
    assert.ok(d2);
    await joined(a2.page);
    await open(a2);
    await a2.page.getByTestId('joined-later').waitFor({ timeout: T });
    assert.equal(await messageWith(a2, 'old mill').count(), 0);
    await send(bob, 'For both of your devices, Alice');
    await messageWith(a2, 'For both of your devices, Alice').waitFor({ timeout: T });
    await messageWith(a1, 'For both of your devices, Alice').waitFor({ timeout: T });
    // What one of Alice's devices sends, the other reads.
    await send(a2, 'Written on my second device');
    await messageWith(a1, 'Written on my second device').waitFor({ timeout: T });
    await bob.page.getByTestId('device-change').getByText("Alice's devices changed").waitFor({ timeout: T });

    // Carol comes back: her device catches up from its cursor, the commit first, then the
    // messages of the new epoch, in seq order.
    carol.page = await carol.context.newPage();
    carol.page.on('pageerror', (e) => carol.pageErrors.push(String(e.stack ?? e)));
    await carol.page.goto('/');
    await deviceReady(carol.page);
    await open(carol);
    await messageWith(carol, 'For both of your devices, Alice').waitFor({ timeout: T });
    await messageWith(carol, 'Written on my second device').waitFor({ timeout: T });
    const caughtUp = await epochOf(carol.page);
    assert.ok(caughtUp > carolEpoch, `Carol's device went from epoch ${carolEpoch} to ${caughtUp}`);
    // The group holds exactly the four devices, the same on every device.
    const devices = (p) => p.page.evaluate((id) => window.__parleyStore.e2ee.memberDevices(id).sort(), convId);
    const ids = [`${rest.A.user.id}:${d2}`, ...(await devices(bob))].filter((v, i, all) => all.indexOf(v) === i);
    assert.equal((await devices(bob)).length, 4);
    assert.deepEqual(await devices(a2), await devices(bob));
    assert.deepEqual(await devices(a1), await devices(bob));
    assert.equal(ids.length, 4, 'the second device is one of them');

    // A reload: the keys and what was read come back from IndexedDB (sealed), and it goes on.
    await bob.page.reload();
    await deviceReady(bob.page);
    await open(bob);
    await messageWith(bob, 'Meet at the old mill at nine').waitFor({ timeout: T });
    await messageWith(bob, 'Written on my second device').waitFor({ timeout: T });
    await send(a1, 'After your reload');
    await messageWith(bob, 'After your reload').waitFor({ timeout: T });
  });

  test('a lost device removed from another device leaves every encrypted conversation', async () => {
    const d2 = await a2.page.evaluate(() => window.__parleyStore.e2ee.deviceId);
    await a1.page.getByRole('button', { name: 'Account menu' }).click();
    await a1.page.getByRole('button', { name: 'Devices' }).click();
    const row = a1.page.locator(`[data-testid=device][data-device="${d2}"]`);
    await row.waitFor({ timeout: T });
    await a1.page.locator('[data-testid=device]', { hasText: '(this device)' }).waitFor({ timeout: T });
    await row.getByRole('button', { name: /^Remove/ }).click();
    await row.getByRole('button', { name: 'Remove', exact: true }).click();
    await row.waitFor({ state: 'detached', timeout: T });
    await a1.page.keyboard.press('Escape');
    // Someone's device commits the removal: the group no longer holds it.
    const gone = `${rest.A.user.id}:${d2}`;
    await bob.page.waitForFunction(([id, x]) => !window.__parleyStore.e2ee.memberDevices(id).includes(x), [convId, gone], { timeout: T });
    await a1.page.waitForFunction(([id, x]) => !window.__parleyStore.e2ee.memberDevices(id).includes(x), [convId, gone], { timeout: T });
    await send(bob, 'Not for the lost device');
    await messageWith(a1, 'Not for the lost device').waitFor({ timeout: T });
    const { messages } = await rest.B.call('GET', `/conversations/${convId}/messages?limit=50`);
    const ct = messages[messages.length - 1].ciphertext;
    assert.equal(await a2.page.evaluate(([id, c]) => window.__parleyStore.e2ee.canDecrypt(id, c), [convId, ct]), false);
  });

  test("a removed member's device cannot decrypt what is sent after, checked in her own page", async () => {
    await open(a1);
    await a1.page.getByRole('button', { name: 'Members' }).click();
    await a1.page.getByRole('button', { name: 'Remove Carol' }).click();
    await a1.page.getByRole('button', { name: 'Remove Carol' }).waitFor({ state: 'detached', timeout: T });
    await a1.page.keyboard.press('Escape');
    await carol.page.getByTestId('e2ee-blocked').getByText('You were removed').waitFor({ timeout: T });

    await send(bob, 'Carol must not read this');
    await messageWith(a1, 'Carol must not read this').waitFor({ timeout: T });
    const { messages } = await rest.B.call('GET', `/conversations/${convId}/messages?limit=50`);
    const ct = messages[messages.length - 1].ciphertext;
    assert.ok(ct);
    // Carol's page, with the keys it holds, cannot open it.
    const readable = await carol.page.evaluate(([id, c]) => window.__parleyStore.e2ee.canDecrypt(id, c), [convId, ct]);
    assert.equal(readable, false);
    assert.equal(await messageWith(carol, 'Carol must not read this').count(), 0);
    // The others' groups no longer hold any device of hers.
    const left = await bob.page.evaluate((id) => window.__parleyStore.e2ee.memberDevices(id), convId);
    assert.equal(left.length, 2, 'Alice and Bob, one device each now');
    assert.ok(!left.some((x) => x.startsWith(`${rest.C.user.id}:`)));
    // And the server no longer lets her fetch it.
    const r = await rest.C.raw('GET', `/conversations/${convId}/messages?limit=50`);
    assert.ok(r.status === 403 || r.status === 404, `Carol's history request: ${r.status}`);
  });
  test('axe: an encrypted conversation, the Verify and Devices dialogs, the option when creating', async () => {
    // A context of its own without the CSP (axe is injected): Bob's second device.
    axeBob = await newAxePerson(browser, server);
    await axeBob.context.addInitScript(() => {
      window.__PARLEY_TEST__ = true;
    });
    await signIn(axeBob, B);
    await joined(axeBob.page);
    await open(axeBob);
    const check = async (what, include) => assert.deepEqual(await seriousViolations(axeBob.page, { include }), [], `${what}: serious or critical axe violations`);
    await check('encrypted conversation');
    await axeBob.page.getByTestId('verify-button').click();
    await axeBob.page.getByTestId('safety-number').waitFor({ timeout: T });
    await check('Verify dialog', 'dialog');
    await axeBob.page.keyboard.press('Escape');
    await axeBob.page.getByRole('button', { name: 'Account menu' }).click();
    await axeBob.page.getByRole('button', { name: 'Devices' }).click();
    await axeBob.page.locator('[data-testid=device]', { hasText: '(this device)' }).waitFor({ timeout: T });
    await check('Devices dialog', 'dialog');
    await axeBob.page.keyboard.press('Escape');
    await axeBob.page.getByRole('button', { name: 'New group' }).click();
    await axeBob.page.getByTestId('e2ee-option').waitFor({ timeout: T });
    await check('New group with the encryption option', 'dialog');
    await axeBob.page.keyboard.press('Escape');
    assert.deepEqual(axeBob.pageErrors, []);
  });
  test('a message encrypted for an epoch the group has left is refused (stale_epoch), then sent again after the commit', async () => {
    // Bob's browser reopened with its socket routed: commit frames are held back until the
    // server has refused one of his messages, so his device is an epoch behind when he writes.
    await bob.page.close();
    const page = await bob.context.newPage();
    page.on('pageerror', (e) => bob.pageErrors.push(String(e.stack ?? e)));
    const seen = { dropped: 0, stale: 0 };
    await page.routeWebSocket(/\/api\/v1\/ws/, (ws) => {
      const server = ws.connectToServer();
      server.onMessage((m) => {
        const f = JSON.parse(String(m));
        if (f.type === 'mls' && seen.stale === 0) {
          seen.dropped++;
          return;
        }
        if (f.type === 'error' && f.code === 'stale_epoch') seen.stale++;
        ws.send(m);
      });
      ws.onMessage((m) => server.send(m));
    });
    bob.page = page;
    await page.goto('/');
    await deviceReady(page);
    await open(bob);
    const before = await epochOf(page);
    // Alice adds Carol back: one commit (Carol's device joins again from a new Welcome).
    await a1.page.getByRole('button', { name: 'Members' }).click();
    await a1.page.getByLabel('Add people').fill(C.username);
    await a1.page.getByRole('button', { name: `Add Carol (@${C.username})` }).click();
    await a1.page.getByRole('button', { name: 'Remove Carol' }).waitFor({ timeout: T });
    await a1.page.keyboard.press('Escape');
    for (let i = 0; i < 50 && seen.dropped === 0; i++) await page.waitForTimeout(100);
    assert.ok(seen.dropped >= 1, 'the commit frame was held back');
    assert.equal(await epochOf(page), before, 'Bob is an epoch behind');
    await send(bob, 'Written an epoch behind');
    assert.ok(seen.stale >= 1, 'the server refused the first try with stale_epoch');
    await messageWith(a1, 'Written an epoch behind').waitFor({ timeout: T });
    await carol.page.getByTestId('e2ee-blocked').waitFor({ state: 'detached', timeout: T });
    await messageWith(carol, 'Written an epoch behind').waitFor({ timeout: T });
    assert.ok((await epochOf(page)) > before);
  });
});
