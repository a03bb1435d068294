// End-to-end encryption in the UI: the lock marker, this browser's devices, safety numbers
// and their verification, the warning when a contact's devices change, notices in the
// thread, and files encrypted on the client (decrypted here to be shown or saved).
import { useEffect, useRef, useState } from 'preact/hooks';
import { formatSize, typeLabel } from '../attachments';
import type { Contact, ServerDevice } from '../e2ee/client';
import { openFile } from '../e2ee/keystore';
import { fromBase64 } from '../e2ee/payload';
import { groupDigits, keyFingerprint, safetyNumber } from '../e2ee/safety';
import { describeError } from '../errors';
import type { ChatStore } from '../store';
import type { Attachment, Conversation } from '../types';
import { Modal } from './common';
import './encryption.css';

export function LockMark({ label = 'End-to-end encrypted' }: { label?: string }) {
  return (
    <span class="e2ee-lock" title={label} data-testid="e2ee-lock">
      <svg viewBox="0 0 16 16" width="12" height="12" aria-hidden="true">
        <path d="M4 7V5a4 4 0 1 1 8 0v2h1v8H3V7h1zm2 0h4V5a2 2 0 1 0-4 0v2z" fill="currentColor" />
      </svg>
      <span class="sr-only">{label}</span>
    </span>
  );
}

function useVersion(store: ChatStore): number {
  return store.e2ee?.version.value ?? 0;
}

/**
 * Account menu → Devices: this device, my other devices (name, fingerprint), removing a
 * lost one. Works without this browser being a device too (e.g. when the per-user cap of
 * devices refused it: removing an old one makes room).
 */
export function DevicesDialog({ store, onClose }: { store: ChatStore; onClose: () => void }) {
  const e = store.e2ee;
  const me = store.me.value!;
  const v = useVersion(store);
  const [devices, setDevices] = useState<Array<ServerDevice & { fp: string }> | null>(null);
  const [error, setError] = useState('');
  const [confirm, setConfirm] = useState<ServerDevice | null>(null);
  const [n, setN] = useState(0);
  const opening = useRef(true);
  useEffect(() => {
    let live = true;
    // Asked afresh when the dialog opens; after that (a version bump) the cached list, which
    // a `devices` frame or a removal here has already refreshed.
    const list = e ? e.devicesOf(me.id, opening.current) : store.api.request<{ devices: ServerDevice[] }>('GET', `/users/${encodeURIComponent(me.id)}/devices`).then((r) => r.devices);
    list
      .then(async (ds) => Promise.all(ds.map(async (d) => ({ ...d, fp: await keyFingerprint(fromBase64(d.signatureKey)) }))))
      .then((ds) => live && setDevices(ds), (err) => live && setError(describeError(err)));
    opening.current = false;
    return () => {
      live = false;
    };
  }, [e, v, n]);
  const remove = async (d: ServerDevice) => {
    try {
      if (e) await e.removeDevice(d.id); // the version bump shows the list without it
      else {
        await store.api.request('DELETE', `/devices/${encodeURIComponent(d.id)}`);
        void store.retryE2ee();
        setN(n + 1);
      }
      setConfirm(null);
    } catch (err) {
      setError(describeError(err));
    }
  };
  return (
    <Modal title="Devices" onClose={onClose}>
      <p class="muted">
        Each browser you use is a device with its own keys. Your encrypted conversations are encrypted to all of them. Remove a device you lost: it is removed from every encrypted conversation and cannot read what is sent after.
      </p>
      {!e && <p role="status">{store.e2eeError.value ?? 'End-to-end encryption is not available in this browser.'}</p>}
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      <ul class="device-list" data-testid="devices">
        {(devices ?? []).map((d) => (
          <li key={d.id} class="device" data-testid="device" data-device={d.id}>
            <span class="device-name">
              {d.name}
              {d.id === e?.deviceId && <strong class="device-this"> (this device)</strong>}
            </span>
            <span class="device-added muted">added {new Date(d.createdAt).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })}</span>
            <code class="device-fp">{d.fp}</code>
            {d.id !== e?.deviceId &&
              (confirm?.id === d.id ? (
                <span class="device-confirm">
                  Remove {d.name}?{' '}
                  <button type="button" class="btn btn-small btn-danger" onClick={() => void remove(d)}>
                    Remove
                  </button>{' '}
                  <button type="button" class="btn btn-small" onClick={() => setConfirm(null)}>
                    Cancel
                  </button>
                </span>
              ) : (
                <button type="button" class="btn btn-small" onClick={() => setConfirm(d)} aria-label={`Remove ${d.name}`}>
                  Remove…
                </button>
              ))}
          </li>
        ))}
      </ul>
      {devices && devices.length === 0 && <p class="muted">No devices yet.</p>}
    </Modal>
  );
}

