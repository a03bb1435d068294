// Screenshots of the main screens for docs/images (hack/web.sh screenshots).
// Starts a real chat server, fills it through the REST API, and photographs the client
// in Debian's Chromium.
import { mkdirSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { join, resolve } from 'node:path';
import { launchBrowser, newPerson, RestClient, signInUI, sleep, startServer, uniquePerson } from './harness.mjs';
import { notificationShots } from './notification-shots.mjs';
import { e2eeShots } from './e2ee-shots.mjs';

/** A w×h RGB PNG whose pixels come from px(x, y) → [r, g, b] (a profile photo without a camera). */
function png(w, h, px) {
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
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) raw.set(px(x, y), y * (w * 3 + 1) + 1 + x * 3);
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

const out = resolve(process.argv[2] ?? 'docs/images');
mkdirSync(out, { recursive: true });

const server = await startServer();
// Sound without a click: the voice message of the attachments screenshot is recorded from a
// synthetic source in the page.
const browser = await launchBrowser(['--autoplay-policy=no-user-gesture-required']);
try {
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
  await dan.send(team.id, 'Count me in. Leaving around 9?');
  await bob.send(team.id, 'Works for me. Forecast: https://example.com/weather/lake');
  await alice.send(team.id, 'Great, 9 it is. I will book the picnic spot.');

  const withDan = await dan.direct(alice.user.id);
  await dan.send(withDan.id, 'Do you still have my charger?');

  const withCarol = await carol.direct(alice.user.id);
  await alice.send(withCarol.id, 'Thanks for yesterday!');
  await carol.send(withCarol.id, 'Any time. Photos coming tonight.');
  await carol.send(withCarol.id, 'Here they are: https://example.com/album/42');

  const withBob = await bob.direct(alice.user.id);
  await bob.send(withBob.id, 'Hey Alice, did the design review go well?');
  await alice.send(withBob.id, 'It did! They liked the new onboarding flow.');
  await bob.send(withBob.id, 'Nice. Any changes requested?');
  await alice.send(withBob.id, 'Only small ones: bigger tap targets on mobile and clearer error messages.');
  await alice.send(withBob.id, 'A very long word to show wrapping: supercalifragilisticexpialidocious-and-then-some-more-characters-without-any-space');

  // Sign-in screen.
  const guest = await newPerson(browser, server);
  await guest.page.goto('/');
  await guest.page.getByLabel('Username or email').waitFor();
  await guest.page.screenshot({ path: join(out, 'sign-in.png') });

  // Bob is online, reads, and starts typing.
  const bobPage = await newPerson(browser, server);
  await signInUI(bobPage.page, who.bob);

  const a = await newPerson(browser, server, { viewport: { width: 1280, height: 800 } });
  await signInUI(a.page, who.alice);
  await a.page.getByRole('button', { name: /^Bob Chen/ }).click();
  await bobPage.page.getByRole('button', { name: /^Alice Martin/ }).click();
  await a.page.locator('[data-testid=seen]').waitFor();
  await bobPage.page.getByLabel('Message', { exact: true }).pressSequentially('Sounds good', { delay: 20 });
  await a.page.getByTestId('typing').getByText('is typing').waitFor();
  await a.page.screenshot({ path: join(out, 'conversation.png') });

  // Profile photos (issue 12): Carol has one (a two-colour picture); Alice sees it in the
  // list and in the conversation's header, without a reload.
  const photo = png(320, 320, (x, y) => {
    const d = Math.hypot(x - 160, y - 130);
    return d < 70 ? [250, 214, 165] : y > 230 && Math.abs(x - 160) < 120 ? [46, 125, 110] : [120 + (y >> 2), 170, 225];
  });
  const put = await fetch(`${server.url}/api/v1/me/avatar`, { method: 'PUT', headers: { Authorization: `Bearer ${carol.token}`, 'Content-Type': 'image/png' }, body: photo });
  if (put.status !== 200) throw new Error(`profile photo: ${put.status} ${await put.text()}`);
  await a.page.getByRole('button', { name: /^Carol Díaz/ }).click();
  await a.page.getByRole('heading', { name: 'Carol Díaz' }).waitFor();
  await a.page.waitForFunction(() => document.querySelectorAll('img.avatar-photo').length >= 2 && [...document.querySelectorAll('img.avatar-photo')].every((i) => i.complete && i.naturalWidth > 0));
  await sleep(200);
  await a.page.screenshot({ path: join(out, 'profile-photo.png') });
  await a.page.getByRole('button', { name: /^Bob Chen/ }).click();

  await a.page.getByRole('button', { name: /^Weekend trip/ }).click();
  await a.page.locator('.msg-body', { hasText: 'I will book' }).waitFor();
  await sleep(300);
  await a.page.screenshot({ path: join(out, 'group.png') });
  await a.page.getByRole('button', { name: 'Members' }).click();
  await a.page.getByRole('dialog').waitFor();
  await sleep(200);
  await a.page.screenshot({ path: join(out, 'group-members.png') });

  // Message lifecycle (issue 11), in the group: reactions, a reply, an edit, a deletion.
  await a.page.keyboard.press('Escape');
  await a.page.getByRole('dialog').waitFor({ state: 'detached' });
  const groupMsgs = async () => (await alice.call('GET', `/conversations/${team.id}/messages?limit=50`)).messages;
  const byBody = async (text) => (await groupMsgs()).find((m) => m.body === text);
  const who1 = await byBody('Who is in for the lake on Saturday?');
  const kayak = await byBody('Me! I can bring the kayak.');
  const react = (api, m, e) => api.call('PUT', `/conversations/${team.id}/messages/${m.id}/reactions/${encodeURIComponent(e)}`);
  await react(carol, who1, '👍');
  await react(dan, who1, '👍');
  await react(bob, who1, '🎉');
  await react(alice, kayak, '❤️');
  await carol.call('PATCH', `/conversations/${team.id}/messages/${kayak.id}`, { body: 'Me! I can bring the kayak and two paddles.' });
  await dan.call('POST', `/conversations/${team.id}/messages`, { clientId: 'shot-reply-1', body: 'Perfect, I will sit in the front.', replyTo: kayak.id });
  const oops = await bob.send(team.id, 'Sorry, wrong group!');
  await a.page.locator('.msg-body', { hasText: 'Sorry, wrong group!' }).waitFor();
  await bob.call('DELETE', `/conversations/${team.id}/messages/${oops.id}`);
  await a.page.locator('[data-testid=deleted]').waitFor();
  const reply = a.page.locator('[data-testid=message]').filter({ hasText: 'I will sit in the front' });
  await reply.locator('.bubble').hover();
  await sleep(300);
  await a.page.screenshot({ path: join(out, 'message-actions.png') });
  await reply.getByRole('button', { name: 'React', exact: true }).click();
  await a.page.getByRole('dialog', { name: 'Choose a reaction' }).waitFor();
  await sleep(200);
  await a.page.screenshot({ path: join(out, 'emoji-picker.png') });
  await a.page.keyboard.press('Escape');

  // Disappearing messages, in the conversation with Carol.
  await alice.call('PUT', `/conversations/${withCarol.id}/settings`, { expireAfter: 86400 });
  await carol.send(withCarol.id, 'Good idea. These photos can go after a day.');
  await a.page.getByRole('button', { name: /^Carol/ }).click();
  await a.page.getByTestId('expiry-notice').waitFor();
  await a.page.locator('[data-testid=expires]').first().waitFor();
  await sleep(300);
  await a.page.screenshot({ path: join(out, 'disappearing.png') });

  // "New messages": Dan wrote while Alice was elsewhere.
  await dan.send(withDan.id, 'Found it? It is the white one with the long cable.');
  await dan.send(withDan.id, 'No rush, Saturday is fine.');
  // Unread: his first message and these two.
  await a.page.getByRole('button', { name: /^Dan Okafor.*3 unread/ }).waitFor();
  await a.page.getByRole('button', { name: /^Dan Okafor/ }).click();
  await a.page.getByTestId('new-divider').waitFor();
  await sleep(300);
  await a.page.screenshot({ path: join(out, 'new-messages.png') });

  // Mobile, 360 px wide.
  const m = await newPerson(browser, server, { viewport: { width: 360, height: 740 } });
  await signInUI(m.page, who.alice);
  await sleep(300);
  await m.page.screenshot({ path: join(out, 'mobile-list.png') });
  await m.page.getByRole('button', { name: /^Bob Chen/ }).click();
  await m.page.locator('.msg-body', { hasText: 'supercalifragilistic' }).waitFor();
  await sleep(300);
  await m.page.screenshot({ path: join(out, 'mobile-conversation.png') });

  // Markdown (the renderer is src/markdown.ts; the text is sent as people type it).
  const notes = await alice.group('Release notes', [bob.user.id, carol.user.id]);
  await bob.send(notes.id, 'The **release** is _almost_ ready. Run `make test` before merging:');
  await bob.send(notes.id, '```\nmake test\nhack/web.sh screenshots\n```');
  await carol.send(notes.id, '> Ship it on Friday?\n\nYes, if these are done:\n- dark mode\n- shortcuts\n- **accessibility** checks');
  await alice.send(notes.id, '1. merge\n2. tag `v1.4`\n3. announce at https://example.com/blog');
  await a.page.getByRole('button', { name: /^Release notes/ }).click();
  await a.page.locator('[data-testid=message]').last().waitFor();
  await sleep(400);
  await a.page.screenshot({ path: join(out, 'markdown.png') });

  // Right-to-left text (Hebrew, Arabic) mixed with English.
  const world = await alice.group('Around the world', [bob.user.id, carol.user.id, dan.user.id]);
  await dan.send(world.id, 'שלום לכולם! The meeting is at 10:00 tomorrow.');
  await carol.send(world.id, 'مرحبا! سأكون هناك في الموعد.');
  await bob.send(world.id, 'Great: see you all there. תודה! شكرا!');
  await alice.send(world.id, 'Agenda: 1) תקציב 2) الجدول الزمني 3) Q&A');
  await a.page.getByRole('button', { name: /^Around the world/ }).click();
  await a.page.locator('.msg-body', { hasText: 'Agenda' }).waitFor();
  await sleep(400);
  await a.page.screenshot({ path: join(out, 'rtl.png') });

  // Dark mode (the Account menu's Appearance choice), a conversation and the quick switcher.
  await a.page.getByRole('button', { name: 'Account menu' }).click();
  await a.page.getByRole('button', { name: 'Dark', exact: true }).click();
  await a.page.keyboard.press('Escape');
  await a.page.getByRole('button', { name: /^Bob Chen/ }).click();
  await a.page.locator('.msg-body', { hasText: 'supercalifragilistic' }).waitFor();
  await sleep(400);
  await a.page.screenshot({ path: join(out, 'dark-mode.png') });
  await a.page.keyboard.press('Control+k');
  await a.page.getByRole('dialog', { name: 'Go to a conversation' }).waitFor();
  await a.page.keyboard.type('tri');
  await sleep(300);
  await a.page.screenshot({ path: join(out, 'quick-switcher.png') });
  await a.page.keyboard.press('Escape');
  await a.page.locator('.conv-nav').click({ position: { x: 5, y: 400 } });
  await a.page.keyboard.press('?');
  await a.page.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor();
  await sleep(300);
  await a.page.screenshot({ path: join(out, 'shortcuts.png') });
  await a.page.keyboard.press('Escape');

  // Mobile in dark mode (the system's setting).
  const md2 = await newPerson(browser, server, { viewport: { width: 360, height: 740 }, colorScheme: 'dark', hasTouch: true });
  await signInUI(md2.page, who.alice);
  await sleep(300);
  await md2.page.screenshot({ path: join(out, 'mobile-dark-list.png') });
  await md2.page.getByRole('button', { name: /^Release notes/ }).click();
  await md2.page.locator('[data-testid=message]').last().waitFor();
  await sleep(400);
  await md2.page.screenshot({ path: join(out, 'mobile-dark.png') });

  // Attachments (issue 13): an image, a document and a voice message, light and dark; the
  // lightbox; the composer with an upload under way.
  {
    const review = await alice.group('Design review', [bob.user.id, carol.user.id]);
    const maker = await newPerson(browser, server);
    await maker.page.goto('/');
    // A mock-up drawn in a canvas, and a voice note recorded from a synthetic source.
    const png = Buffer.from(
      await maker.page.evaluate(() => {
        const c = document.createElement('canvas');
        c.width = 1280;
        c.height = 800;
        const g = c.getContext('2d');
        const grad = g.createLinearGradient(0, 0, 1280, 800);
        grad.addColorStop(0, '#2f6fde');
        grad.addColorStop(1, '#7b4dd8');
        g.fillStyle = grad;
        g.fillRect(0, 0, 1280, 800);
        g.fillStyle = '#ffffff';
        g.fillRect(390, 90, 500, 620);
        g.fillStyle = '#e8eefc';
        g.fillRect(430, 140, 420, 220);
        g.fillStyle = '#1d4ed8';
        g.fillRect(430, 600, 420, 64);
        g.fillStyle = '#cbd5e1';
        for (let i = 0; i < 4; i++) g.fillRect(430, 400 + i * 44, 420 - i * 60, 22);
        g.fillStyle = '#ffffff';
        g.font = 'bold 30px sans-serif';
        g.fillText('Get started', 555, 642);
        return c.toDataURL('image/png').split(',')[1];
      }),
      'base64',
    );
    const voice = Buffer.from(
      await maker.page.evaluate(async () => {
        const ctx = new AudioContext();
        await ctx.resume();
        const osc = ctx.createOscillator();
        osc.frequency.value = 180;
        const gain = ctx.createGain();
        gain.gain.value = 0;
        // Syllables: a loudness that rises and falls, with pauses.
        for (let i = 0; i < 40; i++) gain.gain.setValueAtTime(i % 9 === 8 ? 0.01 : 0.15 + 0.85 * Math.abs(Math.sin(i * 1.7)) * (0.4 + 0.6 * ((i * 37) % 10) / 10), ctx.currentTime + i * 0.1);
        const dest = ctx.createMediaStreamDestination();
        osc.connect(gain).connect(dest);
        const rec = new MediaRecorder(dest.stream, { mimeType: 'audio/webm;codecs=opus' });
        const chunks = [];
        rec.ondataavailable = (e) => chunks.push(e.data);
        const stopped = new Promise((r) => (rec.onstop = r));
        osc.start();
        rec.start();
        await new Promise((r) => setTimeout(r, 4200));
        rec.stop();
        await stopped;
        const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
        let bin = '';
        for (const b of bytes) bin += String.fromCharCode(b);
        return btoa(bin);
      }),
      'base64',
    );
    await maker.context.close();
    const pdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n' + ' '.repeat(245_000));
    const upload = async (api, name, bytes) => {
      const r = await fetch(`${server.url}/api/v1/attachments`, { method: 'POST', headers: { Authorization: `Bearer ${api.token}`, 'X-Filename': encodeURIComponent(name) }, body: bytes });
      if (r.status !== 201) throw new Error(`upload ${name}: ${r.status} ${await r.text()}`);
      return (await r.json()).id;
    };
    let n = 0;
    const sendWith = (api, body, ids) => api.call('POST', `/conversations/${review.id}/messages`, { clientId: `shot-att-${++n}`, body, attachments: ids });
    await bob.send(review.id, 'Here is the new onboarding screen.');
    await sendWith(bob, 'What do you think of the **button**?', [await upload(bob, 'onboarding-mockup.png', png)]);
    await sendWith(carol, 'And the usability report from Tuesday:', [await upload(carol, 'Usability report.pdf', pdf)]);
    await sendWith(alice, '', [await upload(alice, 'voice.webm', voice)]);

    for (const [scheme, file] of [
      ['light', 'attachments.png'],
      ['dark', 'attachments-dark.png'],
    ]) {
      const v = await newPerson(browser, server, { viewport: { width: 1280, height: 800 }, colorScheme: scheme });
      await signInUI(v.page, who.alice);
      await v.page.getByRole('button', { name: /^Design review/ }).click();
      await v.page.locator('img.att-full.loaded').waitFor();
      await v.page.locator('[data-testid=waveform][data-source=decoded]').waitFor();
      await sleep(400);
      await v.page.screenshot({ path: join(out, file) });
      if (scheme === 'light') {
        await v.page.getByTestId('att-image').click();
        await v.page.locator('img.lightbox-img').waitFor();
        await v.page.waitForFunction(() => document.querySelector('img.lightbox-img')?.complete);
        await sleep(300);
        await v.page.screenshot({ path: join(out, 'lightbox.png') });
        await v.page.keyboard.press('Escape');
        await v.page.mouse.move(150, 700);
        // An upload under way: a slow line, so the bar stops part way.
        const cdp = await v.context.newCDPSession(v.page);
        await cdp.send('Network.enable');
        await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 96 * 1024 });
        await v.page.getByTestId('file-input').setInputFiles([
          { name: 'Quarterly figures.xlsx', mimeType: 'application/vnd.ms-excel', buffer: Buffer.alloc(2_400_000, 1) },
        ]);
        await v.page.getByLabel('Message', { exact: true }).fill('The figures, as promised');
        await v.page.waitForFunction(() => (document.querySelector('[data-testid=upload-chip] progress')?.value ?? 0) >= 30, null, { timeout: 60_000 });
        await v.page.screenshot({ path: join(out, 'upload-progress.png') });
        await v.page.getByRole('button', { name: /^Cancel upload of/ }).click();
        await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
      }
      await v.context.close();
    }
  }

  // Notifications (issue 14): the dialog, the mute menu, the mention autocomplete.
  await notificationShots({ browser, server, out });
  await e2eeShots({ browser, server, out });

  // Registration errors on their fields.
  const reg = await newPerson(browser, server);
  await reg.page.goto('/');
  await reg.page.getByRole('button', { name: 'Create account' }).click();
  await reg.page.getByLabel('Your name').fill('Alice Again');
  await reg.page.getByLabel('Username', { exact: true }).fill(who.alice.username);
  await reg.page.getByLabel('Email', { exact: true }).fill('not-an-email');
  await reg.page.getByLabel('Password', { exact: true }).fill('a perfectly fine passphrase');
  await reg.page.locator('form').getByRole('button', { name: 'Create account' }).click();
  await reg.page.getByLabel('Email', { exact: true }).fill('alice.again@example.com');
  await reg.page.locator('form').getByRole('button', { name: 'Create account' }).click();
  await reg.page.getByTestId('username-error').waitFor();
  await sleep(200);
  await reg.page.screenshot({ path: join(out, 'form-errors.png') });

  // Reconnecting banner (the page keeps trying; after a few attempts it says so).
  await server.kill('SIGKILL');
  await a.page.keyboard.press('Escape');
  await a.page.getByRole('button', { name: 'Account menu' }).click();
  await a.page.getByRole('button', { name: 'Light', exact: true }).click();
  await a.page.keyboard.press('Escape');
  await a.page.getByTestId('conn-banner').getByText(/keeps trying/).waitFor({ timeout: 30_000 });
  await sleep(300);
  await a.page.screenshot({ path: join(out, 'reconnecting.png') });
  console.log(`screenshots written to ${out}`);
} finally {
  await browser.close();
  await server.stop();
}
