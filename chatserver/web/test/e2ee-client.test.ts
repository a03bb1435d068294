// The E2ee client (src/e2ee/client.ts) with real ts-mls on every device, against a small
// in-memory delivery service that follows THE CONTRACT's rules (one KeyPackage per device
// handed out once, commits at the current epoch only, Welcomes routed by KeyPackageRef,
// frames in seq order). The service is a stand-in for the Go server in this unit test;
// the browser tests run the real one.
import { describe, expect, it } from 'vitest';
import { makeKeyPackageRef } from 'ts-mls/keyPackage.js';
import { ApiError } from '../src/api';
import { E2ee, type Host } from '../src/e2ee/client';
import { memoryKV } from '../src/e2ee/keystore';
import * as mls from '../src/e2ee/mls';
import { fromBase64, toBase64, type Payload } from '../src/e2ee/payload';
import type { Conversation, Message } from '../src/types';

interface Dev {
  id: string;
  userId: string;
  name: string;
  signatureKey: string;
  kps: string[];
  lastResort?: string;
  welcomes: Map<string, { conversationId: string; seq: number; epoch: number; welcome: string }>;
  client?: Client;
  live: boolean;
}

type Frame = { kind: 'commit'; seq: number; epoch: number; senderId: string; commit: string } | { kind: 'message'; message: Message };

interface Conv {
  id: string;
  members: string[];
  epoch: number;
  seq: number;
  log: Frame[];
}

class Client {
  e2ee!: E2ee;
  shown = new Map<string, Message>();
  consumed: number[] = [];
  /** Frames held back (a device offline), delivered by sync. */
  offline = false;
  cursor = new Map<string, number>();
  constructor(
    readonly ds: DS,
    readonly userId: string,
  ) {}

  host(): Host {
    return {
      conversation: (id) => this.ds.view(id),
      deliver: (_id, m) => void this.shown.set(m.id, m),
      edited: (_id, _t, target, text, at) => {
        const m = this.shown.get(target);
        if (m) this.shown.set(target, { ...m, body: text, editedAt: at });
      },
      reacted: (_id, target, _e, _u, _a, counts) => {
        const m = this.shown.get(target);
        if (m) this.shown.set(target, { ...m, reactions: counts.map((c) => ({ ...c, me: false })) });
      },
      consumed: (_id, seq) => void this.consumed.push(seq),
      syncFrom: (id, seq) => {
        this.cursor.set(id, seq);
        if (!this.offline) this.ds.replay(this, id, seq);
      },
    };
  }

  async start(name: string) {
    this.e2ee = new E2ee(this.ds.api(this.userId), this.userId, memoryKV(), this.host());
    this.e2ee.random = () => 0;
    await this.e2ee.start(name);
    this.e2ee.stop(); // reconciliation is driven by the test, not by timers
    this.e2ee.stopped = true;
  }

  text(id: string): string | undefined {
    const m = [...this.shown.values()].find((x) => x.clientId === id);
    return m?.undecryptable ? undefined : m?.body;
  }

  async send(convId: string, p: Payload, clientId = `k${Math.random()}`): Promise<Message> {
    await this.e2ee.prepare(clientId, p);
    for (;;) {
      const ciphertext = await this.e2ee.encrypt(convId, p);
      try {
        const m = this.ds.post(this.userId, convId, clientId, ciphertext);
        this.e2ee.incomingMessage(m);
        await this.e2ee.settled(convId);
        return m;
      } catch (e) {
        if (!(e instanceof ApiError) || e.code !== 'stale_epoch') throw e;
        await this.e2ee.waitEpoch(convId, e.epoch!);
      }
    }
  }
}

class DS {
  devices = new Map<string, Dev>();
  convs = new Map<string, Conv>();
  refs = new Map<string, string>();
  n = 0;

  view(id: string): Conversation | undefined {
    const c = this.convs.get(id);
    if (!c) return undefined;
    return { id, kind: 'group', members: c.members.map((u) => ({ id: u, username: u, displayName: u, role: 'member' })), lastSeq: c.seq, readSeq: 0, unread: 0, lastMessage: null, lastActivity: '', createdAt: '', e2ee: true, mlsEpoch: c.epoch };
  }

