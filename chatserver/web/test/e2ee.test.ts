import { describe, expect, it } from 'vitest';
import { commitJitter, decide, enqueue, type Item } from '../src/e2ee/order';
import { decodePayload, deviceIdentity, encodePayload, fromBase64, parseIdentity, toBase64, type Payload } from '../src/e2ee/payload';
import { diffMembers, emptyDiff } from '../src/e2ee/reconcile';
import { deviceSetHash, groupDigits, keyFingerprint, safetyNumber, userDigits } from '../src/e2ee/safety';

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

describe('payload', () => {
  it('round-trips text with a reply and files, edits and reactions', () => {
    const all: Payload[] = [
      { v: 1, type: 'text', id: 'c1', text: 'héllo 👋', replyTo: 'm9', attachments: [{ id: 'a1', key: 'k', iv: 'i', name: 'r.pdf', type: 'application/pdf', size: 3072 }] },
      { v: 1, type: 'text', id: 'c2', text: '' },
      { v: 1, type: 'edit', target: 'm1', text: 'fixed' },
      { v: 1, type: 'reaction', target: 'm1', emoji: '👍', add: false },
    ];
    for (const p of all) expect(decodePayload(encodePayload(p))).toEqual(p);
  });

  it('refuses what it cannot read rather than half-applying it', () => {
    const e = new TextEncoder();
    const bad = [
      'not json',
      '[]',
      '{"v":2,"type":"text","id":"a","text":"x"}',
      '{"v":1,"type":"text","id":"a"}',
      '{"v":1,"type":"poll","id":"a"}',
      '{"v":1,"type":"reaction","target":"m","emoji":"","add":true}',
      '{"v":1,"type":"reaction","target":"m","emoji":"x","add":"yes"}',
      '{"v":1,"type":"text","id":"a","text":"x","attachments":[{"id":"a"}]}',
      '{"v":1,"type":"text","id":"a","text":"x","attachments":[{"id":"a","key":"k","iv":"i","name":"n","type":"t","size":-1}]}',
    ];
    for (const s of bad) expect(decodePayload(e.encode(s)), s).toBeNull();
    expect(decodePayload(new Uint8Array([0xff, 0xfe]))).toBeNull();
    const eleven = Array.from({ length: 11 }, (_, i) => ({ id: `a${i}`, key: 'k', iv: 'i', name: 'n', type: 't', size: 1 }));
    expect(decodePayload(e.encode(JSON.stringify({ v: 1, type: 'text', id: 'a', text: '', attachments: eleven })))).toBeNull();
  });

  it('identities are <userId>:<deviceId>', () => {
    expect(deviceIdentity('u_1', 'd_2')).toBe('u_1:d_2');
    expect(parseIdentity('u_1:d_2')).toEqual({ userId: 'u_1', deviceId: 'd_2' });
    expect(parseIdentity('u_1:d:2')).toEqual({ userId: 'u_1', deviceId: 'd:2' });
    expect(parseIdentity('nocolon')).toBeNull();
    expect(parseIdentity(':d')).toBeNull();
    expect(parseIdentity('u:')).toBeNull();
  });

  it('base64 round-trips large buffers', () => {
    const b = Uint8Array.from({ length: 100_000 }, (_, i) => (i * 7919) % 256);
    expect(fromBase64(toBase64(b))).toEqual(b);
  });
});

describe('safety number', () => {
  const alice = { userId: 'u_alice', keys: [bytes(32, 1), bytes(32, 2)] };
  const bob = { userId: 'u_bob', keys: [bytes(32, 3)] };

  it('is 60 digits in 12 groups of 5, the same on both sides and whatever the key order', async () => {
    const ab = await safetyNumber(alice, bob, 50);
    expect(ab).toMatch(/^\d{60}$/);
    expect(await safetyNumber(bob, alice, 50)).toBe(ab);
    expect(await safetyNumber({ ...alice, keys: [...alice.keys].reverse() }, bob, 50)).toBe(ab);
    expect(groupDigits(ab)).toHaveLength(12);
    expect(groupDigits(ab).every((g) => /^\d{5}$/.test(g))).toBe(true);
    expect(ab.slice(0, 30)).toBe(await userDigits('u_alice', alice.keys, 50));
  });

  it('changes when either side adds or loses a device', async () => {
    const ab = await safetyNumber(alice, bob, 50);
    expect(await safetyNumber({ ...alice, keys: [bytes(32, 1)] }, bob, 50)).not.toBe(ab);
    expect(await safetyNumber(alice, { ...bob, keys: [bytes(32, 3), bytes(32, 4)] }, 50)).not.toBe(ab);
    expect(await safetyNumber(alice, { ...bob, userId: 'u_bobby' }, 50)).not.toBe(ab);
  });

  it('iterates SHA-512 as documented', async () => {
    // One iteration computed by hand: h0 = SHA-512(00 00 || keys || id), h1 = SHA-512(h0 || keys).
    const keys = bytes(32, 7);
    const id = new TextEncoder().encode('u');
    const h0 = new Uint8Array(await crypto.subtle.digest('SHA-512', new Uint8Array([0, 0, ...keys, ...id])));
    const h1 = new Uint8Array(await crypto.subtle.digest('SHA-512', new Uint8Array([...h0, ...keys])));
    let want = '';
    for (let c = 0; c < 6; c++) {
      let v = 0n;
      for (let j = 0; j < 5; j++) v = v * 256n + BigInt(h1[c * 5 + j]);
      want += String(v % 100000n).padStart(5, '0');
    }
    expect(await userDigits('u', [keys], 1)).toBe(want);
  });

  it('device-set hashes and key fingerprints', async () => {
    expect(await deviceSetHash([bytes(32, 1), bytes(32, 2)])).toBe(await deviceSetHash([bytes(32, 2), bytes(32, 1)]));
    expect(await deviceSetHash([bytes(32, 1)])).not.toBe(await deviceSetHash([bytes(32, 1), bytes(32, 2)]));
    expect(await keyFingerprint(bytes(32, 1))).toMatch(/^([0-9a-f]{4} ){7}[0-9a-f]{4}$/);
  });
});

