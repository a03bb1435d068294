import type { Attachment } from '../types';

// The plaintext inside an MLS application message (THE CONTRACT, "Client payload"):
// UTF-8 JSON, versioned. Everything the server used to read (reply target, files,
// edits, reactions) travels here, so the server sees none of it.

/** A file encrypted on the client: the server holds only its ciphertext (`id`). */
export interface SealedFile {
  id: string;
  /** AES-GCM 128-bit key, base64. */
  key: string;
  /** 96-bit IV, base64. */
  iv: string;
  name: string;
  type: string;
  size: number;
}

export type Payload =
  | { v: 1; type: 'text'; id: string; text: string; replyTo?: string; attachments?: SealedFile[] }
  | { v: 1; type: 'edit'; target: string; text: string }
  | { v: 1; type: 'reaction'; target: string; emoji: string; add: boolean };

const MAX_TEXT = 64 * 1024;
const MAX_FILES = 10;

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export function encodePayload(p: Payload): Uint8Array {
  return enc.encode(JSON.stringify(p));
}

function str(x: unknown, max = 1024): x is string {
  return typeof x === 'string' && x.length <= max;
}

function file(x: unknown): SealedFile | null {
  if (!x || typeof x !== 'object') return null;
  const f = x as Record<string, unknown>;
  if (!str(f.id) || !str(f.key) || !str(f.iv) || !str(f.name) || !str(f.type)) return null;
  if (typeof f.size !== 'number' || !Number.isSafeInteger(f.size) || f.size < 0) return null;
  return { id: f.id, key: f.key, iv: f.iv, name: f.name, type: f.type, size: f.size };
}

/**
 * Reads a payload another device sent. A payload it cannot read (not JSON, a newer
 * version, a wrong shape) is null: shown as "can't be displayed", never half-applied.
 */
export function decodePayload(b: Uint8Array): Payload | null {
  let o: unknown;
  try {
    o = JSON.parse(dec.decode(b));
  } catch {
    return null;
  }
  if (!o || typeof o !== 'object') return null;
  const p = o as Record<string, unknown>;
  if (p.v !== 1) return null;
  switch (p.type) {
    case 'text': {
      if (!str(p.id, 128) || !str(p.text, MAX_TEXT)) return null;
      if (p.replyTo !== undefined && !str(p.replyTo, 128)) return null;
      let attachments: SealedFile[] | undefined;
      if (p.attachments !== undefined) {
        if (!Array.isArray(p.attachments) || p.attachments.length > MAX_FILES) return null;
        attachments = [];
        for (const a of p.attachments) {
          const f = file(a);
          if (!f) return null;
          attachments.push(f);
        }
      }
      return { v: 1, type: 'text', id: p.id, text: p.text, ...(p.replyTo ? { replyTo: p.replyTo as string } : {}), ...(attachments?.length ? { attachments } : {}) };
    }
    case 'edit':
      if (!str(p.target, 128) || !str(p.text, MAX_TEXT)) return null;
      return { v: 1, type: 'edit', target: p.target, text: p.text };
    case 'reaction':
      if (!str(p.target, 128) || !str(p.emoji, 64) || p.emoji === '' || typeof p.add !== 'boolean') return null;
      return { v: 1, type: 'reaction', target: p.target, emoji: p.emoji, add: p.add };
    default:
      return null;
  }
}

/** An attachment as the thread shows it, with what is needed to decrypt it. */
export function sealedAttachment(f: SealedFile): Attachment {
  return { id: f.id, name: f.name, contentType: f.type, size: f.size, sealed: f };
}

/** The MLS credential identity of a device: `<userId>:<deviceId>` (THE CONTRACT). */
export function deviceIdentity(userId: string, deviceId: string): string {
  return `${userId}:${deviceId}`;
}

/** The user and device of a credential identity (user ids hold no colon; the device id is the rest). */
export function parseIdentity(identity: string): { userId: string; deviceId: string } | null {
  const i = identity.indexOf(':');
  if (i <= 0 || i === identity.length - 1) return null;
  return { userId: identity.slice(0, i), deviceId: identity.slice(i + 1) };
}

export function toBase64(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
