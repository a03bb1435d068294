import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BACKOFF_MS, Connection, type ConnState, type SocketLike } from '../src/socket';

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

  function setup(opts: { ticketFails?: () => boolean; policy?: () => Promise<boolean> } = {}) {
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
    });
    return { conn, sockets, states, attempts };
  }

  it('reconnects after 0, 2, 5, 10 and 30 s, then says the connection is lost; Retry starts again', async () => {
    let down = false;
    const { conn, sockets, states, attempts } = setup({ ticketFails: () => down });
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    sockets[0].ready();
    expect(conn.state).toBe('open');
    down = true;
    const t0 = Date.now();
    attempts.length = 0;
    sockets[0].drop();
    expect(conn.state).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(attempts.map((t) => t - t0)).toEqual([0, 2000, 7000, 17000, 47000]);
    expect(BACKOFF_MS).toEqual([0, 2000, 5000, 10000, 30000]);
    expect(conn.state).toBe('lost');
    expect(states).toEqual(['connecting', 'open', 'reconnecting', 'lost']);
    // Retry: the server is back.
    down = false;
    conn.retry();
    expect(conn.state).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(0);
    sockets[sockets.length - 1].ready();
    expect(conn.state).toBe('open');
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