describe('reconciliation', () => {
  const leaves = [
    { index: 0, identity: 'ua:da1' },
    { index: 1, identity: 'ub:db1' },
    { index: 2, identity: 'uc:dc1' },
  ];
  const all = new Set(['ua', 'ub', 'uc', 'ud']);

  it('nothing to do when the group matches', () => {
    const d = diffMembers(leaves, ['ua', 'ub', 'uc'], [{ userId: 'ua', deviceId: 'da1' }, { userId: 'ub', deviceId: 'db1' }, { userId: 'uc', deviceId: 'dc1' }], 0, all);
    expect(emptyDiff(d)).toBe(true);
  });

  it('adds a new member and a new device, removes a gone device and a gone member', () => {
    const d = diffMembers(
      leaves,
      ['ua', 'ub', 'ud'],
      [
        { userId: 'ua', deviceId: 'da1' },
        { userId: 'ua', deviceId: 'da2' },
        { userId: 'ud', deviceId: 'dd1' },
        { userId: 'uc', deviceId: 'dc1' }, // not a member any more: not added back
      ],
      0,
      all,
    );
    expect(d.add).toEqual([{ userId: 'ua', deviceId: 'da2' }, { userId: 'ud', deviceId: 'dd1' }]);
    expect(d.remove.map((l) => l.index)).toEqual([1, 2]);
    expect(d.goneUsers).toEqual(['uc']);
  });

  it('never removes its own leaf, even when its device is gone', () => {
    const d = diffMembers(leaves, ['ua', 'ub', 'uc'], [{ userId: 'ub', deviceId: 'db1' }, { userId: 'uc', deviceId: 'dc1' }], 0, all);
    expect(d.remove).toEqual([]);
  });

  it('leaves a member alone whose device list is unknown', () => {
    const d = diffMembers(leaves, ['ua', 'ub', 'uc'], [{ userId: 'ua', deviceId: 'da1' }, { userId: 'uc', deviceId: 'dc1' }], 0, new Set(['ua', 'uc']));
    expect(d.remove).toEqual([]);
  });

  it('removes a duplicate leaf and a foreign identity', () => {
    const d = diffMembers([...leaves, { index: 3, identity: 'ub:db1' }, { index: 4, identity: 'garbage' }], ['ua', 'ub', 'uc'], [{ userId: 'ua', deviceId: 'da1' }, { userId: 'ub', deviceId: 'db1' }, { userId: 'uc', deviceId: 'dc1' }], 0, all);
    expect(d.remove.map((l) => l.index)).toEqual([3, 4]);
  });
});

describe('ordering', () => {
  const c = (seq: number, epoch: number): Item => ({ seq, epoch, kind: 'commit' });
  const m = (seq: number, epoch: number): Item => ({ seq, epoch, kind: 'message' });

  it('keeps seq order and drops duplicates', () => {
    let q: Item[] = [];
    for (const it of [m(5, 1), c(3, 0), m(4, 1), m(5, 1)]) q = enqueue(q, it);
    expect(q.map((x) => x.seq)).toEqual([3, 4, 5]);
  });

  it('processes a commit at its epoch, waits for a missing one, drops old ones', () => {
    expect(decide([c(3, 0)], 0, 2)).toEqual({ action: 'process', item: c(3, 0) });
    expect(decide([c(7, 2), m(8, 3)], 1, 5)).toEqual({ action: 'wait' });
    expect(decide([c(3, 0)], 1, 2)).toEqual({ action: 'drop', item: c(3, 0), why: 'old-commit' });
    expect(decide([m(3, 1)], 1, 3)).toEqual({ action: 'drop', item: m(3, 1), why: 'processed' });
  });

  it('a message for a later epoch waits for its commit; an older epoch is tried', () => {
    expect(decide([m(9, 2)], 1, 8)).toEqual({ action: 'wait' });
    expect(decide([m(9, 0)], 1, 8)).toEqual({ action: 'process', item: m(9, 0) });
    expect(decide([], 1, 8)).toEqual({ action: 'wait' });
  });

  it('a device that missed two epochs catches up in order', () => {
    // Epoch 0 at seq 1; commits at 4 (0→1) and 6 (1→2); messages between.
    let q: Item[] = [];
    for (const it of [m(7, 2), c(6, 1), m(5, 1), c(4, 0), m(2, 0)]) q = enqueue(q, it);
    let epoch = 0;
    let done = 1;
    const order: number[] = [];
    for (;;) {
      const d = decide(q, epoch, done);
      if (d.action === 'wait') break;
      q = q.slice(1);
      if (d.action === 'drop') continue;
      order.push(d.item.seq);
      done = d.item.seq;
      if (d.item.kind === 'commit') epoch++;
    }
    expect(order).toEqual([2, 4, 5, 6, 7]);
    expect(epoch).toBe(2);
  });

  it('jitter stays in its window', () => {
    expect(commitJitter(() => 0)).toBe(300);
    expect(commitJitter(() => 0.999)).toBeLessThanOrEqual(1800);
  });
});
