// Writes MLS messages made by ts-mls (the library the web client uses) to
// chatserver/mlswire/testdata/, for the Go decoder's interoperability tests:
// what the browser sends must be RFC 9420 framing that an independent
// implementation reads, not an accident of one library.
//
//   node chatserver/web/test/mls-fixtures.mjs [outdir]
//
// Inputs are fixed (group id, identities, lifetime, texts); keys and
// ciphertexts are fresh on each run (the library draws its own randomness),
// so fixtures.json describes what the Go side must find in each file.
//
// Files (each an MLSMessage, RFC 9420 §6):
//   keypackage.bin            Bob's KeyPackage (mls_key_package)
//   keypackage_lastresort.bin Carol's last-resort KeyPackage (extension 0x000a)
//   commit.bin                Alice's Commit at epoch 0 adding Bob (PrivateMessage)
//   welcome.bin               the Welcome of that commit (ratchet_tree in its GroupInfo)
//   application.bin           Alice's application message at epoch 1 (PrivateMessage)
//   commit_public.bin         Bob's Commit at epoch 1 adding Carol (PublicMessage)
//   welcome2.bin              the Welcome of that commit, naming Carol's package
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  decodeMlsMessage,
  defaultCapabilities,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroup,
  processPrivateMessage,
} from "ts-mls";
import { makeKeyPackageRef } from "ts-mls/keyPackage.js";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "../../mlswire/testdata"));
const SUITE = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";
const LAST_RESORT = 0x000a; // last_resort KeyPackage extension (draft-ietf-mls-extensions)
const enc = new TextEncoder();
const b64 = (u) => Buffer.from(u).toString("base64");
const hex = (u) => Buffer.from(u).toString("hex");

const groupIdText = "01JFIXTURECONVERSATION0001";
const groupId = enc.encode(groupIdText);
const ids = { alice: "u-alice:d-alice-1", bob: "u-bob:d-bob-1", carol: "u-carol:d-carol-1" };
const appText = JSON.stringify({ v: 1, type: "text", id: "c-fixture-1", text: "hello from ts-mls" });
// A fixed lifetime that covers the next ten years from 2026-01-01, so a
// server checking "lifetime covers now" accepts the packages for a while.
const lifetime = { notBefore: 1767225600n, notAfter: 1767225600n + 10n * 365n * 86400n };

const impl = await getCiphersuiteImpl(getCiphersuiteFromName(SUITE));

function credential(id) {
  return { credentialType: "basic", identity: enc.encode(id) };
}

function keyPackage(id, lastResort) {
  const caps = defaultCapabilities();
  const exts = [];
  if (lastResort) {
    caps.extensions = [...caps.extensions, LAST_RESORT];
    exts.push({ extensionType: LAST_RESORT, extensionData: new Uint8Array() });
  }
  return generateKeyPackage(credential(id), caps, lifetime, exts, impl);
}

const alice = await keyPackage(ids.alice, false);
const bob = await keyPackage(ids.bob, false);
const carol = await keyPackage(ids.carol, true);

let aliceState = await createGroup(groupId, alice.publicPackage, alice.privatePackage, [], impl);

// Alice adds Bob: commit at epoch 0 (a PrivateMessage, the library's default),
// Welcome carrying the ratchet tree.
const add1 = await createCommit(
  { state: aliceState, cipherSuite: impl },
  { extraProposals: [{ proposalType: "add", add: { keyPackage: bob.publicPackage } }], ratchetTreeExtension: true },
);
aliceState = add1.newState;
const commitBytes = encodeMlsMessage(add1.commit);
const welcomeBytes = encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: add1.welcome });

// Bob joins from the Welcome alone (no tree passed in): proves the extension is there.
const decodedWelcome = decodeMlsMessage(welcomeBytes, 0)[0];
let bobState = await joinGroup(decodedWelcome.welcome, bob.publicPackage, bob.privatePackage, emptyPskIndex, impl);

// Alice sends an application message at epoch 1; Bob reads it.
const epoch1 = aliceState; // its secrets go into fixtures.json (see "secrets" below)
const app = await createApplicationMessage(aliceState, enc.encode(appText), impl);
aliceState = app.newState;
const appBytes = encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: app.privateMessage });
const decodedApp = decodeMlsMessage(appBytes, 0)[0];
const read = await processPrivateMessage(bobState, decodedApp.privateMessage, emptyPskIndex, impl);
if (read.kind !== "applicationMessage" || new TextDecoder().decode(read.message) !== appText) {
  throw new Error("Bob could not read Alice's application message");
}
bobState = read.newState;

