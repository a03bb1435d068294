import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { cachedAvatar, loadAvatar } from '../avatars';
import { describeError } from '../errors';
import type { ChatStore } from '../store';
import type { User } from '../types';
import './avatar.css';

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const s = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] ?? '?').slice(0, 2);
  return s.toUpperCase();
}

const HUES = [210, 150, 280, 20, 330, 190, 45, 250];

/**
 * A person's profile photo when they have one (`avatar`, its version), else a coloured
 * circle with initials, which also show while the photo loads and when it fails. The
 * colour is set from JS (CSP forbids style attributes in HTML). The photo comes from
 * src/avatars.ts: fetched with the access token, shown from an object URL.
 */
export function Avatar({ name, id, online, avatar }: { name: string; id: string; online?: boolean; avatar?: string }) {
  const ref = useRef<HTMLSpanElement>(null);
  const [photo, setPhoto] = useState<string | null>(() => cachedAvatar(id, avatar));
  useEffect(() => {
    let h = 0;
    for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
    ref.current?.style.setProperty('--avatar-hue', String(HUES[h % HUES.length]));
  }, [id]);
  useEffect(() => {
    if (!avatar) return setPhoto(null);
    const ready = cachedAvatar(id, avatar);
    setPhoto(ready);
    if (ready) return;
    let live = true;
    void loadAvatar(id, avatar).then((url) => {
      if (live) setPhoto(url);
    });
    return () => {
      live = false;
    };
  }, [id, avatar]);
  return (
    <span class={photo ? 'avatar has-photo' : 'avatar'} ref={ref} aria-hidden="true">
      {photo ? <img class="avatar-photo" src={photo} alt="" onError={() => setPhoto(null)} /> : initials(name)}
      {online !== undefined && <span class={'presence ' + (online ? 'on' : 'off')} />}
    </span>
  );
}

export function Modal({ title, onClose, children }: { title: string; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  // Who opened the dialog (read at first render, before autofocus or showModal move the
  // focus), to give the focus back on close.
  const [opener] = useState(() => document.activeElement as HTMLElement | null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => {
      // Close first: while a modal dialog is open the rest of the page is inert.
      if (d?.open) d.close();
      if (opener && opener.isConnected) opener.focus();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      class="modal"
      aria-labelledby="modal-title"
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      <div class="modal-head">
        <h2 id="modal-title">{title}</h2>
        <button type="button" class="btn-icon" aria-label="Close" onClick={onClose}>
          ×
        </button>
      </div>
      {children}
    </dialog>
  );
}

/** Find people by name or username (anywhere in them) or exact email: GET /users?q= ranks them. */
export function UserSearch({
  store,
  label,
  actionLabel,
  exclude,
  onPick,
  autoFocus,
}: {
  autoFocus?: boolean;
  store: ChatStore;
  label: string;
  actionLabel: (u: User) => string;
  exclude?: Set<string>;
  onPick: (u: User) => void;
}) {
  const [q, setQ] = useState('');
  const [users, setUsers] = useState<User[] | null>(null);
  const [error, setError] = useState('');
  const seq = useRef(0);
  useEffect(() => {
    const query = q.trim();
    if (query.length < 1) {
      setUsers(null);
      return;
    }
    const n = ++seq.current;
    const h = setTimeout(async () => {
      try {
        const found = await store.searchUsers(query.toLowerCase());
        if (n === seq.current) {
          setUsers(found);
          setError('');
        }
      } catch (e) {
        if (n === seq.current) setError(describeError(e));
      }
    }, 200);
    return () => clearTimeout(h);
  }, [q]);
  const shown = users?.filter((u) => !exclude?.has(u.id)) ?? null;
  return (
    <div class="search">
      <label for="user-search">{label}</label>
      <input
        id="user-search"
        autoFocus={autoFocus}
        type="search"
        autocomplete="off"
        placeholder="Name, username or email"
        value={q}
        onInput={(e) => setQ(e.currentTarget.value)}
      />
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      <div role="status" class="sr-only">
        {shown ? `${shown.length} ${shown.length === 1 ? 'person' : 'people'} found` : ''}
      </div>
      {shown && shown.length === 0 && <p class="muted">No one found for “{q.trim()}”.</p>}
      {shown && shown.length > 0 && (
        <ul class="people">
          {shown.map((u) => (
            <li key={u.id}>
              <button type="button" class="person" onClick={() => onPick(u)} aria-label={actionLabel(u)}>
                <Avatar name={u.displayName || u.username} id={u.id} avatar={u.avatar} />
                <span class="person-text">
                  <span class="person-name">{u.displayName || u.username}</span>
                  <span class="muted">@{u.username}</span>
                </span>
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function timeShort(iso: string): string {
  const d = new Date(iso);
  return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

export function listTime(iso: string, now = new Date()): string {
  const d = new Date(iso);
  if (d.toDateString() === now.toDateString()) return timeShort(iso);
  const diff = (now.getTime() - d.getTime()) / 86400000;
  if (diff < 6) return d.toLocaleDateString(undefined, { weekday: 'short' });
  return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
}

/**
 * One labelled input with its hint and its error, in the one style every form uses: the
 * error under the field, the field marked `aria-invalid` and described by the error (and
 * the hint), so a screen reader says both when the focus arrives there.
 */
export function Field({
  id,
  label,
  error,
  hint,
  ...input
}: {
  id: string;
  label: string;
  error?: string;
  hint?: string;
} & Omit<JSX.InputHTMLAttributes<HTMLInputElement>, 'id' | 'label'>) {
  const described = [hint ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div class={'field' + (error ? ' has-error' : '')}>
      <label for={id}>{label}</label>
      <input id={id} {...input} aria-invalid={error ? 'true' : undefined} aria-describedby={described} />
      {hint && (
        <p id={`${id}-hint`} class="hint">
          {hint}
        </p>
      )}
      {error && (
        <p id={`${id}-error`} class="field-error" data-testid={`${id}-error`}>
          <span aria-hidden="true" class="field-error-icon">
            !
          </span>
          {error}
        </p>
      )}
    </div>
  );
}

/**
 * Errors of a form, per field (and one for the form as a whole). `show` sets them and
 * moves the focus to the first field in error, in the form's order.
 */
export function useFormErrors(order: string[], idOf: (field: string) => string = (f) => f) {
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState('');
  const [tick, setTick] = useState(0);
  // A layout effect: the focus moves in the same frame as the error appears.
  useLayoutEffect(() => {
    if (tick === 0) return;
    const first = order.find((f) => errors[f]);
    if (first) document.getElementById(idOf(first))?.focus();
  }, [tick]);
  return {
    errors,
    formError,
    /** Field errors (checked here or named by the server) and/or an error for the whole form. */
    show(fieldErrors: Record<string, string>, whole = '') {
      setErrors(fieldErrors);
      setFormError(whole);
      setTick((t) => t + 1);
    },
    clear(field?: string) {
      if (field === undefined) {
        setErrors({});
        setFormError('');
      } else if (errors[field]) {
        const { [field]: _gone, ...rest } = errors;
        setErrors(rest);
      }
    },
  };
}