/** Per contact: the safety number both sides compare, the device list, "Mark as verified". */
export function SafetyDialog({ store, c, onClose, initial }: { store: ChatStore; c: Conversation; onClose: () => void; initial?: string }) {
  const e = store.e2ee;
  const me = store.me.value!;
  const others = c.members.filter((m) => m.id !== me.id);
  const [who, setWho] = useState(initial ?? others[0]?.id ?? '');
  const v = useVersion(store);
  const [state, setState] = useState<{ number: string; contact: Contact; fps: string[] } | null>(null);
  const [error, setError] = useState('');
  const opening = useRef(true);
  useEffect(() => {
    if (!e || !who) return;
    let live = true;
    setState(null);
    // My devices afresh when the dialog opens; after that the cache (`devices` frames refresh it).
    const fresh = opening.current;
    opening.current = false;
    (async () => {
      const [mine, contact] = await Promise.all([e.devicesOf(me.id, fresh), e.contact(who)]);
      const number = await safetyNumber(
        { userId: me.id, keys: mine.map((d) => fromBase64(d.signatureKey)) },
        { userId: who, keys: contact.devices.map((d) => fromBase64(d.signatureKey)) },
      );
      const fps = await Promise.all(contact.devices.map((d) => keyFingerprint(fromBase64(d.signatureKey))));
      if (live) setState({ number, contact, fps });
    })().catch((err) => live && setError(describeError(err)));
    return () => {
      live = false;
    };
  }, [e, who, v]);
  const person = others.find((m) => m.id === who);
  const name = person ? person.displayName || person.username : '';
  return (
    <Modal title="Verify safety number" onClose={onClose}>
      {others.length > 1 && (
        <label class="safety-who">
          Contact{' '}
          <select value={who} onChange={(ev) => setWho(ev.currentTarget.value)}>
            {others.map((m) => (
              <option key={m.id} value={m.id}>
                {m.displayName || m.username}
              </option>
            ))}
          </select>
        </label>
      )}
      <p class="muted">
        Compare this number with {name}, in person or on a call. If it is the same on both sides, your messages go only to the devices you both have. It changes when either of you adds or removes a device.
      </p>
      <p class="muted">Each of you should also check that Account → Devices lists only your own devices.</p>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      {state && (
        <>
          <div class="safety-number" data-testid="safety-number" aria-label={`Safety number with ${name}`}>
            {groupDigits(state.number).map((g, i) => (
              <span key={i}>{g}</span>
            ))}
          </div>
          <p class="label-like">{name}'s devices</p>
          <ul class="device-list">
            {state.contact.devices.map((d, i) => (
              <li key={d.id} class="device">
                <span class="device-name">{d.name}</span> <code class="device-fp">{state.fps[i]}</code>
              </li>
            ))}
          </ul>
          {state.contact.verified ? (
            <p class="safety-verified" data-testid="verified">
              ✓ You verified {name}.
            </p>
          ) : (
            <button type="button" class="btn btn-primary" data-testid="mark-verified" onClick={() => void e!.markVerified(who).catch((err) => setError(describeError(err)))}>
              Mark as verified
            </button>
          )}
        </>
      )}
    </Modal>
  );
}

/** A warning in an encrypted conversation when a contact's devices changed since verified or first seen. */
export function DeviceChangeWarning({ store, c, onVerify }: { store: ChatStore; c: Conversation; onVerify: (userId: string) => void }) {
  const e = store.e2ee;
  const v = useVersion(store);
  const me = store.me.value!;
  const [changed, setChanged] = useState<Array<{ id: string; name: string }>>([]);
  const ids = c.members
    .map((m) => m.id)
    .filter((id) => id !== me.id)
    .join(',');
  useEffect(() => {
    if (!e) return;
    let live = true;
    Promise.all(
      c.members
        .filter((m) => m.id !== me.id)
        .map(async (m) => {
          const k = await e.contact(m.id);
          return k.changed ? { id: m.id, name: m.displayName || m.username } : null;
        }),
    ).then(
      (r) => live && setChanged(r.filter((x): x is { id: string; name: string } => !!x)),
      () => {},
    );
    return () => {
      live = false;
    };
  }, [e, v, ids]);
  if (changed.length === 0) return null;
  return (
    <div class="e2ee-warning" role="status" data-testid="device-change">
      {changed.map((x) => (
        <p key={x.id}>
          ⚠ {x.name}'s devices changed. Compare your safety number again before you share anything sensitive.{' '}
          <button type="button" class="btn btn-small" onClick={() => onVerify(x.id)}>
            Verify
          </button>{' '}
          <button type="button" class="btn btn-small" onClick={() => void e!.acknowledge(x.id)}>
            Dismiss
          </button>
        </p>
      ))}
    </div>
  );
}

/** A file encrypted on the client: fetched (ciphertext), decrypted here, shown or saved from an object URL. */
export function SealedAttachment({ store, a, tab }: { store: ChatStore; a: Attachment; tab: number }) {
  const [url, setUrl] = useState<string | null>(null);
  const [failed, setFailed] = useState(false);
  const image = a.contentType.startsWith('image/') && a.contentType !== 'image/svg+xml';
  const load = async (): Promise<string> => {
    if (url) return url;
    const s = a.sealed!;
    const res = await store.api.binary('GET', `/attachments/${encodeURIComponent(s.id)}`);
    const plain = await openFile(await res.arrayBuffer(), fromBase64(s.key), fromBase64(s.iv));
    const u = URL.createObjectURL(new Blob([plain], { type: s.type }));
    setUrl(u);
    return u;
  };
  useEffect(() => {
    if (image) load().catch(() => setFailed(true));
  }, [a.id]);
  useEffect(() => () => void (url && URL.revokeObjectURL(url)), [url]);
  const save = async () => {
    try {
      const u = await load();
      const link = document.createElement('a');
      link.href = u;
      link.download = a.name;
      document.body.appendChild(link);
      link.click();
      link.remove();
    } catch {
      setFailed(true);
    }
  };
  if (image && url) {
    return (
      <figure class="att-sealed-image" data-testid="sealed-image">
        <img src={url} alt={a.name} />
      </figure>
    );
  }
  return (
    <div class="att-file" data-testid="sealed-file">
      <span class="att-file-text">
        <button type="button" class="att-file-name linklike" tabIndex={tab} onClick={() => void save()} aria-label={`Download ${a.name}, ${typeLabel(a.contentType, a.name)}, ${formatSize(a.size)}`}>
          {a.name}
        </button>
        <span class="att-file-meta">
          {failed ? 'cannot be decrypted' : `${typeLabel(a.contentType, a.name)} · ${formatSize(a.size)} · encrypted`}
        </span>
      </span>
    </div>
  );
}
