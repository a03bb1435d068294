// Profile photos (issue 12): set in the profile dialog (preview first, clear errors for a
// file that is not an image or is too large), seen without a reload by a contact in another
// browser context (sidebar and conversation header: the `user` frame carries the new
// version and the client fetches the photo with its token), removed again; no CSP
// violation (object URLs); axe finds nothing serious on the dialog.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { deflateSync } from 'node:zlib';
import { newAxePerson, seriousViolations } from './axe.mjs';
import { cspViolations, launchBrowser, newPerson, registerInUI, RestClient, signInUI, startServer, uniquePerson } from './harness.mjs';

const T = 15_000;
let server, browser, alice, bobPage, A, B, bob, conv;

/** A w×h RGB PNG: left half orange, right half teal (no image library in the tests). */
function png(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) {
    const o = y * (1 + 3 * w);
    for (let x = 0; x < w; x++) rows.set(x < w / 2 ? [240, 140, 20] : [20, 160, 160], o + 1 + 3 * x);
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  alice = await newPerson(browser, server);
  A = uniquePerson('Alice');
  await registerInUI(alice.page, A);
  bob = new RestClient(server.url);
  B = { ...uniquePerson('Bob'), name: 'Bob Chen' };
  await bob.register(B);
  const { users } = await bob.call('GET', `/users?q=${A.username}`);
  conv = await bob.direct(users[0].id);
  await bob.send(conv.id, 'hi Alice');
  bobPage = await newPerson(browser, server);
  await signInUI(bobPage.page, B);
  await bobPage.page.getByRole('button', { name: /^Alice/ }).click();
  await alice.page.getByRole('button', { name: /^Bob Chen/ }).waitFor({ timeout: T });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function openProfile(page) {
  await page.getByRole('button', { name: 'Account menu' }).click();
  await page.getByRole('button', { name: 'Edit profile', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Edit profile' });
  await dialog.waitFor();
  return dialog;
}

/** The photo an <img> in this avatar shows: its object URL and decoded size. */
async function shownPhoto(locator) {
  const img = locator.locator('img.avatar-photo');
  await img.waitFor({ timeout: T });
  await img.evaluate((el) => (el.complete && el.naturalWidth > 0 ? null : new Promise((r) => el.addEventListener('load', r, { once: true }))));
  return img.evaluate((el) => ({ src: el.src, w: el.naturalWidth, h: el.naturalHeight }));
}

test('a photo set in the profile dialog shows here and, without a reload, at a contact; removing it brings the initials back', async () => {
  const dialog = await openProfile(alice.page);
  const file = dialog.locator('#profile-photo-file');
  const error = dialog.getByTestId('photo-error');

  // Checked before anything is sent: not an image, too large.
  await file.setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a picture') });
  assert.match(await error.innerText(), /Choose a JPEG, PNG, GIF or WebP image/);
  await file.setInputFiles({ name: 'huge.jpg', mimeType: 'image/jpeg', buffer: Buffer.alloc(11 * 1024 * 1024, 1) });
  assert.match(await error.innerText(), /11\.0 MB: choose one under 10 MB/);
  // Claims to be a PNG, is not: the server says so, and it shows.
  await file.setInputFiles({ name: 'fake.png', mimeType: 'image/png', buffer: Buffer.from('definitely not a PNG file at all') });
  await dialog.getByTestId('photo-preview').waitFor();
  await dialog.getByRole('button', { name: 'Save photo' }).click();
  await error.getByText(/not an image Parley can read/).waitFor({ timeout: T });
  await dialog.getByRole('button', { name: 'Cancel' }).click();

  // A real photo: previewed, then saved.
  await file.setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: png(600, 300) });
  const preview = dialog.getByTestId('photo-preview');
  await preview.waitFor();
  assert.match(await preview.getAttribute('src'), /^blob:/, 'the preview is the chosen file');
  assert.equal(await alice.page.locator('.me img.avatar-photo').count(), 0, 'nothing saved before Save');
  await dialog.getByRole('button', { name: 'Save photo' }).click();
  await dialog.getByRole('button', { name: 'Remove photo' }).waitFor({ timeout: T });
  assert.equal(await error.count(), 0, 'no error left after a good photo');
  const mine = await shownPhoto(alice.page.locator('.me'));
  assert.deepEqual([mine.w, mine.h], [256, 256], 'the server made it a 256×256 square');
  assert.match(mine.src, /^blob:/);
  await dialog.getByRole('button', { name: 'Close' }).click();

  // Bob, in his own browser context, sees it in his sidebar and the conversation header.
  const item = bobPage.page.locator(`.conv[data-conversation="${conv.id}"]`);
  const inList = await shownPhoto(item);
  assert.deepEqual([inList.w, inList.h], [256, 256]);
  await shownPhoto(bobPage.page.locator('.pane .avatar').first());
  assert.equal(await item.locator('.avatar').innerText(), '', 'the photo replaces the initials');

  // Removed: initials again, here and at Bob's.
  const again = await openProfile(alice.page);
  await again.getByRole('button', { name: 'Remove photo' }).click();
  await again.getByRole('button', { name: 'Add photo' }).waitFor({ timeout: T });
  await again.getByRole('button', { name: 'Close' }).click();
  await item.locator('img.avatar-photo').waitFor({ state: 'detached', timeout: T });
  assert.equal(await item.locator('.avatar').innerText(), 'AL');

  for (const p of [alice, bobPage]) {
    assert.deepEqual(await cspViolations(p), []);
    assert.deepEqual(p.pageErrors, []);
  }
});

test('axe: nothing serious or critical on the profile dialog, with and without a photo', async () => {
  const p = await newAxePerson(browser, server);
  await signInUI(p.page, A);
  let dialog = await openProfile(p.page);
  assert.deepEqual(await seriousViolations(p.page, { include: 'dialog' }), []);
  await dialog.locator('#profile-photo-file').setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: png(120, 120) });
  await dialog.getByTestId('photo-preview').waitFor();
  assert.deepEqual(await seriousViolations(p.page, { include: 'dialog' }), [], 'with a preview');
  await dialog.getByRole('button', { name: 'Save photo' }).click();
  await dialog.getByRole('button', { name: 'Remove photo' }).waitFor({ timeout: T });
  assert.deepEqual(await seriousViolations(p.page, { include: 'dialog' }), [], 'with a photo');
  await dialog.getByRole('button', { name: 'Close' }).click();
  await p.context.close();
});
