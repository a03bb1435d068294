// Issue 12 defect 10: after a server restart a connected user was once shown "Offline".
// The race, made deterministic here: on reconnecting, the page asks for the conversation
// list (members with their presence) while a peer connects; the peer's "online" frame
// reaches the page before the list answer, which the server computed before the peer
// connected. The older list answer must not undo the newer frame.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, newPerson, RestClient, signInUI, startServer, uniquePerson } from './harness.mjs';

const T = 15_000;
let server, browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a peer who connects while the page reloads its list after a restart is shown online', async () => {
  const A = uniquePerson('Alice');
  const B = uniquePerson('Bob');
  const alice = new RestClient(server.url);
  await alice.register(A);
  const bobRest = new RestClient(server.url);
  await bobRest.register(B);
  await alice.direct(bobRest.user.id);

  const bob = await newPerson(browser, server);
  await signInUI(bob.page, B);
  await bob.page.getByRole('button', { name: /^Alice/ }).click({ timeout: T });
  const header = bob.page.locator('header', { hasText: 'Alice' });
  await header.getByText(/Offline|Last seen/).waitFor({ timeout: T });

  // Presence frames for alice reaching Bob's page.
  const presence = [];
  bob.page.on('websocket', (ws) =>
    ws.on('framereceived', (f) => {
      const m = JSON.parse(String(f.payload));
      if (m.type === 'presence' && m.userId === alice.user.id) presence.push(m.status);
    }),
  );

  // Hold Bob's next list answer (fetched from the server at once) until alice's
  // "online" frame has reached his page.
  let listFetched;
  const fetched = new Promise((r) => (listFetched = r));
  await bob.context.route('**/api/v1/conversations', async (route) => {
    if (route.request().method() !== 'GET') return route.continue();
    const response = await route.fetch();
    listFetched();
    const deadline = Date.now() + T;
    while (!presence.includes('online') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await route.fulfill({ response });
  });

  await server.kill('SIGKILL');
  await server.restart();
  await fetched; // Bob's page is connected again and its list answer says alice is offline
  const alicePage = await newPerson(browser, server);
  try {
    await signInUI(alicePage.page, A); // her socket connects: "online" to Bob
    await header.getByText('Online', { exact: true }).waitFor({ timeout: T });
    assert.ok(presence.includes('online'), `alice's online frame reached the page (frames: ${presence})`);
    // And it stays so once the held answer has been applied.
    await bob.page.waitForTimeout(1500);
    assert.equal(await header.getByText('Online', { exact: true }).count(), 1, 'still online after the list answer');
  } finally {
    await alicePage.context.close();
    await bob.context.unroute('**/api/v1/conversations');
  }
});