  devs(userId: string): Dev[] {
    return [...this.devices.values()].filter((d) => d.userId === userId && d.live);
  }

  /** Delivers a frame to every live device of the conversation's members, as the server would. */
  fanout(c: Conv, f: Frame, except?: Client) {
    for (const u of c.members)
      for (const d of this.devs(u)) {
        const cl = d.client;
        if (!cl || cl === except || cl.offline) continue;
        this.deliver(cl, c.id, f);
      }
  }

  deliver(cl: Client, convId: string, f: Frame) {
    if (f.kind === 'commit') cl.e2ee.incomingCommit({ conversationId: convId, seq: f.seq, epoch: f.epoch, senderId: f.senderId, commit: f.commit });
    else cl.e2ee.incomingMessage(f.message);
  }

  replay(cl: Client, convId: string, from: number) {
    const c = this.convs.get(convId)!;
    if (!c.members.includes(cl.userId)) return;
    for (const f of c.log) if ((f.kind === 'commit' ? f.seq : f.message.seq) > from) this.deliver(cl, convId, f);
  }

  create(id: string, members: string[]): Conversation {
    this.convs.set(id, { id, members, epoch: 0, seq: 0, log: [] });
    return this.view(id)!;
  }

  post(userId: string, convId: string, clientId: string, ciphertext: string): Message {
    const c = this.convs.get(convId)!;
    if (!c.members.includes(userId)) throw new ApiError(403, 'forbidden', 'not a member');
    const h = mls.header(fromBase64(ciphertext));
    if (h.wire !== 'private' || h.groupId !== convId) throw new ApiError(400, 'invalid', 'bad ciphertext');
    if (h.epoch !== c.epoch) throw new ApiError(409, 'stale_epoch', 'stale', undefined, undefined, c.epoch);
    const m: Message = { id: `m${++this.n}`, conversationId: convId, seq: ++c.seq, senderId: userId, clientId, body: '', ciphertext, createdAt: new Date().toISOString() };
    c.log.push({ kind: 'message', message: m });
    this.fanout(c, { kind: 'message', message: m }, [...this.devices.values()].find((d) => d.userId === userId && d.client)?.client);
    // The sender's other devices get it too (the fanout skipped only the first device found).
    return m;
  }

  api(userId: string) {
    return {
      request: async <T>(method: string, path: string, body?: any): Promise<T> => this.route(userId, method, path, body) as T,
    };
  }

