// Browser tests of attachments (issue 13), real chat server, Debian's Chromium: a pasted
// screenshot shown to the receiver in its aspect box and in the lightbox, a PDF uploaded
// through the file input and downloaded in another browser context (bytes and
// Content-Disposition), a voice message recorded with Chromium's fake microphone and
// played in another context, a dropped file, a file over the server's limit refused on
// its chip with the server's message, a cancelled upload that sends nothing, and axe on a
// conversation showing an image, a document and a voice message.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { seriousViolations } from './axe.mjs';
import { cspViolations, launchBrowser, newPerson, RestClient, signInUI, sleep, startServer, uniquePerson } from './harness.mjs';

const T = 15_000;

describe('attachments in the browser', () => {
  let server, browser;
  let A, B, alice, bob, conv, apiA, apiB;

  before(async () => {
    // A 1 MiB limit, so a file over it is small enough to make in a test.
    server = await startServer({ env: { PARLEY_MAX_ATTACHMENT_MIB: '1' } });
    // Chromium's fake microphone (a beep) and no permission prompt, for the voice test.
    browser = await launchBrowser(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--autoplay-policy=no-user-gesture-required']);
    A = uniquePerson('Alice');
    B = uniquePerson('Bob');
    apiA = new RestClient(server.url);
    apiB = new RestClient(server.url);
    await apiA.register(A);
    await apiB.register(B);
    conv = await apiA.direct(apiB.user.id);
    await apiA.send(conv.id, 'Files coming.');
    alice = await newPerson(browser, server);
    bob = await newPerson(browser, server);
    // The page's Permissions-Policy lets the app itself use the microphone (and nothing else).
    const policy = (await fetch(server.url + '/')).headers.get('permissions-policy') ?? '';
    assert.match(policy, /microphone=\(self\)/, `Permissions-Policy: ${policy}`);
    assert.match(policy, /camera=\(\)/, `Permissions-Policy: ${policy}`);
    await alice.context.grantPermissions(['microphone'], { origin: server.url });
    await signInUI(alice.page, A);
    await signInUI(bob.page, B);
    for (const [p, name] of [
      [alice, 'Bob'],
      [bob, 'Alice'],
    ]) {
      await p.page.getByRole('button', { name: new RegExp(`^${name}`) }).click();
      await p.page.getByRole('heading', { name }).waitFor({ timeout: T });
    }
  });

  after(async () => {
    for (const p of [alice, bob]) {
      if (!p) continue;
      assert.deepEqual(p.pageErrors, [], 'no page errors');
      assert.deepEqual(await cspViolations(p), [], 'no CSP violations');
    }
    await browser?.close();
    await server?.stop();
  });

  const lastMessage = (p) => p.page.locator('[data-testid=message][data-id]').last();
  const composer = (p) => p.page.getByLabel('Message', { exact: true });
  /** Messages of the conversation as the server has them (what was really sent). */
  const serverMessages = async () => (await apiB.call('GET', `/conversations/${conv.id}/messages?limit=200`)).messages;

  test('a pasted screenshot is sent and shown to the receiver in its aspect box, then in the lightbox', async () => {
    // A real paste event carrying a PNG made in the page (1200 × 600: a 2:1 box).
    await composer(alice).click();
    await alice.page.evaluate(async () => {
      const c = document.createElement('canvas');
      c.width = 1200;
      c.height = 600;
      const g = c.getContext('2d');
      g.fillStyle = '#3a7bd5';
      g.fillRect(0, 0, 1200, 600);
      g.fillStyle = '#ffd166';
      g.fillRect(100, 100, 500, 300);
      const blob = await new Promise((r) => c.toBlob(r, 'image/png'));
      const dt = new DataTransfer();
      dt.items.add(new File([blob], 'screenshot.png', { type: 'image/png' }));
      const ev = new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true });
      document.getElementById('composer-input').dispatchEvent(ev);
    });
    const chip = alice.page.getByTestId('upload-chip');
    await chip.filter({ hasText: 'screenshot.png' }).waitFor({ timeout: T });
    await alice.page.locator('[data-testid=upload-chip][data-status=done]').waitFor({ timeout: T });
    assert.equal(await composer(alice).inputValue(), '', 'the paste put no text in the composer');
    // Send is enabled with a file and no text.
    const send = alice.page.getByRole('button', { name: 'Send', exact: true });
    assert.equal(await send.isEnabled(), true);
    await send.click();
    await chip.waitFor({ state: 'detached', timeout: T });

    // Bob: the image, in a box of the image's aspect ratio, the thumbnail loaded into it.
    const img = bob.page.getByTestId('att-image').last();
    await img.waitFor({ timeout: T });
    assert.equal(await img.getAttribute('data-w'), '1200');
    assert.equal(await img.getAttribute('data-h'), '600');
    const box = await img.boundingBox();
    assert.ok(Math.abs(box.width / box.height - 2) < 0.03, `aspect box ${box.width}×${box.height}`);
    const full = img.locator('img.att-full.loaded');
    await full.waitFor({ timeout: T });
    const shown = await full.evaluate((el) => ({ src: el.getAttribute('src'), w: el.naturalWidth, h: el.naturalHeight }));
    assert.match(shown.src, /^\/api\/v1\/attachments\/a_[^/]+\/thumbnail\?u=.*&s=/, 'a signed thumbnail URL');
    assert.doesNotMatch(shown.src, /token|Bearer|eyJ/, 'no access token in the URL');
    assert.deepEqual([shown.w, shown.h], [480, 240], 'the server-made thumbnail');
    // The box did not change once the thumbnail was in.
    const after = await img.boundingBox();
    assert.deepEqual([after.width, after.height], [box.width, box.height]);
    // The list names the file.
    await bob.page.getByTestId('conv-preview').filter({ hasText: '📎 screenshot.png' }).waitFor({ timeout: T });

    // The lightbox: a named modal dialog with the whole image; Escape closes it and the focus goes back.
    await img.click();
    const dialog = bob.page.getByRole('dialog', { name: 'Image: screenshot.png' });
    await dialog.waitFor({ timeout: T });
    const big = dialog.locator('img.lightbox-img');
    await big.waitFor({ timeout: T });
    await bob.page.waitForFunction(() => document.querySelector('img.lightbox-img')?.naturalWidth === 1200, null, { timeout: T });
    assert.equal(await bob.page.evaluate(() => !!document.activeElement?.closest('dialog')), true, 'focus in the dialog');
    // Tab stays in the dialog (the page behind is inert).
    for (let i = 0; i < 4; i++) {
      await bob.page.keyboard.press('Tab');
      assert.equal(await bob.page.evaluate(() => !!document.activeElement?.closest('dialog') || document.activeElement === document.body), true, `Tab ${i + 1} stays in the dialog`);
    }
    await bob.page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached', timeout: T });
    assert.equal(await bob.page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'att-image', 'focus back on the image');
    // A click closes it too.
    await img.click();
    await dialog.waitFor({ timeout: T });
    await big.click();
    await dialog.waitFor({ state: 'detached', timeout: T });
  });

  test('a PDF uploaded through the file input is downloaded by the other person, bytes and Content-Disposition', async () => {
    const pdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n' + 'x'.repeat(3000));
    await alice.page.getByTestId('file-input').setInputFiles({ name: 'report Q3.pdf', mimeType: 'application/pdf', buffer: pdf });
    await alice.page.locator('[data-testid=upload-chip][data-status=done]').waitFor({ timeout: T });
    await composer(alice).fill('Here is the **report**');
    await composer(alice).press('Enter');

    const card = bob.page.getByTestId('att-file').last();
    await card.waitFor({ timeout: T });
    await card.getByText('PDF · 3.0 KB').waitFor({ timeout: T });
    // The list: the file and the text without its Markdown.
    await bob.page.getByTestId('conv-preview').filter({ hasText: '📎 report Q3.pdf Here is the report' }).waitFor({ timeout: T });
    const link = card.getByRole('link', { name: 'Download report Q3.pdf, PDF, 3.0 KB' });
    await bob.page.waitForFunction(() => document.querySelector('[data-testid=att-file] a')?.getAttribute('href')?.startsWith('/api/'), null, { timeout: T });
    const [dl] = await Promise.all([bob.page.waitForEvent('download', { timeout: T }), link.click()]);
    assert.equal(dl.suggestedFilename(), 'report Q3.pdf');
    assert.deepEqual(readFileSync(await dl.path()), pdf, 'the same bytes');
    // What the server sends for that link (signed, no token): saved, never shown.
    const href = await link.getAttribute('href');
    const res = await bob.context.request.get(href);
    assert.equal(res.status(), 200);
    assert.equal(res.headers()['content-type'], 'application/pdf');
    assert.match(res.headers()['content-disposition'], /^attachment; filename="report Q3.pdf"; filename\*=UTF-8''report%20Q3.pdf$/);
  });

  test('a voice message recorded with the (fake) microphone plays for the other person', async () => {
    await alice.page.getByRole('button', { name: 'Record a voice message' }).click();
    await alice.page.getByTestId('recorder').waitFor({ timeout: T });
    await alice.page.getByTestId('rec-time').filter({ hasText: '0:02' }).waitFor({ timeout: T });
    await alice.page.getByRole('button', { name: 'Stop and send voice message' }).click();
    await alice.page.getByTestId('recorder').waitFor({ state: 'detached', timeout: T });

    const voice = bob.page.getByTestId('att-voice').last();
    await voice.waitFor({ timeout: T });
    const m = (await serverMessages()).at(-1);
    assert.equal(m.body, '');
    assert.equal(m.attachments.length, 1);
    assert.equal(m.attachments[0].contentType, 'audio/webm');
    assert.ok(m.attachments[0].durationMs >= 1800 && m.attachments[0].durationMs < 6000, `duration ${m.attachments[0].durationMs} ms`);
    await voice.getByTestId('voice-time').filter({ hasText: /^0:0[2-5]$/ }).waitFor({ timeout: T });
    await bob.page.getByTestId('conv-preview').filter({ hasText: /🎤 Voice message 0:0[2-5]/ }).waitFor({ timeout: T });
    // The waveform: decoded from the recording (not the pseudo-waveform of a failed decode).
    await voice.locator('[data-testid=waveform][data-source=decoded]').waitFor({ timeout: T });

    await voice.getByRole('button', { name: /^Play voice message, 0:0\d$/ }).click();
    await voice.getByRole('button', { name: 'Pause voice message' }).waitFor({ timeout: T });
    const first = await voice.locator('audio').evaluate((a) => ({ d: a.duration, t: a.currentTime }));
    assert.ok(first.d > 0, `audio.duration ${first.d}`);
    await bob.page.waitForFunction((t0) => [...document.querySelectorAll('[data-testid=att-voice] audio')].at(-1).currentTime > t0 + 0.5, first.t, { timeout: T });
    await voice.getByTestId('voice-time').filter({ hasText: / \/ / }).waitFor({ timeout: T });
  });

  test('a file dropped on the conversation is attached and sent', async () => {
    await alice.page.evaluate(() => {
      const target = document.querySelector('.messages');
      const dt = new DataTransfer();
      dt.items.add(new File(['name,score\nada,10\n'], 'scores.csv', { type: 'text/csv' }));
      target.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
      target.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await alice.page.getByTestId('drop-overlay').waitFor({ timeout: T });
    await alice.page.evaluate(() => {
      const target = document.querySelector('.messages');
      const dt = new DataTransfer();
      dt.items.add(new File(['name,score\nada,10\n'], 'scores.csv', { type: 'text/csv' }));
      target.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await alice.page.getByTestId('drop-overlay').waitFor({ state: 'detached', timeout: T });
    await alice.page.locator('[data-testid=upload-chip][data-status=done]', { hasText: 'scores.csv' }).waitFor({ timeout: T });
    await composer(alice).press('Enter');
    await bob.page.getByTestId('att-file').filter({ hasText: 'scores.csv' }).waitFor({ timeout: T });
    const m = (await serverMessages()).at(-1);
    assert.deepEqual(
      m.attachments.map((a) => a.name),
      ['scores.csv'],
    );
  });

  test('a file over the server limit is refused on its chip with the server message', async () => {
    const big = Buffer.alloc(1024 * 1024 + 4096, 7);
    // What the server says about it (the chip must say the same).
    const r = await fetch(`${server.url}/api/v1/attachments`, { method: 'POST', headers: { Authorization: `Bearer ${apiA.token}`, 'X-Filename': 'big.bin' }, body: big });
    const said = (await r.json()).error;
    assert.equal(r.status, 413);
    assert.equal(said.code, 'attachment_too_large');
    const before = (await serverMessages()).length;

    await alice.page.getByTestId('file-input').setInputFiles({ name: 'big.bin', mimeType: 'application/octet-stream', buffer: big });
    const chip = alice.page.locator('[data-testid=upload-chip][data-status=error]', { hasText: 'big.bin' });
    await chip.waitFor({ timeout: T });
    const text = await chip.getByTestId('upload-error').textContent();
    assert.equal(text.toLowerCase(), said.message.toLowerCase());
    assert.match(text, /1 MiB/);
    // Nothing to send; removing the chip leaves the composer empty.
    assert.equal(await alice.page.getByRole('button', { name: 'Send', exact: true }).isEnabled(), false);
    await alice.page.getByRole('button', { name: 'Remove big.bin' }).click();
    await chip.waitFor({ state: 'detached', timeout: T });
    assert.equal((await serverMessages()).length, before);
  });

  test('more than 10 files: the rest are left out, with a message', async () => {
    const files = Array.from({ length: 12 }, (_, i) => ({ name: `n${i}.txt`, mimeType: 'text/plain', buffer: Buffer.from(`note ${i}\n`) }));
    await alice.page.getByTestId('file-input').setInputFiles(files);
    await alice.page.getByText('A message carries up to 10 files: 2 files were left out.').waitFor({ timeout: T });
    assert.equal(await alice.page.getByTestId('upload-chip').count(), 10);
    await alice.page.locator('[data-testid=upload-chip]:not([data-status=done])').first().waitFor({ state: 'detached', timeout: T });
    await composer(alice).press('Enter');
    await bob.page.getByTestId('att-file').filter({ hasText: 'n9.txt' }).waitFor({ timeout: T });
    assert.equal((await serverMessages()).at(-1).attachments.length, 10);
  });

  test('cancelling an upload sends nothing', async () => {
    const before = (await serverMessages()).length;
    // A slow line, so the upload is still under way when cancelled.
    const cdp = await alice.context.newCDPSession(alice.page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 64 * 1024 });
    try {
      await alice.page.getByTestId('file-input').setInputFiles({ name: 'slow.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(900 * 1024, 3) });
      const chip = alice.page.locator('[data-testid=upload-chip][data-status=uploading]', { hasText: 'slow.bin' });
      await chip.waitFor({ timeout: T });
      await alice.page.waitForFunction(() => (document.querySelector('[data-testid=upload-chip] progress')?.value ?? 0) > 0, null, { timeout: T });
      // Not sendable while it uploads.
      assert.equal(await alice.page.getByRole('button', { name: 'Send', exact: true }).isEnabled(), false);
      await alice.page.getByRole('button', { name: 'Cancel upload of slow.bin' }).click();
      await chip.waitFor({ state: 'detached', timeout: T });
    } finally {
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
      await cdp.detach();
    }
    await sleep(500);
    assert.equal(await alice.page.getByTestId('upload-chip').count(), 0);
    // A text sent next carries nothing.
    await composer(alice).fill('No file after all');
    await composer(alice).press('Enter');
    await bob.page.locator('[data-testid=message] .msg-body', { hasText: 'No file after all' }).waitFor({ timeout: T });
    const msgs = await serverMessages();
    assert.equal(msgs.length, before + 1);
    assert.equal(msgs.at(-1).attachments, undefined);
  });

  test('removing a finished upload before sending deletes it on the server (its quota is free again)', async () => {
    const answered = alice.page.waitForResponse((r) => r.url().endsWith('/api/v1/attachments') && r.request().method() === 'POST', { timeout: T });
    await alice.page.getByTestId('file-input').setInputFiles({ name: 'second-thoughts.txt', mimeType: 'text/plain', buffer: Buffer.from('not this one') });
    const res = await answered;
    assert.equal(res.status(), 201);
    const { id } = await res.json();
    await alice.page.locator('[data-testid=upload-chip][data-status=done]', { hasText: 'second-thoughts.txt' }).waitFor({ timeout: T });
    const status = async () => (await fetch(`${server.url}/api/v1/attachments/${id}`, { method: 'HEAD', headers: { Authorization: `Bearer ${apiA.token}` } })).status;
    assert.equal(await status(), 200, 'the upload is on the server');
    const deleted = alice.page.waitForResponse((r) => r.url().endsWith(`/api/v1/attachments/${id}`) && r.request().method() === 'DELETE', { timeout: T });
    await alice.page.getByRole('button', { name: 'Remove second-thoughts.txt' }).click();
    assert.equal((await deleted).status(), 204);
    assert.equal(await status(), 404, 'the removed upload is gone from the server');
  });

  test('axe: no serious or critical violation on a conversation with an image, a document and a voice message, nor in the lightbox', async () => {
    const p = await newPerson(browser, server, { bypassCSP: true });
    try {
      await signInUI(p.page, B);
      await p.page.getByRole('button', { name: /^Alice/ }).click();
      await p.page.getByRole('heading', { name: 'Alice' }).waitFor({ timeout: T });
      for (const id of ['att-image', 'att-file', 'att-voice']) await p.page.getByTestId(id).first().waitFor({ timeout: T });
      await p.page.locator('img.att-full.loaded').first().waitFor({ timeout: T });
      assert.deepEqual(await seriousViolations(p.page), []);
      // The image is above the fold: in view first (scrolling brings in nothing more, then stops).
      await p.page.getByTestId('att-image').first().scrollIntoViewIfNeeded();
      await sleep(300);
      await p.page.getByTestId('att-image').first().click();
      await p.page.getByRole('dialog', { name: 'Image: screenshot.png' }).locator('img.lightbox-img').waitFor({ timeout: T });
      assert.deepEqual(await seriousViolations(p.page), []);
      await p.page.keyboard.press('Escape');
      // The composer with a file uploading and one refused.
      await p.page.getByTestId('file-input').setInputFiles({ name: 'big.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(1024 * 1024 + 10, 1) });
      await p.page.locator('[data-testid=upload-chip][data-status=error]').waitFor({ timeout: T });
      assert.deepEqual(await seriousViolations(p.page, { include: '.composer' }), []);
    } finally {
      await p.context.close();
    }
  });
});
