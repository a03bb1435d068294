import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BACKOFF_CAP_MS, BACKOFF_MS, backoffDelay, Connection, type ConnState, type SocketLike } from '../src/socket';

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: string[] = [];
  onopen: SocketLike['onopen'] = null;
  onmessage: SocketLike['onmessage'] = null;
  onclose: SocketLike['onclose'] = null;
  onerror: SocketLike['onerror'] = null;
  send(d: string) {
    this.sent.push(d);
  }
  close() {
    this.readyState = 3;
  }
  ready() {
    this.readyState = 1;
    this.onmessage?.({ data: JSON.stringify({ type: 'ready', userId: 'u_1', sessionId: 's', protocol: 1, expiresAt: '' }) });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
}

describe('Connection', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function setup(opts: { ticketFails?: () => boolean; policy?: () => Promise<boolean>; random?: () => number } = {}) {
    const sockets: FakeSocket[] = [];
    const states: ConnState[] = [];
    const attempts: number[] = [];
    const conn = new Connection({
      getTicket: async () => {
        attempts.push(Date.now());
        if (opts.ticketFails?.()) throw Object.assign(new Error('down'), { status: 0 });
        return 't';
      },
      createSocket: () => {
        const s = new FakeSocket();
        sockets.push(s);
        return s;
      },
      onFrame: () => {},
      onReady: () => {},
      onState: (s) => states.push(s),
      onPolicyClose: opts.policy ?? (async () => true),
      random: opts.random,
    });
    return { conn, sockets, states, attempts };
  }

  it('never gives up: jittered backoff 0, 1, 2, 5, 10, 20 s, then every 30 s for as long as it takes', async () => {
    let down = false;
    const { conn, sockets, states, attempts } = setup({ ticketFails: () => down, random: () => 0.5 });
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    sockets[0].ready();
    expect(conn.state).toBe('open');
    down = true;
    const t0 = Date.now();
    attempts.length = 0;
    sockets[0].drop();
    expect(conn.state).toBe('reconnecting');
    // An hour away: about 120 attempts, never more than 30 s apart, and no "lost".
    await vi.advanceTimersByTimeAsync(3_600_000);
    const at = attempts.map((t) => t - t0);
    expect(at.slice(0, 8)).toEqual([0, 1000, 3000, 8000, 18000, 38000, 68000, 98000]);
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    expect(Math.max(...gaps)).toBe(BACKOFF_CAP_MS);
    expect(at.length).toBeGreaterThan(115);
    expect(conn.state).toBe('reconnecting');
    expect(states).toEqual(['connecting', 'open', 'reconnecting']);
    expect(conn.failures).toBe(at.length);
    // The server is back: the next attempt (at most 30 s later) opens, with no click.
    down = false;
    await vi.advanceTimersByTimeAsync(BACKOFF_CAP_MS);
    sockets[sockets.length - 1].ready();
    expect(conn.state).toBe('open');
    expect(conn.failures).toBe(0);
  });

  it('spreads each wait over ±20 % and never over the cap', () => {
    expect(backoffDelay(0, 0.99)).toBe(0);
    expect(backoffDelay(1, 0)).toBe(800);
    expect(backoffDelay(1, 0.999999)).toBe(1200);
    expect(backoffDelay(4, 0.25)).toBe(9000);
    for (const r of [0, 0.3, 0.999999]) {
      for (let a = 6; a < 100; a += 7) {
        const d = backoffDelay(a, r);
        expect(d).toBeGreaterThanOrEqual(24_000);
        expect(d).toBeLessThanOrEqual(BACKOFF_CAP_MS);
      }
    }
    expect(BACKOFF_MS[0]).toBe(0);
  });

  it('tries at once when told (online event, tab visible, Retry now) instead of waiting its turn', async () => {
    let down = false;
    const { conn, sockets, attempts } = setup({ ticketFails: () => down, random: () => 0.5 });
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    sockets[0].ready();
    down = true;
    sockets[0].drop();
    await vi.advanceTimersByTimeAsync(60_000); // well into the backoff: the next try is up to 30 s away
    expect(conn.waiting).toBe(true);
    down = false;
    const n = attempts.length;
    const t = Date.now();
    conn.retry(); // what the store does on `online` and on visibilitychange to visible
    await vi.advanceTimersByTimeAsync(0);
    expect(attempts.length).toBe(n + 1);
    expect(attempts[n]).toBe(t);
    sockets[sockets.length - 1].ready();
    expect(conn.state).toBe('open');
    // While open (or while an attempt runs) a retry does nothing.
    conn.retry();
    await vi.advanceTimersByTimeAsync(0);
    expect(attempts.length).toBe(n + 1);
  });

  it('a retry that fails too waits a little before the next attempt, not a burst', async () => {
    const { conn, sockets, attempts } = setup({ ticketFails: () => true, random: () => 0.5 });
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(attempts.length).toBe(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(attempts.length).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(attempts.length).toBe(2);
    const t = Date.now();
    conn.retry();
    await vi.advanceTimersByTimeAsync(0);
    expect(attempts.length).toBe(3);
    await vi.advanceTimersByTimeAsync(999);
    expect(attempts.length).toBe(3);
    await vi.advanceTimersByTimeAsync(1);
    expect(attempts.map((x) => x - t).slice(2)).toEqual([0, 1000]);
    expect(sockets.length).toBe(0);
  });

  it('starts the backoff over after a successful reconnect', async () => {
    let down = false;
    const { conn, sockets, attempts } = setup({ ticketFails: () => down });
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    sockets[0].ready();
    down = true;
    sockets[0].drop();
    await vi.advanceTimersByTimeAsync(2000); // attempts at 0 and 2 s fail
    down = false;
    await vi.advanceTimersByTimeAsync(5000); // attempt at 7 s works
    sockets[sockets.length - 1].ready();
    expect(conn.state).toBe('open');
    attempts.length = 0;
    const t0 = Date.now();
    sockets[sockets.length - 1].drop();
    await vi.advanceTimersByTimeAsync(0);
    expect(attempts.map((t) => t - t0)).toEqual([0]);
  });

  it('on a policy close (1008) asks for a renewed session, and stops when there is none', async () => {
    const policy = vi.fn(async () => false);
    const { conn, sockets } = setup({ policy });
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    sockets[0].ready();
    sockets[0].drop(1008);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(policy).toHaveBeenCalledTimes(1);
    expect(conn.state).toBe('idle');
    expect(sockets.length).toBe(1);
  });

  it('sends frames only while open', async () => {
    const { conn, sockets } = setup();
    expect(conn.send({ type: 'ping' })).toBe(false);
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(conn.send({ type: 'ping' })).toBe(false);
    sockets[0].ready();
    expect(conn.send({ type: 'typing', conversationId: 'c1' })).toBe(true);
    expect(JSON.parse(sockets[0].sent[0])).toEqual({ type: 'typing', conversationId: 'c1' });
  });
});

describe('Connection ready', () => {
  it('treats a second ready (the answer to a renewed auth) as no new session', async () => {
    vi.useFakeTimers();
    const ready = vi.fn();
    const sockets: FakeSocket[] = [];
    const conn = new Connection({
      getTicket: async () => 't',
      createSocket: () => {
        const s = new FakeSocket();
        sockets.push(s);
        return s;
      },
      onFrame: () => {},
      onReady: ready,
      onState: () => {},
      onPolicyClose: async () => true,
    });
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    sockets[0].ready();
    sockets[0].ready();
    expect(ready).toHaveBeenCalledTimes(1);
    vi.useRealTimers();
  });
});