// Bob adds Carol (last-resort package) with a PublicMessage commit at epoch 1.
const add2 = await createCommit(
  { state: bobState, cipherSuite: impl },
  {
    extraProposals: [{ proposalType: "add", add: { keyPackage: carol.publicPackage } }],
    ratchetTreeExtension: true,
    wireAsPublicMessage: true,
  },
);
const commitPublicBytes = encodeMlsMessage(add2.commit);
const welcome2Bytes = encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: add2.welcome });

const kpBytes = encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: bob.publicPackage });
const kpLastBytes = encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: carol.publicPackage });
const bobRef = await makeKeyPackageRef(bob.publicPackage, impl.hash);
const carolRef = await makeKeyPackageRef(carol.publicPackage, impl.hash);

mkdirSync(out, { recursive: true });
const files = {
  "keypackage.bin": kpBytes,
  "keypackage_lastresort.bin": kpLastBytes,
  "commit.bin": commitBytes,
  "welcome.bin": welcomeBytes,
  "application.bin": appBytes,
  "commit_public.bin": commitPublicBytes,
  "welcome2.bin": welcome2Bytes,
};
for (const [name, bytes] of Object.entries(files)) writeFileSync(join(out, name), bytes);

const pkg = (kp, id, ref, lastResort) => ({
  identity: id,
  signatureKey: b64(kp.leafNode.signaturePublicKey),
  initKey: b64(kp.initKey),
  encryptionKey: b64(kp.leafNode.hpkePublicKey),
  notBefore: Number(lifetime.notBefore),
  notAfter: Number(lifetime.notAfter),
  lastResort,
  ref: hex(ref),
});
const description = {
  generator: "chatserver/web/test/mls-fixtures.mjs with ts-mls 1.6.4",
  version: 1,
  cipherSuite: 1,
  groupId: groupIdText,
  groupIdBase64: b64(groupId),
  wireFormats: { public: 1, private: 2, welcome: 3, groupInfo: 4, keyPackage: 5 },
  contentTypes: { application: 1, proposal: 2, commit: 3 },
  files: {
    "keypackage.bin": { wireFormat: 5, keyPackage: pkg(bob.publicPackage, ids.bob, bobRef, false) },
    "keypackage_lastresort.bin": { wireFormat: 5, keyPackage: pkg(carol.publicPackage, ids.carol, carolRef, true) },
    "commit.bin": { wireFormat: 2, groupId: groupIdText, epoch: 0, contentType: 3, sender: ids.alice, adds: [ids.bob] },
    "welcome.bin": { wireFormat: 3, cipherSuite: 1, newMembers: [hex(bobRef)], ratchetTreeExtension: true },
    "application.bin": {
      wireFormat: 2, groupId: groupIdText, epoch: 1, contentType: 1, sender: ids.alice, plaintext: appText,
      // The epoch's secrets and context, so the Go side (mlswire's
      // unprotect_test.go, RFC 9420 §6.3 and §9 written independently)
      // can decrypt and verify the message as a second implementation.
      secrets: {
        // ts-mls keeps each leaf's ratchet roots, not the epoch's
        // encryption_secret: the sender's application ratchet secret at
        // generation 0 (secret tree node 0 = leaf 0, Alice) stands in for it.
        senderLeaf: 0,
        applicationSecret: hex(epoch1.secretTree[0].application.secret),
        applicationGeneration: epoch1.secretTree[0].application.generation,
        senderDataSecret: hex(epoch1.keySchedule.senderDataSecret),
        leaves: (epoch1.ratchetTree.length + 1) / 2,
        signatureKeys: { 0: hex(alice.publicPackage.leafNode.signaturePublicKey), 1: hex(bob.publicPackage.leafNode.signaturePublicKey) },
        groupContext: {
          epoch: Number(epoch1.groupContext.epoch),
          treeHash: hex(epoch1.groupContext.treeHash),
          confirmedTranscriptHash: hex(epoch1.groupContext.confirmedTranscriptHash),
          extensions: epoch1.groupContext.extensions.map((e) => ({ type: e.extensionType, data: hex(e.extensionData) })),
        },
      },
    },
    "commit_public.bin": { wireFormat: 1, groupId: groupIdText, epoch: 1, contentType: 3, sender: ids.bob, adds: [ids.carol] },
    "welcome2.bin": { wireFormat: 3, cipherSuite: 1, newMembers: [hex(carolRef)], ratchetTreeExtension: true },
  },
  sizes: Object.fromEntries(Object.entries(files).map(([n, b]) => [n, b.length])),
};
writeFileSync(join(out, "fixtures.json"), JSON.stringify(description, null, 2) + "\n");
console.log(`mls-fixtures: wrote ${Object.keys(files).length} messages and fixtures.json to ${out}`);
