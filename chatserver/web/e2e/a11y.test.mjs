// Issue 12 defect 9: axe-core finds no serious or critical violation on the main screens, in
// light and dark; conversation items say what they show; there is a top-level heading; the
// sign-in focuses its first field; touch targets are 44 px on a phone.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { newAxePerson, seriousViolations } from './axe.mjs';
import { launchBrowser, RestClient, signInUI, startServer, uniquePerson } from './harness.mjs';

const T = 15_000;
let server, browser, A, convDirect, group;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  A = { ...uniquePerson('Alice'), name: 'Alice Martin' };
  const alice = new RestClient(server.url);
  await alice.register(A);
  const bob = new RestClient(server.url);
  await bob.register({ ...uniquePerson('Bob'), name: 'Bob Chen' });
  const carol = new RestClient(server.url);
  await carol.register({ ...uniquePerson('Carol'), name: 'Carol Díaz' });
  convDirect = await bob.direct(alice.user.id);
  await bob.send(convDirect.id, 'Hey Alice, did the review go well?');
  await alice.send(convDirect.id, 'It did! https://example.com/notes');
  await bob.send(convDirect.id, 'Great news.');
  group = await alice.group('Weekend trip', [bob.user.id, carol.user.id]);
  await carol.send(group.id, 'Who is in for the lake?');
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function check(page, what) {
  const v = await seriousViolations(page);
  assert.deepEqual(v, [], `${what}: serious or critical axe violations`);
}

for (const scheme of ['light', 'dark']) {
  test(`no serious or critical violation on the main screens (${scheme})`, async () => {
    const p = await newAxePerson(browser, server, { colorScheme: scheme });
    const page = p.page;
    await page.goto('/');
    await page.getByLabel('Username or email').waitFor();
    await check(page, 'sign-in');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.locator('form').getByRole('button', { name: 'Create account' }).click(); // with its field errors
    await page.getByTestId('displayName-error').waitFor();
    await check(page, 'register, with errors');
    await signInUI(page, A);
    await page.getByRole('button', { name: /^Bob Chen/ }).click();
    await page.locator('.msg-body', { hasText: 'Great news.' }).waitFor({ timeout: T });
    await check(page, 'conversation list and a direct conversation');
    await page.getByRole('button', { name: /^Weekend trip/ }).click();
    await page.locator('.msg-body', { hasText: 'lake' }).waitFor({ timeout: T });
    await page.getByRole('button', { name: 'Members' }).click();
    await page.getByRole('dialog').waitFor();
    await check(page, 'group members dialog');
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    await page.keyboard.press('Control+k');
    await page.getByRole('dialog', { name: 'Go to a conversation' }).waitFor();
    await check(page, 'quick switcher');
    await page.keyboard.press('Escape');
    await page.getByRole('button', { name: 'Account menu' }).click();
    await page.getByRole('button', { name: 'Sign out', exact: true }).waitFor();
    await check(page, 'account menu');
    await page.keyboard.press('Escape');
    await p.context.close();
  });
}

test('conversation items say what they show; one h1; the sign-in focuses its first field', async () => {
  const p = await newAxePerson(browser, server);
  const page = p.page;
  await page.goto('/');
  await page.getByLabel('Username or email').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'login');
  await signInUI(page, A);
  assert.equal(await page.locator('h1').count(), 1);
  assert.equal(await page.getByRole('heading', { level: 1, name: 'Parley' }).count(), 1);
  // The accessible name of a list item carries the preview and the time, as shown.
  const item = page.locator('.conv', { hasText: 'Bob Chen' });
  const time = (await item.locator('.conv-time').textContent()).trim();
  // Its name from content, as a screen reader computes it: text, less what is aria-hidden.
  const name = await page.evaluate(() => {
    const b = [...document.querySelectorAll('.conv')].find((x) => x.textContent.includes('Bob Chen'));
    const text = (n) => (n.nodeType === 3 ? n.textContent : n.nodeType === 1 && n.getAttribute('aria-hidden') !== 'true' ? [...n.childNodes].map(text).join('') : '');
    return text(b).replace(/\s+/g, ' ').trim();
  });
  assert.equal(await item.getAttribute('aria-label'), null, 'no label hiding the content');
  assert.match(name, /^Bob Chen, (online|offline)/);
  assert.ok(name.includes('Great news.'), name);
  assert.ok(name.includes(time), `${name} has ${time}`);
  // And as the browser computes it (Chromium puts spaces around the hidden separators).
  await page.getByRole('button', { name: /^Bob Chen\s*, (online|offline)\s*, .*Great news\./ }).waitFor();
  await p.context.close();
});

test('on a phone every button, conversation item and menu item is at least 44 px high', async () => {
  const p = await newAxePerson(browser, server, { viewport: { width: 360, height: 740 }, hasTouch: true });
  const page = p.page;
  await signInUI(page, A);
  await page.getByRole('button', { name: 'Account menu' }).click();
  await page.getByRole('button', { name: 'Sign out', exact: true }).waitFor();
  const small = await page.evaluate(() =>
    [...document.querySelectorAll('button, .conv, .menu-item')]
      .filter((el) => el.getClientRects().length && getComputedStyle(el).visibility !== 'hidden')
      .map((el) => ({ el: (el.getAttribute('aria-label') ?? el.textContent).trim().slice(0, 40), h: el.getBoundingClientRect().height, w: el.getBoundingClientRect().width }))
      .filter((r) => r.h < 44 || r.w < 44),
  );
  assert.deepEqual(small, []);
  await page.keyboard.press('Escape');
  await page.getByRole('button', { name: /^Bob Chen/ }).click();
  await page.locator('.msg-body', { hasText: 'Great news.' }).waitFor({ timeout: T });
  const smallInConv = await page.evaluate(() =>
    [...document.querySelectorAll('.pane-head button, .composer button')]
      .filter((el) => el.getClientRects().length)
      .map((el) => ({ el: (el.getAttribute('aria-label') ?? el.textContent).trim().slice(0, 40), h: el.getBoundingClientRect().height, w: el.getBoundingClientRect().width }))
      .filter((r) => r.h < 44 || r.w < 44),
  );
  assert.deepEqual(smallInConv, []);
  await p.context.close();
});
