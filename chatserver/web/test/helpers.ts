import type { SocketLike } from '../src/socket';
import type { Message, Session } from '../src/types';

export function jwt(lifetimeSeconds: number, sub = 'u_1'): string {
  const enc = (o: object) => btoa(JSON.stringify(o)).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
  const iat = Math.floor(Date.now() / 1000);
  return `${enc({ alg: 'EdDSA', typ: 'JWT' })}.${enc({ sub, iat, exp: iat + lifetimeSeconds, r: Math.random() })}.sig`;
}

export function session(token: string, user = { id: 'u_1', username: 'alice', displayName: 'Alice' }): Session {
  return { user, accessToken: token, accessTokenExpiresAt: new Date(Date.now() + 900_000).toISOString() };
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

export function errorBody(code: string, message = code) {
  return { error: { code, message } };
}

export function msg(seq: number, over: Partial<Message> = {}): Message {
  return {
    id: `m_${over.conversationId ?? 'c1'}_${seq}`,
    conversationId: 'c1',
    seq,
    senderId: 'u_2',
    clientId: `k${seq}`,
    body: `message ${seq}`,
    createdAt: new Date(Date.UTC(2026, 10, 23, 12, 0, seq)).toISOString(),
    ...over,
  };
}

/** A promise and its resolver, to hold a fake response until the test lets it go. */
export function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** A WebSocket stand-in: records what the client sends, and lets a test play the server. */
export class FakeSocket implements SocketLike {
  readyState = 0;
  sent: Array<Record<string, unknown>> = [];
  onopen: SocketLike['onopen'] = null;
  onmessage: SocketLike['onmessage'] = null;
  onclose: SocketLike['onclose'] = null;
  onerror: SocketLike['onerror'] = null;
  send(d: string) {
    this.sent.push(JSON.parse(d));
  }
  close() {
    this.readyState = 3;
  }
  frame(f: object) {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  ready() {
    this.readyState = 1;
    this.frame({ type: 'ready', userId: 'u_1', sessionId: 's', protocol: 1, expiresAt: '' });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
  ofType(t: string) {
    return this.sent.filter((f) => f.type === t);
  }
}
