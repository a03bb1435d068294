// People search in the "New chat" dialog (issue 12, defect 7): display names and usernames,
// anywhere in them, whatever the case, with a leading @ ignored; ranked (username match,
// then a word of the name starting with what was typed, then the rest); one or two
// characters match only the start of a username or name.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, newPerson, registerInUI, RestClient, startServer, uniquePerson } from './harness.mjs';

const T = 15_000;
let server, browser, alice, bob, brownie, zed;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  alice = await newPerson(browser, server);
  await registerInUI(alice.page, uniquePerson('Alice'));
  const person = async (name, username) => {
    const p = { ...uniquePerson(name), name };
    if (username) {
      p.username = `${username}_${p.username.split('_')[1]}`;
      p.email = `${p.username}@example.com`;
    }
    const c = new RestClient(server.url);
    await c.register(p);
    return p;
  };
  bob = await person('Bob Brown', 'bob');
  brownie = await person('Cookie Monster', 'brownie');
  zed = await person('Zed Abrowny', 'zed');
  await alice.page.getByRole('button', { name: 'New chat' }).click();
  await alice.page.locator('#user-search').waitFor();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Types q into the dialog's search and returns the usernames found, in order. */
async function search(q) {
  const page = alice.page;
  // The answer to this very query (the dialog asks for it lower-cased, after a pause).
  const answered = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/users' && new URL(r.url()).searchParams.get('q') === q.trim().toLowerCase(), { timeout: T });
  await page.locator('#user-search').fill(q);
  await answered;
  await page.waitForFunction(() => /found$/.test(document.querySelector('.search [role=status]')?.textContent ?? ''), null, { timeout: T });
  await page.waitForTimeout(100); // the render of that answer
  const labels = await page.locator('.search').getByRole('button', { name: /^Message / }).evaluateAll((bs) => bs.map((b) => b.getAttribute('aria-label') ?? b.textContent));
  return labels.map((l) => /\(@([^)]+)\)/.exec(l)?.[1]).filter(Boolean);
}

test('a surname, the whole display name, and @username find the person', async () => {
  assert.ok((await search('Bob Brown')).includes(bob.username), '"Bob Brown" finds Bob Brown');
  assert.ok((await search('brown')).includes(bob.username), '"brown" finds Bob Brown');
  assert.ok((await search('BROWN')).includes(bob.username), 'case does not matter');
  const at = await search(`@${bob.username}`);
  assert.equal(at[0], bob.username, '@username finds that person first');
});

test('ranked: a username starting with the query, then a word of the name, then the rest', async () => {
  const found = await search('brown');
  assert.deepEqual(
    found.filter((u) => [bob.username, brownie.username, zed.username].includes(u)),
    [brownie.username, bob.username, zed.username],
    `order of ${JSON.stringify(found)}`,
  );
});

test('one or two characters match the start of a username or name only', async () => {
  const found = await search('br');
  assert.ok(found.includes(brownie.username), '"br" finds the username starting with it');
  assert.ok(!found.includes(bob.username), '"br" does not find "Bob Brown" (not at the start)');
  assert.ok(!found.includes(zed.username));
  assert.ok((await search('co')).includes(brownie.username), '"co" finds the name "Cookie Monster" by its start');
});
