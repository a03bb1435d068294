// Attachments on the client (docs/api.md "Attachments"): the upload queue of the composer
// as pure state, the upload itself (XMLHttpRequest, for its upload progress), signed URLs
// cached until shortly before they expire, sizes and durations in words, and the peaks of a
// voice message's waveform. UI-free, so the rules are unit-tested.
import { ApiError, type ApiClient } from './api';
import { plainText } from './markdown';
import type { Attachment, Message } from './types';

/** How many attachments one message may carry (the server's limit). */
export const MAX_ATTACHMENTS = 10;
/** The server's default -max-voice-length: the recorder stops (and sends) there. */
export const MAX_VOICE_MS = 15 * 60 * 1000;

// ------------------------------------------------------------------ words

/** A size in human units: "812 B", "4.2 KB", "183 KB", "1.4 MB" (1 KB = 1024 bytes). */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '';
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  // One decimal under 10 ("4.2 MB"), none above ("183 KB"); 1023.6 KB is "1.0 MB", not "1024 KB".
  let s = v < 9.95 ? v.toFixed(1) : String(Math.round(v));
  if (s === '1024' && i < units.length - 1) {
    s = '1.0';
    i++;
  }
  return `${s} ${units[i]}`;
}

/** A duration as m:ss (h:mm:ss from an hour): 7120 ms is "0:07". */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.round((Number.isFinite(ms) ? ms : 0) / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export type AttachmentKind = 'image' | 'video' | 'voice' | 'audio' | 'file';

/** How an attachment is shown, from the server's sniffed type (never the uploader's claim). */
export function attachmentKind(a: Pick<Attachment, 'contentType' | 'width' | 'height' | 'durationMs'>): AttachmentKind {
  const t = a.contentType.toLowerCase();
  // Only what the server decoded (so it has dimensions) is shown as an image: an SVG is a file.
  if (/^image\/(jpeg|png|gif|webp)$/.test(t) && a.width && a.height) return 'image';
  if (t.startsWith('video/')) return 'video';
  if (t.startsWith('audio/')) return a.durationMs !== undefined ? 'voice' : 'audio';
  return 'file';
}

/** What a file's type is, in a word or two, for a document card ("PDF", "ZIP archive", "Text"). */
export function typeLabel(contentType: string, name: string): string {
  const t = contentType.toLowerCase().split(';')[0].trim();
  const known: Record<string, string> = {
    'application/pdf': 'PDF',
    'application/zip': 'ZIP archive',
    'application/x-gzip': 'Gzip archive',
    'application/gzip': 'Gzip archive',
    'application/json': 'JSON',
    'application/xml': 'XML',
    'text/xml': 'XML',
    'text/html': 'HTML',
    'text/plain': 'Text',
    'text/csv': 'CSV',
    'image/svg+xml': 'SVG image',
    'application/octet-stream': '',
  };
  const ext = /\.([A-Za-z0-9]{1,8})$/.exec(name)?.[1]?.toUpperCase() ?? '';
  if (t in known) return known[t] || (ext ? `${ext} file` : 'File');
  if (t.startsWith('image/')) return 'Image';
  if (t.startsWith('audio/')) return 'Audio';
  if (t.startsWith('video/')) return 'Video';
  if (t.startsWith('text/')) return 'Text';
  return ext ? `${ext} file` : 'File';
}

/**
 * A message's attachments in a line of text, for the conversation list and screen-reader
 * announcements: "📎 photo.jpg", "🎤 Voice message 0:07", "📎 3 files".
 */
export function attachmentsSummary(list: readonly Attachment[] | undefined): string {
  if (!list || list.length === 0) return '';
  if (list.length > 1) return `📎 ${list.length} files`;
  const a = list[0];
  if (attachmentKind(a) === 'voice') return `🎤 Voice message ${formatDuration(a.durationMs ?? 0)}`;
  return `📎 ${a.name}`;
}

/**
 * A message in one line of plain text (the conversation list, announcements): its files
 * first, then its text without Markdown: "📎 photo.jpg Look at this".
 */
export function previewText(m: Pick<Message, 'body' | 'attachments'>): string {
  const text = [attachmentsSummary(m.attachments), plainText(m.body)].filter(Boolean).join(' ');
  // A message is never empty: with no text, it carries files, which the conversation list's
  // lastMessage does not list (the server leaves them out there).
  return text || '📎 Attachment';
}

// ------------------------------------------------------------- upload queue

/** One file in the composer: uploading, uploaded (ready to send) or refused. */
export interface Upload {
  /** Local key (a file may be picked twice). */
  key: string;
  name: string;
  size: number;
  /** The browser's guess, for the chip's icon only. */
  type: string;
  status: 'uploading' | 'done' | 'error';
  /** Bytes sent so far. */
  loaded: number;
  /** The server's answer, once uploaded. */
  attachment?: Attachment;
  /** Why it failed, in words (the server's message where it gave one). */
  error?: string;
  /** A voice message: sent on its own as soon as it is uploaded. */
  voice?: boolean;
}

let uploadSeq = 0;

/**
 * Adds files to a queue, up to MAX_ATTACHMENTS that can still be sent (refused ones do not
 * count). Returns the new queue, the uploads added (to start) and how many were left out.
 */
export function addUploads(
  queue: readonly Upload[],
  files: ReadonlyArray<{ name: string; size: number; type: string }>,
  opts: { voice?: boolean } = {},
): { queue: Upload[]; added: Upload[]; refused: number } {
  const room = Math.max(0, MAX_ATTACHMENTS - queue.filter((u) => u.status !== 'error' && !u.voice).length);
  const take = opts.voice ? files.slice(0, 1) : files.slice(0, room);
  const added: Upload[] = take.map((f) => ({
    key: `u${++uploadSeq}`,
    name: f.name || 'file',
    size: f.size,
    type: f.type,
    status: 'uploading',
    loaded: 0,
    ...(opts.voice ? { voice: true } : {}),
  }));
  return { queue: [...queue, ...added], added, refused: files.length - take.length };
}

function update(queue: readonly Upload[], key: string, f: (u: Upload) => Upload): Upload[] {
  let changed = false;
  const next = queue.map((u) => {
    if (u.key !== key) return u;
    const n = f(u);
    if (n !== u) changed = true;
    return n;
  });
  return changed ? next : (queue as Upload[]);
}

export function uploadProgress(queue: readonly Upload[], key: string, loaded: number): Upload[] {
  return update(queue, key, (u) => (u.status === 'uploading' ? { ...u, loaded: Math.min(u.size, Math.max(u.loaded, loaded)) } : u));
}

export function uploadDone(queue: readonly Upload[], key: string, a: Attachment): Upload[] {
  return update(queue, key, (u) => ({ ...u, status: 'done', loaded: u.size, attachment: a, error: undefined }));
}

export function uploadFailed(queue: readonly Upload[], key: string, error: string): Upload[] {
  return update(queue, key, (u) => ({ ...u, status: 'error', error }));
}

export function removeUpload(queue: readonly Upload[], key: string): Upload[] {
  return queue.some((u) => u.key === key) ? queue.filter((u) => u.key !== key) : (queue as Upload[]);
}

/** Percent uploaded, 0..100. */
export function percent(u: Upload): number {
  if (u.status === 'done') return 100;
  return u.size > 0 ? Math.floor((u.loaded / u.size) * 100) : 0;
}

/** The uploads a message written now would carry (not the voice message, which goes alone). */
export function readyAttachments(queue: readonly Upload[]): Attachment[] {
  return queue.filter((u) => u.status === 'done' && !u.voice && u.attachment).map((u) => u.attachment!);
}

/** Whether the composer can send: text or a ready file, and no file of it still uploading. */
export function canSend(queue: readonly Upload[], text: string): boolean {
  if (queue.some((u) => u.status === 'uploading' && !u.voice)) return false;
  return text.trim() !== '' || readyAttachments(queue).length > 0;
}

// -------------------------------------------------------------------- upload

/** Words for an upload refused by the server: its own message, which names the limit. */
export function describeUploadError(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 0) return "Not uploaded: can't reach Parley. Check your connection.";
    if (e.code === 'rate_limited') {
      const s = e.retryAfter ? Math.ceil(e.retryAfter) : 0;
      return (e.message || 'Too many uploads') + (s > 0 ? ` Try again in ${s} s.` : ' Try again in a moment.');
    }
    if (e.message) return e.message.charAt(0).toUpperCase() + e.message.slice(1);
  }
  return 'Not uploaded. Please try again.';
}

