// Where this browser keeps its end-to-end keys: IndexedDB (database `parley-e2ee`).
//
// - The device's Ed25519 signing key is a non-extractable WebCrypto key (stored as a
//   CryptoKey object: the page can sign with it, nobody can read it out).
// - ts-mls needs raw bytes for the rest (HPKE private keys of KeyPackages, group state
//   with its epoch secrets), so those are sealed with AES-256-GCM under a wrapping key
//   that is itself a non-extractable WebCrypto key generated in this browser and kept in
//   the same database. Reading the database files gives ciphertext only; code running in
//   the page (XSS) could still use the keys, as with any web client.
// - Decrypted messages are kept sealed the same way, since a sender cannot decrypt its own
//   MLS messages and a message can be decrypted once only (its key is deleted after use).

export interface KV {
  get<T>(key: string): Promise<T | undefined>;
  put(key: string, value: unknown): Promise<void>;
  del(key: string): Promise<void>;
  /** Every [key, value] whose key starts with prefix. */
  entries<T>(prefix: string): Promise<Array<[string, T]>>;
}

export function memoryKV(): KV {
  const m = new Map<string, unknown>();
  return {
    get: async <T>(k: string) => m.get(k) as T | undefined,
    put: async (k, v) => void m.set(k, v),
    del: async (k) => void m.delete(k),
    entries: async <T>(p: string) => [...m.entries()].filter(([k]) => k.startsWith(p)).sort(([a], [b]) => (a < b ? -1 : 1)) as Array<[string, T]>,
  };
}

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

export function idbKV(name = 'parley-e2ee'): KV {
  let db: Promise<IDBDatabase> | null = null;
  const open = () =>
    (db ??= new Promise((resolve, reject) => {
      const r = indexedDB.open(name, 1);
      r.onupgradeneeded = () => r.result.createObjectStore('kv');
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    }));
  const store = async (mode: IDBTransactionMode) => (await open()).transaction('kv', mode).objectStore('kv');
  return {
    get: async <T>(k: string) => (await req((await store('readonly')).get(k))) as T | undefined,
    put: async (k, v) => void (await req((await store('readwrite')).put(v, k))),
    del: async (k) => void (await req((await store('readwrite')).delete(k))),
    entries: async <T>(p: string) => {
      const s = await store('readonly');
      const range = IDBKeyRange.bound(p, p + '\uffff');
      const [keys, values] = await Promise.all([req(s.getAllKeys(range)), req(s.getAll(range))]);
      return keys.map((k, i) => [String(k), values[i] as T]);
    },
  };
}

export interface Sealed {
  iv: Uint8Array;
  ct: ArrayBuffer;
}

/** Seals and opens values under this browser's non-extractable wrapping key. */
export class Vault {
  private key: CryptoKey | null = null;
  constructor(readonly kv: KV, readonly prefix: string) {}

  async init(): Promise<void> {
    const k = `${this.prefix}wrap`;
    let key = await this.kv.get<CryptoKey>(k);
    if (!key) {
      key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
      await this.kv.put(k, key);
    }
    this.key = key;
  }

  async seal(b: Uint8Array): Promise<Sealed> {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    return { iv, ct: await crypto.subtle.encrypt({ name: 'AES-GCM', iv: iv as BufferSource }, this.key!, b as BufferSource) };
  }

  async open(s: Sealed): Promise<Uint8Array> {
    return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: s.iv as BufferSource }, this.key!, s.ct));
  }

  async putSealed(key: string, b: Uint8Array): Promise<void> {
    await this.kv.put(this.prefix + key, await this.seal(b));
  }

  async getSealed(key: string): Promise<Uint8Array | undefined> {
    const s = await this.kv.get<Sealed>(this.prefix + key);
    return s ? this.open(s) : undefined;
  }

  async putJSON(key: string, v: unknown): Promise<void> {
    await this.putSealed(key, new TextEncoder().encode(JSON.stringify(v)));
  }

  async getJSON<T>(key: string): Promise<T | undefined> {
    const b = await this.getSealed(key);
    return b ? (JSON.parse(new TextDecoder().decode(b)) as T) : undefined;
  }

  async entriesJSON<T>(prefix: string): Promise<Array<[string, T]>> {
    const out: Array<[string, T]> = [];
    for (const [k, s] of await this.kv.entries<Sealed>(this.prefix + prefix)) {
      out.push([k.slice(this.prefix.length), JSON.parse(new TextDecoder().decode(await this.open(s))) as T]);
    }
    return out;
  }

  del(key: string): Promise<void> {
    return this.kv.del(this.prefix + key);
  }

  getPlain<T>(key: string): Promise<T | undefined> {
    return this.kv.get<T>(this.prefix + key);
  }

  putPlain(key: string, v: unknown): Promise<void> {
    return this.kv.put(this.prefix + key, v);
  }
}

// ------------------------------------------------------------ file encryption

/** A file's bytes sealed for upload: a fresh AES-128-GCM key per file. */
export async function sealFile(data: ArrayBuffer): Promise<{ ct: ArrayBuffer; key: Uint8Array; iv: Uint8Array }> {
  const key = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const k = await crypto.subtle.importKey('raw', key as BufferSource, 'AES-GCM', false, ['encrypt']);
  return { ct: await crypto.subtle.encrypt({ name: 'AES-GCM', iv: iv as BufferSource }, k, data), key, iv };
}

export async function openFile(ct: ArrayBuffer, key: Uint8Array, iv: Uint8Array): Promise<ArrayBuffer> {
  const k = await crypto.subtle.importKey('raw', key as BufferSource, 'AES-GCM', false, ['decrypt']);
  return crypto.subtle.decrypt({ name: 'AES-GCM', iv: iv as BufferSource }, k, ct);
}
