import { describe, expect, it } from 'vitest';
import { addPending, advanceCursor, emptyThread, failPending, indexFromSeq, linkify, mergeMessages, receive, retryPending, windowRange } from '../src/thread';
import { msg } from './helpers';

const seqs = (ms: { seq: number }[]) => ms.map((m) => m.seq);

describe('cursor catch-up merge', () => {
  it('de-duplicates by id and orders by seq', () => {
    const a = [msg(1), msg(2), msg(3)];
    const out = mergeMessages(a, [msg(5), msg(3), msg(4), msg(2)]);
    expect(seqs(out)).toEqual([1, 2, 3, 4, 5]);
    expect(new Set(out.map((m) => m.id)).size).toBe(5);
    expect(mergeMessages(out, [msg(4)])).toBe(out); // nothing new: same array
  });

  it('stops the cursor at a gap and closes it with the sync answer, with no duplicate', () => {
    let t = receive(emptyThread(), [msg(1), msg(2), msg(3)], 'u_1');
    let cursor = advanceCursor(0, t.messages);
    expect(cursor).toBe(3);
    // Live: 4 arrives, 5 and 6 are lost while the socket drops, 7 arrives after.
    t = receive(t, [msg(4)], 'u_1');
    t = receive(t, [msg(7)], 'u_1');
    cursor = advanceCursor(cursor, t.messages);
    expect(cursor).toBe(4);
    // The sync from cursor 4 answers 5, 6, 7 (7 again) — merged without gap or duplicate.
    t = receive(t, [msg(5), msg(6), msg(7)], 'u_1');
    cursor = advanceCursor(cursor, t.messages);
    expect(cursor).toBe(7);
    expect(seqs(t.messages)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('merges a sync that overlaps history loaded by REST (scrolling up and live at once)', () => {
    let t = receive(emptyThread(), [msg(51), msg(52), msg(53)], 'u_1');
    t = receive(t, [msg(48), msg(49), msg(50), msg(51)], 'u_1'); // older page, overlapping
    t = receive(t, [msg(53), msg(54)], 'u_1'); // sync after reconnect
    expect(seqs(t.messages)).toEqual([48, 49, 50, 51, 52, 53, 54]);
    expect(advanceCursor(53, t.messages)).toBe(54);
  });
});

describe('pending → acked / failed → retry', () => {
  const mine = (seq: number, clientId: string) => msg(seq, { senderId: 'u_1', clientId, body: 'hi' });

  it('shows a message as pending, then confirmed once by its ack (and the echo is not a duplicate)', () => {
    let t = addPending(emptyThread(), { clientId: 'abc', conversationId: 'c1', body: 'hi', createdAt: '' });
    expect(t.pending).toMatchObject([{ clientId: 'abc', status: 'pending' }]);
    expect(t.messages).toEqual([]);
    t = receive(t, [mine(1, 'abc')], 'u_1'); // ack
    expect(t.pending).toEqual([]);
    expect(seqs(t.messages)).toEqual([1]);
    t = receive(t, [mine(1, 'abc')], 'u_1'); // the same message as a `message` frame
    expect(seqs(t.messages)).toEqual([1]);
  });

  it('marks a message failed, retries it, and confirms it by clientId', () => {
    let t = addPending(emptyThread(), { clientId: 'x1', conversationId: 'c1', body: 'hi', createdAt: '' });
    t = failPending(t, 'x1', 'Not sent: too long');
    expect(t.pending[0]).toMatchObject({ status: 'failed', error: 'Not sent: too long' });
    t = retryPending(t, 'x1');
    expect(t.pending[0]).toMatchObject({ status: 'pending' });
    expect(t.pending[0].error).toBeUndefined();
    t = receive(t, [mine(9, 'x1')], 'u_1');
    expect(t.pending).toEqual([]);
    expect(seqs(t.messages)).toEqual([9]);
  });

  it("does not confirm my pending message with someone else's message that has the same clientId", () => {
    let t = addPending(emptyThread(), { clientId: 'same', conversationId: 'c1', body: 'hi', createdAt: '' });
    t = receive(t, [msg(1, { clientId: 'same', senderId: 'u_2' })], 'u_1');
    expect(t.pending.length).toBe(1);
  });
});

describe('linkify', () => {
  it('keeps markup as text and links only http(s)', () => {
    const parts = linkify('<img src=x onerror=alert(1)> see https://example.com/a?b=1. and javascript:alert(1)');
    expect(parts[0]).toEqual({ text: '<img src=x onerror=alert(1)> see ' });
    expect(parts[1]).toEqual({ text: 'https://example.com/a?b=1', href: 'https://example.com/a?b=1' });
    expect(parts.filter((p) => p.href).length).toBe(1);
    expect(parts.map((p) => p.text).join('')).toBe('<img src=x onerror=alert(1)> see https://example.com/a?b=1. and javascript:alert(1)');
  });
});

describe('linkify: bare www. addresses', () => {
  it('links www.example.org as https, and nothing else new', () => {
    expect(linkify('visit www.example.org, then')).toEqual([{ text: 'visit ' }, { text: 'www.example.org', href: 'https://www.example.org/' }, { text: ', then' }]);
    expect(linkify('example.org and wwwexample.org and javascript:www.x.org').filter((p) => p.href)).toEqual([]);
    expect(linkify('HTTP://EXAMPLE.COM/x')[0]).toEqual({ text: 'HTTP://EXAMPLE.COM/x', href: 'http://example.com/x' });
  });
});

describe('merge fast paths (a long history)', () => {
  const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => msg(a + i));

  it('appends newer and prepends an older page without reordering, and still de-duplicates', () => {
    const held = range(100, 149);
    const newer = mergeMessages(held, [msg(150)]);
    expect(seqs(newer)).toEqual(seqs(range(100, 150)));
    const older = mergeMessages(newer, range(50, 99));
    expect(seqs(older)).toEqual(seqs(range(50, 150)));
    // Overlapping or unordered input takes the general path: same answer as before.
    expect(seqs(mergeMessages(older, [msg(151), msg(150), msg(49)]))).toEqual(seqs(range(49, 151)));
    expect(mergeMessages(older, [msg(120)])).toBe(older);
    expect(seqs(mergeMessages([], [msg(3), msg(4)]))).toEqual([3, 4]);
  });

  it('stays fast with 5,000 messages held', () => {
    let held = range(4001, 5000);
    for (let top = 4000; top > 0; top -= 50) held = mergeMessages(held, range(top - 49, top));
    expect(held.length).toBe(5000);
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) held = mergeMessages(held, [msg(5001 + i)]);
    expect(held.length).toBe(5200);
    // 200 appends to 5,000: copies only, no sets or sorting (milliseconds, not seconds).
    expect(performance.now() - t0).toBeLessThan(200);
  });
});

describe('the window of messages rendered', () => {
  const ms = Array.from({ length: 300 }, (_, i) => msg(i * 2 + 1)); // seqs 1, 3, … 599 (gaps from change events)

  it('finds by seq, also between held seqs', () => {
    expect(indexFromSeq(ms, 0)).toBe(0);
    expect(indexFromSeq(ms, 1)).toBe(0);
    expect(indexFromSeq(ms, 2)).toBe(1);
    expect(indexFromSeq(ms, 599)).toBe(299);
    expect(indexFromSeq(ms, 600)).toBe(300);
  });

  it('follows the newest with at most max, or holds a fixed range', () => {
    expect(windowRange(ms, 0, Infinity, 80)).toEqual({ start: 220, end: 300 });
    expect(windowRange(ms, 0, Infinity, Infinity)).toEqual({ start: 0, end: 300 });
    expect(windowRange(ms, 101, 201, 80)).toEqual({ start: 50, end: 101 });
    expect(windowRange(ms, 100, 200, 80)).toEqual({ start: 50, end: 100 });
    expect(windowRange([], 0, Infinity, 80)).toEqual({ start: 0, end: 0 });
    // A start past the end (its messages went away) is an empty window, not a negative one.
    expect(windowRange(ms, 700, 50, 80)).toEqual({ start: 25, end: 25 });
  });
});

describe('day separators', () => {
  it('labels today, yesterday and older days', async () => {
    const { dayKey, dayLabel } = await import('../src/thread');
    const now = new Date(2026, 10, 23, 15, 0, 0);
    expect(dayLabel(new Date(2026, 10, 23, 0, 5).toISOString(), now)).toBe('Today');
    expect(dayLabel(new Date(2026, 10, 22, 23, 59).toISOString(), now)).toBe('Yesterday');
    expect(dayLabel(new Date(2026, 10, 20, 12, 0).toISOString(), now)).toMatch(/2026/);
    expect(dayKey(new Date(2026, 10, 22, 23, 59).toISOString())).not.toBe(dayKey(new Date(2026, 10, 23, 0, 1).toISOString()));
  });
});
