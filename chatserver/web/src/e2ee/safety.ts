// Safety numbers: what two people compare (aloud, or side by side) to know that the
// devices their conversations encrypt to are the ones the other person really has.
//
// Construction (after Signal's NumericFingerprintGenerator, version 0 there):
//   for each of the two users:
//     keys   = the Ed25519 signature keys (32 bytes each) of the user's devices,
//              sorted bytewise and concatenated
//     h      = SHA-512(0x00 0x00 || keys || UTF-8(userId))
//     repeat 5,200 times: h = SHA-512(h || keys)
//     digits = the first 30 bytes of h as six 5-byte big-endian numbers, each mod 100,000,
//              written as 5 digits (30 digits)
//   safety number = the two users' 30 digits, the smaller user id's first: 60 digits,
//   shown as 12 groups of 5. Both sides compute the same number; any device added to
//   or removed from either user changes it.

export const SAFETY_ITERATIONS = 5200;

function join(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

async function sha512(parts: Uint8Array[]): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-512', join(parts) as BufferSource));
}

function hex(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** The keys sorted bytewise, concatenated. */
function concat(keys: Uint8Array[]): Uint8Array {
  return join([...keys].sort(compareBytes));
}

/** The 30 digits of one user. */
export async function userDigits(userId: string, keys: Uint8Array[], iterations = SAFETY_ITERATIONS): Promise<string> {
  const k = concat(keys);
  let h = await sha512([new Uint8Array([0, 0]), k, new TextEncoder().encode(userId)]);
  for (let i = 0; i < iterations; i++) h = await sha512([h, k]);
  let out = '';
  for (let c = 0; c < 6; c++) {
    let v = 0;
    // 5 bytes = 40 bits: exact in a double.
    for (let j = 0; j < 5; j++) v = v * 256 + h[c * 5 + j];
    out += String(v % 100000).padStart(5, '0');
  }
  return out;
}

/** The 60-digit safety number of two users, the same whichever side computes it. */
export async function safetyNumber(a: { userId: string; keys: Uint8Array[] }, b: { userId: string; keys: Uint8Array[] }, iterations = SAFETY_ITERATIONS): Promise<string> {
  const [first, second] = a.userId < b.userId ? [a, b] : [b, a];
  return (await userDigits(first.userId, first.keys, iterations)) + (await userDigits(second.userId, second.keys, iterations));
}

/** 12 groups of 5 digits. */
export function groupDigits(n: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < n.length; i += 5) out.push(n.slice(i, i + 5));
  return out;
}

/**
 * A fingerprint of a user's device set (the sorted keys, hashed): stored when a contact is
 * verified or first seen, so a later change of their devices shows a warning.
 */
export async function deviceSetHash(keys: Uint8Array[]): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest('SHA-256', concat(keys) as BufferSource)));
}

/** A short fingerprint of one device key, for the device list: 8 groups of 4 hex digits. */
export async function keyFingerprint(key: Uint8Array): Promise<string> {
  const h = new Uint8Array(await crypto.subtle.digest('SHA-256', key as BufferSource));
  return hex(h.subarray(0, 16)).match(/.{4}/g)!.join(' ');
}