  async route(userId: string, method: string, path: string, body: any): Promise<unknown> {
    let m: RegExpMatchArray | null;
    if (method === 'POST' && path === '/devices') {
      const d: Dev = { id: `d${++this.n}`, userId, name: body.name, signatureKey: body.signatureKey, kps: [], welcomes: new Map(), live: true };
      this.devices.set(d.id, d);
      return { id: d.id, name: d.name, signatureKey: d.signatureKey, createdAt: '' };
    }
    if ((m = path.match(/^\/users\/([^/]+)\/devices$/))) return { devices: this.devs(m[1]).map((d) => ({ id: d.id, name: d.name, signatureKey: d.signatureKey, createdAt: '' })) };
    if ((m = path.match(/^\/devices\/([^/]+)\/keypackages$/))) {
      const d = this.devices.get(m[1])!;
      if (d.userId !== userId) throw new ApiError(404, 'not_found', 'no');
      if (method === 'GET') return { count: d.kps.length, lastResort: !!d.lastResort };
      for (const k of body.keyPackages) {
        const kp = mls.readKeyPackage(fromBase64(k));
        expect(mls.identityOf(kp)).toBe(`${userId}:${d.id}`);
        expect(toBase64(kp.leafNode.signaturePublicKey)).toBe(d.signatureKey);
        d.kps.push(k);
      }
      if (body.lastResort) d.lastResort = body.lastResort;
      return { count: d.kps.length };
    }
    if ((m = path.match(/^\/devices\/([^/]+)\/welcomes$/))) return { welcomes: [...this.devices.get(m[1])!.welcomes.values()] };
    if ((m = path.match(/^\/devices\/([^/]+)\/welcomes\/([^/]+)$/))) {
      this.devices.get(m[1])!.welcomes.delete(m[2]);
      return null;
    }
    if ((m = path.match(/^\/conversations\/([^/]+)\/mls\/keypackages$/))) {
      const out: Array<{ userId: string; deviceId: string; keyPackage: string }> = [];
      const missing: Array<{ userId: string; deviceId: string }> = [];
      for (const u of body.users as string[])
        for (const d of this.devs(u)) {
          const k = d.kps.shift() ?? d.lastResort;
          if (!k) {
            missing.push({ userId: u, deviceId: d.id });
            continue;
          }
          const cs = await mls.suiteFor(null);
          this.refs.set(mls.hex(await makeKeyPackageRef(mls.readKeyPackage(fromBase64(k)), cs.hash)), d.id);
          out.push({ userId: u, deviceId: d.id, keyPackage: k });
        }
      return { keyPackages: out, missing };
    }
    if ((m = path.match(/^\/conversations\/([^/]+)\/mls\/commit$/))) {
      const c = this.convs.get(m[1])!;
      const h = mls.header(fromBase64(body.commit));
      if (h.epoch !== c.epoch) throw new ApiError(409, 'stale_epoch', 'stale', undefined, undefined, c.epoch);
      c.epoch++;
      const seq = ++c.seq;
      for (const u of body.add ?? []) if (!c.members.includes(u)) c.members.push(u);
      c.members = c.members.filter((u) => !(body.remove ?? []).includes(u));
      const f: Frame = { kind: 'commit', seq, epoch: h.epoch, senderId: userId, commit: body.commit };
      c.log.push(f);
      const welcomed: Dev[] = [];
      if (body.welcome) {
        for (const ref of mls.welcomeRefs(fromBase64(body.welcome))) {
          const d = this.devices.get(this.refs.get(ref) ?? '');
          if (!d) continue;
          d.welcomes.set(c.id, { conversationId: c.id, seq, epoch: c.epoch, welcome: body.welcome });
          welcomed.push(d);
        }
      }
      // Frames go out after the answer, as from the socket.
      queueMicrotask(() => {
        this.fanout(c, f);
        for (const d of welcomed) void d.client?.e2ee.fetchWelcomes();
      });
      return { seq, epoch: c.epoch };
    }
    throw new Error(`fake DS: no route ${method} ${path}`);
  }

  async removeDevice(id: string) {
    this.devices.get(id)!.live = false;
  }
}

const text = (id: string, t: string, extra: Partial<Extract<Payload, { type: 'text' }>> = {}): Payload => ({ v: 1, type: 'text', id, text: t, ...extra });

/** A client started as a device of the service, which delivers frames to it. */
async function online(ds: DS, c: Client, name = 'dev'): Promise<Client> {
  await c.start(name);
  ds.devices.get(c.e2ee.deviceId!)!.client = c;
  return c;
}

/** Alice and Bob, one device each, in the encrypted group `cv` Alice created. */
async function aliceAndBob(ds: DS): Promise<[Client, Client]> {
  const [a, b] = [new Client(ds, 'ua'), new Client(ds, 'ub')];
  for (const x of [a, b]) await online(ds, x);
  await a.e2ee.created(ds.create('cv', ['ua', 'ub']));
  await settle([a, b], 'cv');
  return [a, b];
}

/** Alice's second device joins `cv` (epoch 1 -> 2) while Bob is away. */
async function secondDeviceWhileAway(ds: DS, a: Client, b: Client): Promise<Client> {
  b.offline = true;
  const a2 = await online(ds, new Client(ds, 'ua'), 'A2');
  a.e2ee.devicesChanged('ua');
  await a.e2ee.reconcile('cv', { now: true });
  await settle([a, a2], 'cv');
  return a2;
}

async function settle(clients: Client[], id: string) {
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setTimeout(r, 5));
    await Promise.all(clients.map((c) => c.e2ee.settled(id)));
  }
}

