// MLS (RFC 9420) through ts-mls, ciphersuite 1 only
// (MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519). Thin, stateless wrappers: the
// caller keeps each group's state and stores it (encrypted) after every step.

import {
  acceptAll,
  createApplicationMessage,
  createCommit,
  createGroup as mlsCreateGroup,
  decodeGroupState,
  decodeMlsMessage,
  defaultCapabilities,
  emptyPskIndex,
  encodeGroupState,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroup,
  processMessage,
  type CiphersuiteImpl,
  type ClientState,
  type KeyPackage,
  type PrivateKeyPackage,
  type Proposal,
} from 'ts-mls';
import { defaultClientConfig } from 'ts-mls/clientConfig.js';
import { makeKeyPackageRef, decodeKeyPackage, encodeKeyPackage } from 'ts-mls/keyPackage.js';
import type { Leaf } from './reconcile';

export const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' as const;
export const LAST_RESORT_EXTENSION = 0x000a;
/** KeyPackages live 90 days (the server refuses one whose lifetime does not cover now). */
const KEY_PACKAGE_DAYS = 90n;

const text = new TextEncoder();
const textOut = new TextDecoder();

/**
 * The device's signing key. ts-mls signs with raw private key bytes; to keep the
 * private key non-extractable the library is given a handle (a random tag, not a key)
 * and the signature implementation below signs with the WebCrypto key behind it.
 */
export interface Signer {
  handle: Uint8Array;
  key: CryptoKey;
  publicKey: Uint8Array;
}

export async function newSigner(): Promise<Signer> {
  const pair = (await crypto.subtle.generateKey('Ed25519', false, ['sign', 'verify'])) as CryptoKeyPair;
  const publicKey = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  const handle = crypto.getRandomValues(new Uint8Array(16));
  return { handle, key: pair.privateKey, publicKey };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

let base: Promise<CiphersuiteImpl> | null = null;

/** The ciphersuite implementation, signing with `signer` when the library asks for its handle. */
export async function suiteFor(signer: Signer | null): Promise<CiphersuiteImpl> {
  base ??= getCiphersuiteImpl(getCiphersuiteFromName(SUITE));
  const cs = await base;
  if (!signer) return cs;
  return {
    ...cs,
    signature: {
      ...cs.signature,
      async sign(signKey: Uint8Array, message: Uint8Array): Promise<Uint8Array> {
        if (!sameBytes(signKey, signer.handle)) return cs.signature.sign(signKey, message);
        return new Uint8Array(await crypto.subtle.sign('Ed25519', signer.key, message as BufferSource));
      },
      verify: cs.signature.verify,
      keygen: cs.signature.keygen,
    },
  };
}

export interface Ctx {
  cs: CiphersuiteImpl;
  signer: Signer;
  identity: string;
}

export async function context(signer: Signer, identity: string): Promise<Ctx> {
  return { cs: await suiteFor(signer), signer, identity };
}

export interface NewKeyPackage {
  publicPackage: KeyPackage;
  privatePackage: PrivateKeyPackage;
  /** MLSMessage(mls_key_package) bytes, what the server stores. */
  message: Uint8Array;
  ref: string;
}

export function hex(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

export async function newKeyPackage(ctx: Ctx, lastResort = false, nowMs = Date.now()): Promise<NewKeyPackage> {
  const caps = defaultCapabilities();
  const extensions = [];
  if (lastResort) {
    caps.extensions = [...caps.extensions, LAST_RESORT_EXTENSION];
    extensions.push({ extensionType: LAST_RESORT_EXTENSION, extensionData: new Uint8Array() });
  }
  const now = BigInt(Math.floor(nowMs / 1000));
  const lifetime = { notBefore: now - 3600n, notAfter: now + KEY_PACKAGE_DAYS * 86400n };
  const kp = await generateKeyPackageWithKey(
    { credentialType: 'basic', identity: text.encode(ctx.identity) },
    caps,
    lifetime,
    extensions,
    { signKey: ctx.signer.handle, publicKey: ctx.signer.publicKey },
    ctx.cs,
  );
  const message = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: kp.publicPackage });
  const ref = hex(await makeKeyPackageRef(kp.publicPackage, ctx.cs.hash));
  return { ...kp, message, ref };
}

/** A KeyPackage as stored (the private half is kept encrypted by the caller). */
export function encodeKeyPackageBytes(kp: KeyPackage): Uint8Array {
  return encodeKeyPackage(kp);
}

export function decodeKeyPackageBytes(b: Uint8Array): KeyPackage {
  const d = decodeKeyPackage(b, 0);
  if (!d) throw new Error('mls: not a KeyPackage');
  return d[0];
}

/** A KeyPackage the server handed out (an MLSMessage), checked to be one. */
export function readKeyPackage(b: Uint8Array): KeyPackage {
  const m = decodeMlsMessage(b, 0)?.[0];
  if (!m || m.wireformat !== 'mls_key_package') throw new Error('mls: not a KeyPackage message');
  return m.keyPackage;
}

