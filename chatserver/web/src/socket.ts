import type { ClientFrame, ServerFrame } from './types';

export type ConnState = 'idle' | 'connecting' | 'open' | 'reconnecting';

/**
 * Delays before each reconnect attempt after a drop, before jitter; past the end every
 * attempt waits the last (the cap) again. The page never gives up while it is open
 * (issue 12 defect 1): a server that is away for minutes is reached again by itself.
 */
export const BACKOFF_MS = [0, 1000, 2000, 5000, 10000, 20000, 30000];
/** The longest wait between two attempts, jitter included. */
export const BACKOFF_CAP_MS = 30_000;
/**
 * Each wait is spread over ±20 % so that the pages a server restart disconnected do not
 * all come back in the same instant.
 */
export const JITTER = 0.2;

/** The wait before attempt `attempt` (0-based) of a reconnect, for a random number in [0, 1). */
export function backoffDelay(attempt: number, random: number): number {
  const base = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
  if (base === 0) return 0;
  const spread = base * (1 - JITTER + 2 * JITTER * random);
  return Math.round(Math.min(BACKOFF_CAP_MS, spread));
}

export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface ConnectionOptions {
  /** A fresh single-use ticket (POST /api/v1/ws/ticket). */
  getTicket(): Promise<string>;
  createSocket(ticket: string): SocketLike;
  onFrame(frame: ServerFrame): void;
  /** The server said `ready`: the session is authenticated. */
  onReady(frame: Extract<ServerFrame, { type: 'ready' }>): void;
  onState(state: ConnState): void;
  /**
   * The server closed with 1008 (policy: token expired, logged out everywhere) or a
   * ticket was refused. Resolve true to keep reconnecting (the session was renewed),
   * false to stop (signed out).
   */
  onPolicyClose(): Promise<boolean>;
  /** The next attempt waits `ms`; `failures` attempts failed since the socket was open. */
  onWait?(ms: number, failures: number): void;
  timers?: Timers;
  /** A random number in [0, 1) for the jitter (Math.random by default). */
  random?: () => number;
  pingEveryMs?: number;
  pongTimeoutMs?: number;
}

const OPEN = 1;

/**
 * One WebSocket with reconnect (jittered backoff 0, 1, 2, 5, 10, 20 s, then every 30 s, for
 * as long as the page is open; at once when the browser comes back online or the tab
 * becomes visible), ping/pong liveness and state for a banner.
 */
export class Connection {
  state: ConnState = 'idle';
  private ws: SocketLike | null = null;
  private attempt = 0;
  private timer: unknown = null;
  private pingTimer: unknown = null;
  private pongTimer: unknown = null;
  private stopped = true;
  private generation = 0;
  private everOpen = false;
  private readonly t: Timers;
  private readonly random: () => number;
  /** Failed attempts since the socket was last open (the banner says more after a few). */
  failures = 0;

  constructor(private o: ConnectionOptions) {
    this.t = o.timers ?? { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (h) => clearTimeout(h as number) };
    this.random = o.random ?? Math.random;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    // This is the first attempt: should it fail, the next one waits a little.
    this.attempt = 1;
    this.failures = 0;
    this.everOpen = false;
    this.setState('connecting');
    void this.connect();
  }

  /** Closes for good (sign-out). */
  stop(): void {
    this.stopped = true;
    this.generation++;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      try {
        ws.close(1000, 'bye');
      } catch {
        /* already closed */
      }
    }
    this.setState('idle');
  }

  /**
   * Try now instead of waiting for the next attempt: the "Retry now" button, the browser's
   * `online` event, the tab becoming visible. Nothing happens while an attempt is under
   * way or the socket is open. The backoff starts over (a short wait first if this one
   * fails too).
   */
  retry(): void {
    if (this.stopped) return;
    if (this.state === 'open' || this.timer === null) return;
    this.t.clearTimeout(this.timer);
    this.timer = null;
    this.attempt = 1;
    this.setState(this.everOpen ? 'reconnecting' : 'connecting');
    void this.connect();
  }

  /** Whether an attempt is waiting for its turn (false while one runs, or when open). */
  get waiting(): boolean {
    return this.timer !== null;
  }

  /** Sends a frame when the socket is open; returns false otherwise. */
  send(frame: ClientFrame): boolean {
    if (!this.ws || this.ws.readyState !== OPEN || this.state !== 'open') return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  private setState(s: ConnState): void {
    if (this.state === s) return;
    this.state = s;
    this.o.onState(s);
  }

  private clearTimers(): void {
    this.t.clearTimeout(this.timer);
    this.t.clearTimeout(this.pingTimer);
    this.t.clearTimeout(this.pongTimer);
    this.timer = this.pingTimer = this.pongTimer = null;
  }

  private async connect(): Promise<void> {
    const gen = ++this.generation;
    let ticket: string;
    try {
      ticket = await this.o.getTicket();
    } catch (e) {
      if (gen !== this.generation || this.stopped) return;
      const status = (e as { status?: number }).status;
      if (status === 401) {
        const keep = await this.o.onPolicyClose();
        if (!keep) return this.stop();
      }
      return this.scheduleReconnect();
    }
    if (gen !== this.generation || this.stopped) return;
    let ws: SocketLike;
    try {
      ws = this.o.createSocket(ticket);
    } catch {
      return this.scheduleReconnect();
    }
    this.ws = ws;
    ws.onmessage = (ev) => {
      if (gen !== this.generation) return;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(String(ev.data)) as ServerFrame;
      } catch {
        return;
      }
      this.schedulePing();
      if (frame.type === 'ready') {
        // The server also answers a later `auth` (session extended) with `ready`.
        if (this.state === 'open') return;
        this.attempt = 0;
        this.failures = 0;
        this.everOpen = true;
        this.setState('open');
        this.o.onReady(frame);
        return;
      }
      if (frame.type === 'pong') return;
      this.o.onFrame(frame);
    };
    ws.onclose = (ev) => this.closed(gen, ev.code);
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  private closed(gen: number, code: number): void {
      if (gen !== this.generation || this.stopped) return;
      this.ws = null;
      this.t.clearTimeout(this.pingTimer);
      this.t.clearTimeout(this.pongTimer);
      if (code === 1008) {
        void this.o.onPolicyClose().then((keep) => {
          if (gen !== this.generation || this.stopped) return;
          if (!keep) this.stop();
          else this.scheduleReconnect();
        });
        return;
      }
      this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    if (this.attempt > 0) this.failures++;
    const delay = backoffDelay(this.attempt++, this.random());
    this.setState(this.everOpen ? 'reconnecting' : 'connecting');
    this.o.onWait?.(delay, this.failures);
    this.t.clearTimeout(this.timer);
    this.timer = this.t.setTimeout(() => {
      this.timer = null;
      void this.connect();
    }, delay);
  }

  private schedulePing(): void {
    const every = this.o.pingEveryMs ?? 25_000;
    this.t.clearTimeout(this.pingTimer);
    this.t.clearTimeout(this.pongTimer);
    this.pingTimer = this.t.setTimeout(() => {
      if (!this.send({ type: 'ping' })) return;
      this.pongTimer = this.t.setTimeout(() => {
        // No answer: the connection is dead although no close arrived.
        const ws = this.ws;
        if (!ws) return;
        ws.onclose = null;
        ws.onmessage = null;
        try {
          ws.close();
        } catch {
          /* ignore */
        }
        this.closed(this.generation, 1006);
      }, this.o.pongTimeoutMs ?? 10_000);
    }, every);
  }
}