describe('E2ee client against an in-memory delivery service', () => {
  it('group lifecycle: create, talk, edit, react, reply, add a member, a new device, remove a member', async () => {
    const ds = new DS();
    const alice = await online(ds, new Client(ds, 'ua'), 'A1');
    const bob = await online(ds, new Client(ds, 'ub'), 'B1');
    const carol = await online(ds, new Client(ds, 'uc'), 'C1');
    // Topped up: 20 one-time packages and a last-resort one per device.
    expect(ds.devices.get(bob.e2ee.deviceId!)!.kps).toHaveLength(20);
    expect(ds.devices.get(bob.e2ee.deviceId!)!.lastResort).toBeTruthy();

    const conv = ds.create('cv1', ['ua', 'ub']);
    await alice.e2ee.created(conv);
    await settle([alice, bob], 'cv1');
    expect(bob.e2ee.info('cv1')).toMatchObject({ joined: true, joinSeq: 1, epoch: 1, removed: false });
    expect(alice.e2ee.info('cv1')!.epoch).toBe(1);
    expect(ds.devices.get(bob.e2ee.deviceId!)!.kps).toHaveLength(19); // one handed out, once

    const m1 = await alice.send('cv1', text('k1', 'hello Bob'), 'k1');
    await settle([alice, bob], 'cv1');
    expect(bob.text('k1')).toBe('hello Bob');
    expect(alice.text('k1')).toBe('hello Bob'); // mine, from what I kept
    // Bob replies, reacts and Alice edits.
    await bob.send('cv1', text('k2', 'hi!', { replyTo: m1.id }), 'k2');
    await bob.send('cv1', { v: 1, type: 'reaction', target: m1.id, emoji: '👍', add: true });
    await alice.send('cv1', { v: 1, type: 'edit', target: m1.id, text: 'hello, Bob' });
    // An edit of someone else's message is ignored.
    await bob.send('cv1', { v: 1, type: 'edit', target: m1.id, text: 'forged' });
    await settle([alice, bob], 'cv1');
    expect(alice.shown.get(m1.id)!.reactions).toEqual([{ emoji: '👍', count: 1, me: false }]);
    expect(bob.shown.get(m1.id)!.body).toBe('hello, Bob');
    expect(alice.shown.get(m1.id)!.body).toBe('hello, Bob');
    const reply = [...alice.shown.values()].find((m) => m.clientId === 'k2')!;
    // The quote as it was when the reply arrived (the store's applyEvent updates quotes on edits).
    expect(reply.replyTo).toMatchObject({ id: m1.id, senderId: 'ua', excerpt: 'hello Bob' });

    // Alice adds Carol: one commit, the server's membership follows.
    await alice.e2ee.addUser('cv1', 'uc');
    await settle([alice, bob, carol], 'cv1');
    expect(ds.convs.get('cv1')!.members).toContain('uc');
    expect(carol.e2ee.info('cv1')!.epoch).toBe(2);
    // History from before Carol joined: "before this device joined".
    expect(carol.e2ee.fromHistory(m1)).toMatchObject({ undecryptable: true, beforeJoin: true, body: '' });
    await carol.send('cv1', text('k3', 'hi all, @ua and @nobody'), 'k3');
    await settle([alice, bob, carol], 'cv1');
    expect(alice.text('k3')).toBe('hi all, @ua and @nobody');
    // Mentions are found in the plaintext (the server cannot): members only.
    expect([...alice.shown.values()].find((x) => x.clientId === 'k3')!.mentions).toEqual(['ua']);
    expect(bob.text('k3')).toBe('hi all, @ua and @nobody');

    // Alice's second device: Bob sees it and commits the add.
    const alice2 = await online(ds, new Client(ds, 'ua'), 'A2');
    bob.e2ee.devicesChanged('ua');
    await bob.e2ee.reconcile('cv1', { now: true });
    await settle([alice, alice2, bob, carol], 'cv1');
    expect(alice2.e2ee.info('cv1')).toMatchObject({ joined: true, epoch: 3 });
    await bob.send('cv1', text('k4', 'for both of your devices'), 'k4');
    await settle([alice, alice2, bob, carol], 'cv1');
    expect(alice2.text('k4')).toBe('for both of your devices');
    expect(alice.text('k4')).toBe('for both of your devices');
    expect(alice2.e2ee.fromHistory(m1)).toMatchObject({ beforeJoin: true });

    // Alice removes Carol: Carol's device cannot read what follows.
    await alice.e2ee.removeUser('cv1', 'uc');
    await settle([alice, alice2, bob, carol], 'cv1');
    expect(ds.convs.get('cv1')!.members).not.toContain('uc');
    await carol.e2ee.markRemoved('cv1'); // the server's `removed` frame
    const after = await bob.send('cv1', text('k5', 'Carol cannot read this'), 'k5');
    await settle([alice, alice2, bob], 'cv1');
    expect(alice.text('k5')).toBe('Carol cannot read this');
    expect(await carol.e2ee.canDecrypt('cv1', after.ciphertext!)).toBe(false);
    expect(carol.shown.has(after.id)).toBe(false);
    // Even with her keys, not marked removed, she is an epoch behind for good.
    await expect(mls.process(await mls.context(await mls.newSigner(), 'x'), (carol.e2ee as any).groups.get('cv1').state, fromBase64(after.ciphertext!))).rejects.toThrow();
  });

  it('KeyPackages: topped up below 10, the last-resort one renewed after 60 days, private halves forgotten after 90', async () => {
    const ds = new DS();
    const dave = new Client(ds, 'ud');
    await dave.start('D1');
    const dev = ds.devices.get(dave.e2ee.deviceId!)!;
    const first = dev.lastResort;
    expect(dev.kps).toHaveLength(20);
    await dave.e2ee.topUp();
    expect(dev.kps).toHaveLength(20); // enough: nothing uploaded
    expect(dev.lastResort).toBe(first);
    dev.kps.splice(0, 11); // claimed by others: 9 left
    await dave.e2ee.topUp();
    expect(dev.kps).toHaveLength(20);
    expect((await dave.e2ee.vault.entriesJSON('kp:')).length).toBe(32); // 31 one-time made, 1 last resort
    const day = 86_400_000;
    await dave.e2ee.topUp(Date.now() + 61 * day);
    expect(dev.lastResort).not.toBe(first);
    expect((await dave.e2ee.vault.entriesJSON('kp:')).length).toBe(33);
    await dave.e2ee.topUp(Date.now() + 91 * day);
    expect((await dave.e2ee.vault.entriesJSON('kp:')).length).toBe(1); // the last-resort one made at 61 days
  });

  it('a device that missed epochs catches up in seq order; two devices racing to commit do not fork the group', async () => {
    const ds = new DS();
    const [a, b, c] = [new Client(ds, 'ua'), new Client(ds, 'ub'), new Client(ds, 'uc')];
    for (const x of [a, b, c]) await online(ds, x);
    await a.e2ee.created(ds.create('cv', ['ua', 'ub', 'uc']));
    await settle([a, b, c], 'cv');
    expect(c.e2ee.info('cv')!.epoch).toBe(1);

    // Carol goes offline; two new devices arrive (two commits) with messages between.
    c.offline = true;
    const a2 = await online(ds, new Client(ds, 'ua'), 'A2');
    b.e2ee.devicesChanged('ua');
    await b.e2ee.reconcile('cv', { now: true });
    await settle([a, a2, b], 'cv');
    await a.send('cv', text('x1', 'one'), 'x1');
    const b2 = await online(ds, new Client(ds, 'ub'), 'B2');
    // Alice and Bob both see Bob's new device and commit at the same epoch: one wins.
    a.e2ee.devicesChanged('ub');
    b.e2ee.devicesChanged('ub');
    await Promise.all([a.e2ee.reconcile('cv', { now: true }), b.e2ee.reconcile('cv', { now: true })]);
    await settle([a, a2, b, b2], 'cv');
    const epochs = [a, a2, b, b2].map((x) => x.e2ee.info('cv')!.epoch);
    expect(epochs, JSON.stringify({ epochs, server: ds.convs.get('cv')!.epoch, log: ds.convs.get('cv')!.log.map((f) => f.kind) })).toEqual([3, 3, 3, 3]);
    expect(epochs[0]).toBe(3);
    expect(ds.convs.get('cv')!.epoch).toBe(3);
    await b2.send('cv', text('x2', 'two'), 'x2');
    await settle([a, a2, b, b2], 'cv');
    expect(a2.text('x2')).toBe('two');

    // Carol back: the sync brings commits and messages interleaved, processed in order.
    c.offline = false;
    ds.replay(c, 'cv', c.e2ee.cursor('cv')!);
    await settle([c], 'cv');
    expect(c.text('x1')).toBe('one');
    expect(c.text('x2')).toBe('two');
    expect(c.e2ee.info('cv')!.epoch).toBe(3);
    expect(c.e2ee.cursor('cv')).toBe(ds.convs.get('cv')!.seq);
  });

  it('a member who left on the server is removed from the group by the next device that looks; a deleted message leaves no plaintext', async () => {
    const ds = new DS();
    const [a, b] = await aliceAndBob(ds);
    const m = await b.send('cv', text('t', 'to be deleted'), 't');
    await settle([a, b], 'cv');
    expect(a.text('t')).toBe('to be deleted');
    await a.e2ee.forget(m.id);
    expect(a.e2ee.fromHistory({ ...m, deleted: { at: '', reason: 'deleted' } })).toMatchObject({ body: '' });
    expect(JSON.stringify(await a.e2ee.vault.getJSON(`plain:${m.id}`))).not.toContain('to be deleted');

    // Bob leaves through the members endpoint (no commit): Alice's device commits his removal.
    ds.convs.get('cv')!.members = ['ua'];
    await a.e2ee.reconcile('cv', { now: true });
    await settle([a], 'cv');
    expect(a.e2ee.memberDevices('cv')).toEqual([`ua:${a.e2ee.deviceId}`]);
    const after = await a.send('cv', text('x', 'after Bob left'), 'x');
    expect(await b.e2ee.canDecrypt('cv', after.ciphertext!)).toBe(false);
  });

  it('a commit the device cannot apply leaves it out of step: it says so and stops waiting', async () => {
    const ds = new DS();
    const [a, b] = await aliceAndBob(ds);
    // Alice's second device joins (epoch 1 -> 2) while Bob is away; what Bob gets at that
    // seq instead is a commit for this group id and epoch from another group (a fork).
    await secondDeviceWhileAway(ds, a, b);
    expect(a.e2ee.info('cv')!.epoch).toBe(2);
    b.offline = false;
    const rogue = await mls.context(await mls.newSigner(), 'ux:dx');
    let rs = await mls.createGroup(rogue, 'cv', await mls.newKeyPackage(rogue));
    rs = (await mls.commit(rogue, rs, [], [])).state;
    const bad = await mls.commit(rogue, rs, [], []);
    expect(mls.header(bad.commit).epoch).toBe(1);
    b.e2ee.incomingCommit({ conversationId: 'cv', seq: 2, epoch: 2, senderId: 'ux', commit: toBase64(bad.commit) });
    await settle([b], 'cv');
    expect(b.e2ee.info('cv')).toMatchObject({ removed: true, stuck: true });
    // What follows is consumed and shown unreadable, not waited for.
    const m = { id: 'm-late', conversationId: 'cv', seq: 3, senderId: 'ua', clientId: 'late', body: '', ciphertext: await a.e2ee.encrypt('cv', text('late', 'x')), createdAt: '' };
    b.e2ee.incomingMessage(m);
    await settle([b], 'cv');
    expect(b.shown.get('m-late')).toMatchObject({ undecryptable: true, body: '' });
    expect(b.e2ee.cursor('cv')).toBe(3);
  });

  it('a message at a later epoch than the device waits for the commit before it', async () => {
    const ds = new DS();
    const [a, b] = await aliceAndBob(ds);
    await secondDeviceWhileAway(ds, a, b);
    const m = await a.send('cv', text('late', 'after the commit'), 'late');
    // The message arrives alone first (a live frame after a gap): it waits, a sync is asked.
    b.e2ee.incomingMessage(m);
    await settle([b], 'cv');
    expect(b.text('late')).toBeUndefined();
    expect(b.cursor.get('cv')).toBe(1);
    b.offline = false;
    ds.replay(b, 'cv', 1);
    await settle([b], 'cv');
    expect(b.text('late')).toBe('after the commit');
  });
});