export function identityOf(kp: KeyPackage): string {
  const c = kp.leafNode.credential;
  return c.credentialType === 'basic' ? textOut.decode(c.identity) : '';
}

export function groupIdBytes(conversationId: string): Uint8Array {
  return text.encode(conversationId);
}

/** Epoch 0: a group of this device alone. */
export async function createGroup(ctx: Ctx, conversationId: string, kp: NewKeyPackage): Promise<ClientState> {
  return mlsCreateGroup(groupIdBytes(conversationId), kp.publicPackage, kp.privatePackage, [], ctx.cs);
}

export interface CommitOut {
  state: ClientState;
  commit: Uint8Array;
  welcome?: Uint8Array;
}

/** One commit adding and removing members; the Welcome carries the ratchet tree. */
export async function commit(ctx: Ctx, state: ClientState, adds: KeyPackage[], removeLeaves: number[]): Promise<CommitOut> {
  const proposals: Proposal[] = [
    ...removeLeaves.map((removed): Proposal => ({ proposalType: 'remove', remove: { removed } })),
    ...adds.map((keyPackage): Proposal => ({ proposalType: 'add', add: { keyPackage } })),
  ];
  const r = await createCommit({ state, cipherSuite: ctx.cs }, { extraProposals: proposals, ratchetTreeExtension: true });
  return {
    state: r.newState,
    commit: encodeMlsMessage(r.commit),
    welcome: r.welcome ? encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: r.welcome }) : undefined,
  };
}

/** The KeyPackageRefs a Welcome is for (hex). */
export function welcomeRefs(b: Uint8Array): string[] {
  const m = decodeMlsMessage(b, 0)?.[0];
  if (!m || m.wireformat !== 'mls_welcome') throw new Error('mls: not a Welcome');
  return m.welcome.secrets.map((s) => hex(s.newMember));
}

export async function join(ctx: Ctx, welcome: Uint8Array, kp: KeyPackage, priv: PrivateKeyPackage): Promise<ClientState> {
  const m = decodeMlsMessage(welcome, 0)?.[0];
  if (!m || m.wireformat !== 'mls_welcome') throw new Error('mls: not a Welcome');
  return joinGroup(m.welcome, kp, priv, emptyPskIndex, ctx.cs);
}

export async function encrypt(ctx: Ctx, state: ClientState, plaintext: Uint8Array): Promise<{ state: ClientState; message: Uint8Array }> {
  const r = await createApplicationMessage(state, plaintext, ctx.cs);
  return { state: r.newState, message: encodeMlsMessage({ version: 'mls10', wireformat: 'mls_private_message', privateMessage: r.privateMessage }) };
}

export interface Header {
  wire: 'public' | 'private';
  epoch: number;
  groupId: string;
}

/** The clear header of a handshake or application message. */
export function header(b: Uint8Array): Header {
  const m = decodeMlsMessage(b, 0)?.[0];
  if (m?.wireformat === 'mls_private_message') return { wire: 'private', epoch: Number(m.privateMessage.epoch), groupId: textOut.decode(m.privateMessage.groupId) };
  if (m?.wireformat === 'mls_public_message') return { wire: 'public', epoch: Number(m.publicMessage.content.epoch), groupId: textOut.decode(m.publicMessage.content.groupId) };
  throw new Error('mls: not a public or private message');
}

export type Processed =
  | { kind: 'application'; state: ClientState; plaintext: Uint8Array }
  | { kind: 'commit'; state: ClientState; removedMe: boolean };

export async function process(ctx: Ctx, state: ClientState, b: Uint8Array): Promise<Processed> {
  const m = decodeMlsMessage(b, 0)?.[0];
  if (!m || (m.wireformat !== 'mls_private_message' && m.wireformat !== 'mls_public_message')) throw new Error('mls: not a public or private message');
  const r = await processMessage(m, state, emptyPskIndex, acceptAll, ctx.cs);
  if (r.kind === 'applicationMessage') return { kind: 'application', state: r.newState, plaintext: r.message };
  return { kind: 'commit', state: r.newState, removedMe: r.newState.groupActiveState.kind === 'removedFromGroup' };
}

export function epochOf(state: ClientState): number {
  return Number(state.groupContext.epoch);
}

export function myLeaf(state: ClientState): number {
  return state.privatePath.leafIndex;
}

export function leaves(state: ClientState): Leaf[] {
  const out: Leaf[] = [];
  state.ratchetTree.forEach((n, i) => {
    if (i % 2 !== 0 || !n || n.nodeType !== 'leaf') return;
    const c = n.leaf.credential;
    out.push({ index: i / 2, identity: c.credentialType === 'basic' ? textOut.decode(c.identity) : '' });
  });
  return out;
}

export function active(state: ClientState): boolean {
  return state.groupActiveState.kind === 'active';
}

export function saveState(state: ClientState): Uint8Array {
  return encodeGroupState(state);
}

export function loadState(b: Uint8Array): ClientState {
  const d = decodeGroupState(b, 0);
  if (!d) throw new Error('mls: unreadable group state');
  return { ...d[0], clientConfig: defaultClientConfig };
}