export interface UploadHandle {
  promise: Promise<Attachment>;
  abort: () => void;
}

/** The parts of XMLHttpRequest an upload uses (tests pass a fake). */
export interface XhrLike {
  open(method: string, url: string): void;
  setRequestHeader(name: string, value: string): void;
  send(body: Blob): void;
  abort(): void;
  status: number;
  responseText: string;
  getResponseHeader(name: string): string | null;
  upload: { onprogress: ((e: { loaded: number; lengthComputable: boolean }) => void) | null };
  onload: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
}

/** The error of a failed upload's answer, as ApiClient reads errors. */
function errorOf(status: number, text: string, retryHeader: string | null): ApiError {
  let e: { code?: string; message?: string; retryAfter?: number; field?: string } = {};
  try {
    e = (JSON.parse(text) as { error?: typeof e }).error ?? {};
  } catch {
    /* not JSON: a proxy's page */
  }
  const retry = Number(retryHeader);
  return new ApiError(status, e.code ?? (status >= 500 ? 'internal' : `http_${status}`), e.message ?? '', e.retryAfter ?? (retry > 0 ? retry : undefined), e.field);
}

/**
 * Uploads a file as the raw request body (POST /attachments, X-Filename percent-encoded),
 * with progress. XMLHttpRequest rather than fetch: it reports upload progress, which
 * fetch does not (a streamed fetch body needs HTTP/2 or more and duplex in Chromium). An
 * expired token is refreshed once (the token goes in the Authorization header, never the
 * URL). `abort` cancels it: the server keeps nothing of a cut upload.
 */
