// Screenshots of notifications (issue 14) for docs/images: the Notifications dialog, the
// mute menu, the mention autocomplete (with a highlighted mention). screenshots.mjs runs
// them with the rest; `node e2e/notification-shots.mjs docs/images` writes only these three.
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launchBrowser, newPerson, RestClient, signInUI, sleep, startServer, uniquePerson } from './harness.mjs';

export async function notificationShots({ browser, server, out }) {
  const who = {
    alice: { ...uniquePerson('Alice'), name: 'Alice Martin' },
    bob: { ...uniquePerson('Bob'), name: 'Bob Chen' },
    carol: { ...uniquePerson('Carol'), name: 'Carol Díaz' },
    dan: { ...uniquePerson('Dan'), name: 'Dan Okafor' },
  };
  const api = {};
  for (const [k, p] of Object.entries(who)) {
    api[k] = new RestClient(server.url);
    await api[k].register(p);
  }
  const { alice, bob, carol, dan } = api;
  const team = await alice.group('Weekend trip', [bob.user.id, carol.user.id, dan.user.id]);
  await alice.send(team.id, 'Who is in for the lake on Saturday?');
  await carol.send(team.id, 'Me! I can bring the kayak.');
  await bob.send(team.id, `@${who.alice.username} can you book the picnic spot? @${who.dan.username} brings the grill.`);
  const withBob = await bob.direct(alice.user.id);
  await bob.send(withBob.id, 'Hey Alice, did the design review go well?');
  await alice.send(withBob.id, 'It did! They liked the new onboarding flow.');
  const withCarol = await carol.direct(alice.user.id);
  await carol.send(withCarol.id, 'Photos coming tonight.');
  // Carol's conversation is muted for 8 hours; the list shows it.
  await alice.call('PUT', `/conversations/${withCarol.id}/notifications`, { mute: '8h' });
  await alice.call('PATCH', '/me/notifications', { pushPreview: true });

  const a = await newPerson(browser, server, { viewport: { width: 1280, height: 800 } });
  await a.context.grantPermissions(['notifications'], { origin: server.url });
  await signInUI(a.page, who.alice);
  const page = a.page;

  // The Notifications dialog, opted in on this device (in-tab only: no push service here).
  await page.getByRole('button', { name: 'Account menu' }).click();
  await page.getByRole('button', { name: 'Notifications', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Notifications' });
  await dialog.getByLabel('Notify me on this device').check();
  await dialog.getByTestId('notify-status').getByText(/Push is not available/).waitFor({ timeout: 15_000 });
  await dialog.getByLabel('For 8 hours').check();
  await dialog.getByTestId('dnd-state').getByText(/^On until/).waitFor();
  await dialog.getByLabel('Off', { exact: true }).check();
  await dialog.getByTestId('dnd-state').getByText('Off', { exact: true }).waitFor();
  await sleep(200);
  await page.screenshot({ path: join(out, 'notifications-dialog.png') });
  await dialog.getByRole('button', { name: 'Close' }).click();

  // The mute menu, on a muted conversation.
  await page.locator(`[data-conversation="${withCarol.id}"]`).click();
  await page.getByTestId('mute-button').getByText(/^Muted until/).waitFor();
  await page.getByTestId('mute-button').click();
  await page.getByRole('menu', { name: 'Mute notifications' }).waitFor();
  await sleep(200);
  await page.screenshot({ path: join(out, 'mute-menu.png') });
  await page.keyboard.press('Escape');

  // Mentions: Bob's message mentions Alice (strong) and Dan; Alice types "@c".
  await page.locator(`[data-conversation="${team.id}"]`).click();
  await page.locator('.mention-me').first().waitFor();
  const box = page.getByLabel('Message', { exact: true });
  await box.click();
  await box.pressSequentially('Sure! @c', { delay: 20 });
  await page.getByRole('listbox', { name: 'Members to mention' }).waitFor();
  await page.mouse.move(700, 200);
  await sleep(200);
  await page.screenshot({ path: join(out, 'mention-autocomplete.png') });
  await a.context.close();
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const out = resolve(process.argv[2] ?? 'docs/images');
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    await notificationShots({ browser, server, out });
    console.log(`notification screenshots written to ${out}`);
  } finally {
    await browser.close();
    await server.stop();
  }
}
