// The MLS flow with real ts-mls clients in memory (no fakes of the library): the group
// is created, members and devices are added and removed by commits, messages are
// read in order, a device that missed epochs catches up, a removed device cannot read.
import { describe, expect, it } from 'vitest';
import * as mls from '../src/e2ee/mls';
import { decodePayload, encodePayload } from '../src/e2ee/payload';
import { diffMembers } from '../src/e2ee/reconcile';

const conv = '01JCONVERSATION';

async function device(identity: string) {
  const signer = await mls.newSigner();
  const ctx = await mls.context(signer, identity);
  return { ctx, signer };
}

const text = (id: string, t: string) => encodePayload({ v: 1, type: 'text', id, text: t });

describe('MLS with ts-mls, ciphersuite 1', () => {
  it('signs with a non-extractable WebCrypto key behind a handle', async () => {
    const { signer, ctx } = await device('ua:d1');
    expect(signer.key.extractable).toBe(false);
    expect(signer.publicKey).toHaveLength(32);
    const kp = await mls.newKeyPackage(ctx);
    // The package verifies with the public key: the library used the WebCrypto key.
    expect(kp.publicPackage.leafNode.signaturePublicKey).toEqual(signer.publicKey);
    expect(kp.privatePackage.signaturePrivateKey).toEqual(signer.handle);
    expect(mls.identityOf(mls.readKeyPackage(kp.message))).toBe('ua:d1');
    expect(kp.ref).toMatch(/^[0-9a-f]{64}$/);
    const lr = await mls.newKeyPackage(ctx, true);
    expect(lr.publicPackage.extensions.map((e) => e.extensionType)).toContain(mls.LAST_RESORT_EXTENSION);
  });

  it('three users: create, add with one commit, talk, add a device, remove a member', async () => {
    const a = await device('ua:da1');
    const b = await device('ub:db1');
    const c = await device('uc:dc1');
    const a2 = await device('ua:da2');

    // Alice creates the group at epoch 0 and adds Bob and Carol in one commit.
    const aKp = await mls.newKeyPackage(a.ctx);
    let sa = await mls.createGroup(a.ctx, conv, aKp);
    expect(mls.epochOf(sa)).toBe(0);
    const bKp = await mls.newKeyPackage(b.ctx);
    const cKp = await mls.newKeyPackage(c.ctx, true);
    const add = await mls.commit(a.ctx, sa, [mls.readKeyPackage(bKp.message), mls.readKeyPackage(cKp.message)], []);
    expect(mls.header(add.commit)).toEqual({ wire: 'private', epoch: 0, groupId: conv });
    sa = add.state;
    expect(mls.welcomeRefs(add.welcome!).sort()).toEqual([bKp.ref, cKp.ref].sort());

    // Each joins from the Welcome alone (the ratchet tree is in it).
    let sb = await mls.join(b.ctx, add.welcome!, bKp.publicPackage, bKp.privatePackage);
    let sc = await mls.join(c.ctx, add.welcome!, cKp.publicPackage, cKp.privatePackage);
    expect(mls.epochOf(sb)).toBe(1);
    expect(mls.leaves(sb).map((l) => l.identity)).toEqual(['ua:da1', 'ub:db1', 'uc:dc1']);

    // Messages both ways.
    const m1 = await mls.encrypt(a.ctx, sa, text('k1', 'hello'));
    sa = m1.state;
    expect(mls.header(m1.message)).toEqual({ wire: 'private', epoch: 1, groupId: conv });
    for (const [ctx, get, set] of [
      [b.ctx, () => sb, (s: typeof sb) => (sb = s)],
      [c.ctx, () => sc, (s: typeof sc) => (sc = s)],
    ] as const) {
      const r = await mls.process(ctx, get(), m1.message);
      expect(r.kind).toBe('application');
      if (r.kind === 'application') expect(decodePayload(r.plaintext)).toMatchObject({ text: 'hello' });
      set(r.state);
    }
    const m2 = await mls.encrypt(b.ctx, sb, text('k2', 'hi Alice'));
    sb = m2.state;
    const r2 = await mls.process(a.ctx, sa, m2.message);
    expect(r2.kind === 'application' && decodePayload(r2.plaintext)).toMatchObject({ text: 'hi Alice' });
    sa = r2.state;
    // Carol reads it too, in seq order, before the commit that follows it.
    const r2c = await mls.process(c.ctx, sc, m2.message);
    sc = r2c.state;

    // Alice's second device appears: Bob sees the difference and commits the add.
    const diff = diffMembers(mls.leaves(sb), ['ua', 'ub', 'uc'], [
      { userId: 'ua', deviceId: 'da1' },
      { userId: 'ua', deviceId: 'da2' },
      { userId: 'ub', deviceId: 'db1' },
      { userId: 'uc', deviceId: 'dc1' },
    ], mls.myLeaf(sb), new Set(['ua', 'ub', 'uc']));
    expect(diff.add).toEqual([{ userId: 'ua', deviceId: 'da2' }]);
    const a2Kp = await mls.newKeyPackage(a2.ctx);
    const addDev = await mls.commit(b.ctx, sb, [mls.readKeyPackage(a2Kp.message)], []);
    sb = addDev.state;
    let sa2 = await mls.join(a2.ctx, addDev.welcome!, a2Kp.publicPackage, a2Kp.privatePackage);
    for (const [ctx, get, set] of [
      [a.ctx, () => sa, (s: typeof sa) => (sa = s)],
      [c.ctx, () => sc, (s: typeof sc) => (sc = s)],
    ] as const) {
      const r = await mls.process(ctx, get(), addDev.commit);
      expect(r.kind).toBe('commit');
      set(r.state);
    }
    expect(mls.epochOf(sa)).toBe(2);
    // The new device cannot read what was sent before it joined.
    await expect(mls.process(a2.ctx, sa2, m1.message)).rejects.toThrow();
    const m3 = await mls.encrypt(c.ctx, sc, text('k3', 'welcome, second device'));
    sc = m3.state;
    const r3 = await mls.process(a2.ctx, sa2, m3.message);
    expect(r3.kind === 'application' && decodePayload(r3.plaintext)).toMatchObject({ text: 'welcome, second device' });
    sa2 = r3.state;

    // Alice removes Carol; Carol's state says so and the next message is unreadable to her.
    const carolLeaf = mls.leaves(sa).find((l) => l.identity === 'uc:dc1')!.index;
    const rm = await mls.commit(a.ctx, sa, [], [carolLeaf]);
    sa = rm.state;
    expect(rm.welcome).toBeUndefined();
    const rc = await mls.process(c.ctx, sc, rm.commit);
    expect(rc.kind === 'commit' && rc.removedMe).toBe(true);
    sc = rc.state;
    expect(mls.active(sc)).toBe(false);
    sb = (await mls.process(b.ctx, sb, rm.commit)).state;
    sa2 = (await mls.process(a2.ctx, sa2, rm.commit)).state;
    const m4 = await mls.encrypt(a.ctx, sa, text('k4', 'after Carol left'));
    sa = m4.state;
    await expect(mls.process(c.ctx, sc, m4.message)).rejects.toThrow();
    const r4 = await mls.process(a2.ctx, sa2, m4.message);
    expect(r4.kind === 'application' && decodePayload(r4.plaintext)).toMatchObject({ text: 'after Carol left' });
  });

  it('a saved and reloaded state goes on; a device that missed epochs catches up in order', async () => {
    const a = await device('ua:da1');
    const b = await device('ub:db1');
    const c = await device('uc:dc1');
    const bKp = await mls.newKeyPackage(b.ctx);
    let sa = await mls.createGroup(a.ctx, conv, await mls.newKeyPackage(a.ctx));
    const add = await mls.commit(a.ctx, sa, [bKp.publicPackage], []);
    sa = add.state;
    const sb0 = await mls.join(b.ctx, add.welcome!, bKp.publicPackage, bKp.privatePackage);
    // Bob goes away (his state saved); meanwhile Carol is added and two messages go out.
    const saved = mls.saveState(sb0);
    const cKp = await mls.newKeyPackage(c.ctx);
    const addC = await mls.commit(a.ctx, sa, [cKp.publicPackage], []);
    sa = addC.state;
    const x1 = await mls.encrypt(a.ctx, sa, text('x1', 'one'));
    sa = x1.state;
    const upd = await mls.commit(a.ctx, sa, [], []);
    sa = upd.state;
    const x2 = await mls.encrypt(a.ctx, sa, text('x2', 'two'));
    // Bob comes back: the state reloaded, everything in seq order.
    let sb = mls.loadState(saved);
    expect(mls.epochOf(sb)).toBe(1);
    const seen: string[] = [];
    for (const item of [addC.commit, x1.message, upd.commit, x2.message]) {
      const r = await mls.process(b.ctx, sb, item);
      if (r.kind === 'application') seen.push((decodePayload(r.plaintext) as { text: string }).text);
      sb = r.state;
    }
    expect(seen).toEqual(['one', 'two']);
    expect(mls.epochOf(sb)).toBe(3);
    // Out of order does not work: an epoch-3 message to a state at epoch 1 is refused.
    await expect(mls.process(b.ctx, mls.loadState(saved), x2.message)).rejects.toThrow();
  });

  it('two commits at the same epoch: the loser processes the winner and commits again', async () => {
    const a = await device('ua:da1');
    const b = await device('ub:db1');
    const bKp = await mls.newKeyPackage(b.ctx);
    let sa = await mls.createGroup(a.ctx, conv, await mls.newKeyPackage(a.ctx));
    const add = await mls.commit(a.ctx, sa, [bKp.publicPackage], []);
    sa = add.state;
    let sb = await mls.join(b.ctx, add.welcome!, bKp.publicPackage, bKp.privatePackage);
    const before = sa;
    const winner = await mls.commit(b.ctx, sb, [], []);
    sb = winner.state;
    const loser = await mls.commit(a.ctx, before, [], []);
    expect(mls.header(loser.commit).epoch).toBe(mls.header(winner.commit).epoch);
    // The server refused the loser (stale_epoch): Alice drops her pending state, processes the winner, retries.
    sa = (await mls.process(a.ctx, before, winner.commit)).state;
    const again = await mls.commit(a.ctx, sa, [], []);
    sa = again.state;
    sb = (await mls.process(b.ctx, sb, again.commit)).state;
    expect(mls.epochOf(sa)).toBe(mls.epochOf(sb));
    const m = await mls.encrypt(a.ctx, sa, text('z', 'in sync'));
    const r = await mls.process(b.ctx, sb, m.message);
    expect(r.kind === 'application' && decodePayload(r.plaintext)).toMatchObject({ text: 'in sync' });
  });
});