export function uploadFile(
  api: ApiClient,
  file: Blob & { name?: string },
  name: string,
  onProgress: (loaded: number) => void,
  newXhr: () => XhrLike = () => new XMLHttpRequest() as unknown as XhrLike,
  /** `/api/v1/attachments?opaque=true` for a file encrypted on the client (stored as it is). */
  path = '/api/v1/attachments',
): UploadHandle {
  let cur: XhrLike | null = null;
  let aborted = false;
  const once = (token: string | null) =>
    new Promise<Attachment>((resolve, reject) => {
      const x = newXhr();
      cur = x;
      x.open('POST', path);
      if (token) x.setRequestHeader('Authorization', `Bearer ${token}`);
      x.setRequestHeader('X-Filename', encodeURIComponent(name));
      x.setRequestHeader('Accept', 'application/json');
      x.upload.onprogress = (e) => onProgress(e.loaded);
      x.onload = () => {
        if (x.status === 201 || x.status === 200) {
          try {
            resolve(JSON.parse(x.responseText) as Attachment);
          } catch {
            reject(new ApiError(x.status, 'internal', 'the server answered something unexpected'));
          }
        } else reject(errorOf(x.status, x.responseText, x.getResponseHeader('Retry-After')));
      };
      x.onerror = () => reject(new ApiError(0, 'network', 'network error'));
      x.onabort = () => reject(new ApiError(0, 'aborted', 'cancelled'));
      x.send(file);
    });
  const promise = (async () => {
    const used = api.accessToken;
    try {
      return await once(used);
    } catch (e) {
      if (aborted || !(e instanceof ApiError) || e.status !== 401 || e.code !== 'unauthorized') throw e;
      await api.refresh();
      if (aborted) throw new ApiError(0, 'aborted', 'cancelled');
      onProgress(0);
      return once(api.accessToken);
    }
  })();
  return {
    promise,
    abort: () => {
      aborted = true;
      cur?.abort();
    },
  };
}

// ------------------------------------------------------------ signed URLs

export interface SignedUrls {
  url: string;
  thumbnailUrl?: string;
  expiresAt: string;
}

/**
 * Signed URLs (GET /attachments/{id}/url) by attachment id, kept until `marginMs` before
 * they expire, then fetched again; one request per id at a time. What `<img>`, `<audio>`,
 * `<video>` and download links use: they cannot send the access token.
 */
export class UrlCache {
  private held = new Map<string, SignedUrls>();
  private asking = new Map<string, Promise<SignedUrls>>();

  constructor(
    private fetchUrls: (id: string) => Promise<SignedUrls>,
    private now: () => number = () => Date.now(),
    private marginMs = 60_000,
  ) {}

  /** The URLs held for an id while still good for `marginMs`, else undefined. */
  peek(id: string): SignedUrls | undefined {
    const u = this.held.get(id);
    if (!u) return undefined;
    if (Date.parse(u.expiresAt) - this.now() > this.marginMs) return u;
    this.held.delete(id);
    return undefined;
  }

  get(id: string): Promise<SignedUrls> {
    const u = this.peek(id);
    if (u) return Promise.resolve(u);
    let p = this.asking.get(id);
    if (!p) {
      p = this.fetchUrls(id).then(
        (r) => {
          this.asking.delete(id);
          this.held.set(id, r);
          return r;
        },
        (e) => {
          this.asking.delete(id);
          throw e;
        },
      );
      this.asking.set(id, p);
    }
    return p;
  }

  /** Forget an id's URLs (a load failed: they may have expired or been refused). */
  drop(id: string): void {
    this.held.delete(id);
  }
}

// ------------------------------------------------------------- waveforms

/**
 * The peaks of a recording, `bars` values in 0..1: the largest absolute sample of each
 * slice of the (first) channel, scaled so that the loudest bar is 1. Silence gives a flat
 * low line rather than nothing.
 */
export function computePeaks(samples: ArrayLike<number>, bars: number): number[] {
  const n = samples.length;
  const out = new Array<number>(bars).fill(0);
  if (n === 0 || bars <= 0) return out;
  for (let b = 0; b < bars; b++) {
    const from = Math.floor((b * n) / bars);
    const to = Math.max(from + 1, Math.floor(((b + 1) * n) / bars));
    let peak = 0;
    for (let i = from; i < to && i < n; i++) {
      const v = Math.abs(samples[i]);
      if (v > peak) peak = v;
    }
    out[b] = peak;
  }
  const max = Math.max(...out);
  return out.map((v) => (max > 0 ? Math.max(0.06, v / max) : 0.06));
}

/**
 * A stable pseudo-waveform from an id, for a recording the browser cannot decode: the same
 * id always gives the same bars (values in 0.15..1).
 */
export function pseudoPeaks(id: string, bars: number): number[] {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619) >>> 0;
  const out: number[] = [];
  for (let i = 0; i < bars; i++) {
    // xorshift32
    h ^= h << 13;
    h >>>= 0;
    h ^= h >>> 17;
    h ^= h << 5;
    h >>>= 0;
    out.push(0.15 + 0.85 * ((h % 1000) / 999));
  }
  return out;
}

/** The MediaRecorder type for voice messages: Opus in WebM, else in Ogg; null when neither. */
export function voiceMimeType(isSupported: (t: string) => boolean): string | null {
  for (const t of ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus']) if (isSupported(t)) return t;
  return null;
}

/** Words for a microphone that cannot be used (getUserMedia's error). */
export function microphoneError(e: unknown): string {
  const name = e && typeof e === 'object' && 'name' in e ? String((e as { name: unknown }).name) : '';
  if (name === 'NotAllowedError' || name === 'SecurityError') return 'Parley may not use the microphone. Allow it in the browser (the icon in the address bar) to record a voice message.';
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'No microphone was found. Connect one to record a voice message.';
  if (name === 'NotReadableError') return 'The microphone is in use by another application, or cannot be opened.';
  return 'Voice messages cannot be recorded in this browser.';
}
