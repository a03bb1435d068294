import { describe, expect, it, vi } from 'vitest';
import { ApiClient, ApiError } from '../src/api';
import {
  addUploads,
  attachmentKind,
  attachmentsSummary,
  canSend,
  computePeaks,
  describeUploadError,
  formatDuration,
  formatSize,
  MAX_ATTACHMENTS,
  microphoneError,
  percent,
  previewText,
  pseudoPeaks,
  readyAttachments,
  removeUpload,
  typeLabel,
  uploadDone,
  uploadFailed,
  uploadFile,
  uploadProgress,
  UrlCache,
  voiceMimeType,
  type XhrLike,
} from '../src/attachments';
import { LocalState, MemoryStorage } from '../src/persist';
import type { Attachment } from '../src/types';
import { json, jwt, session } from './helpers';

const att = (over: Partial<Attachment> = {}): Attachment => ({ id: 'a_1', name: 'photo.jpg', contentType: 'image/jpeg', size: 1000, width: 800, height: 600, ...over });
const file = (name: string, size = 100, type = 'text/plain') => ({ name, size, type });

describe('sizes and durations in words', () => {
  it('formats sizes in human units', () => {
    expect(formatSize(0)).toBe('0 B');
    expect(formatSize(812)).toBe('812 B');
    expect(formatSize(1023)).toBe('1023 B');
    expect(formatSize(1024)).toBe('1.0 KB');
    expect(formatSize(4300)).toBe('4.2 KB');
    expect(formatSize(183211)).toBe('179 KB');
    expect(formatSize(1024 * 1024 - 1)).toBe('1.0 MB');
    expect(formatSize(1.4 * 1024 * 1024)).toBe('1.4 MB');
    expect(formatSize(100 * 1024 * 1024)).toBe('100 MB');
    expect(formatSize(3 * 1024 ** 3)).toBe('3.0 GB');
    expect(formatSize(-1)).toBe('');
    expect(formatSize(NaN)).toBe('');
  });

  it('formats durations as m:ss, h:mm:ss from an hour', () => {
    expect(formatDuration(0)).toBe('0:00');
    expect(formatDuration(7120)).toBe('0:07');
    expect(formatDuration(59_600)).toBe('1:00');
    expect(formatDuration(15 * 60_000)).toBe('15:00');
    expect(formatDuration(3_725_000)).toBe('1:02:05');
    expect(formatDuration(Infinity)).toBe('0:00');
  });
});

describe('what an attachment is shown as', () => {
  it('shows as images only what the server decoded and measured', () => {
    expect(attachmentKind(att())).toBe('image');
    expect(attachmentKind(att({ contentType: 'image/svg+xml' }))).toBe('file');
    expect(attachmentKind(att({ width: undefined, height: undefined }))).toBe('file');
    expect(attachmentKind(att({ contentType: 'video/mp4', width: undefined }))).toBe('video');
    expect(attachmentKind(att({ contentType: 'audio/webm', durationMs: 7000 }))).toBe('voice');
    expect(attachmentKind(att({ contentType: 'audio/mpeg' }))).toBe('audio');
    expect(attachmentKind(att({ contentType: 'application/pdf' }))).toBe('file');
  });

  it('names types in a word', () => {
    expect(typeLabel('application/pdf', 'a.pdf')).toBe('PDF');
    expect(typeLabel('text/plain; charset=utf-8', 'notes.txt')).toBe('Text');
    expect(typeLabel('application/octet-stream', 'data.bin')).toBe('BIN file');
    expect(typeLabel('application/octet-stream', 'noext')).toBe('File');
    expect(typeLabel('application/x-whatever', 'x.docx')).toBe('DOCX file');
  });

  it('summarises files for the conversation list, and the text without its Markdown', () => {
    expect(attachmentsSummary([att()])).toBe('📎 photo.jpg');
    expect(attachmentsSummary([att({ contentType: 'audio/ogg', durationMs: 7120, name: 'voice.ogg' })])).toBe('🎤 Voice message 0:07');
    expect(attachmentsSummary([att(), att({ id: 'a_2' }), att({ id: 'a_3' })])).toBe('📎 3 files');
    expect(attachmentsSummary(undefined)).toBe('');
    expect(previewText({ body: '', attachments: [att()] })).toBe('📎 photo.jpg');
    expect(previewText({ body: 'Look at **this**\n\n> quoted', attachments: [att()] })).toBe('📎 photo.jpg Look at this quoted');
    expect(previewText({ body: 'just [text](https://example.com)' })).toBe('just text');
    // The conversation list's lastMessage comes without its files: still not an empty preview.
    expect(previewText({ body: '' })).toBe('📎 Attachment');
  });
});

describe('the upload queue', () => {
  it('adds files, follows progress, completion and refusal, and removes', () => {
    let { queue, added, refused } = addUploads([], [file('a.txt', 200), file('b.txt', 50)]);
    expect(refused).toBe(0);
    expect(added.map((u) => u.status)).toEqual(['uploading', 'uploading']);
    const [a, b] = added;
    expect(canSend(queue, '')).toBe(false);
    expect(canSend(queue, 'hello')).toBe(false); // a file of it is still uploading

    queue = uploadProgress(queue, a.key, 100);
    expect(percent(queue[0])).toBe(50);
    // Progress never goes back, nor past the size.
    queue = uploadProgress(queue, a.key, 20);
    expect(queue[0].loaded).toBe(100);
    queue = uploadProgress(queue, a.key, 10_000);
    expect(queue[0].loaded).toBe(200);

    queue = uploadDone(queue, a.key, att({ id: 'a_A', name: 'a.txt' }));
    queue = uploadFailed(queue, b.key, 'The file is larger than the limit of 1 MiB');
    expect(queue.map((u) => u.status)).toEqual(['done', 'error']);
    expect(percent(queue[0])).toBe(100);
    // A refused file does not stop the others from being sent, and is not sent.
    expect(canSend(queue, '')).toBe(true);
    expect(readyAttachments(queue).map((x) => x.id)).toEqual(['a_A']);
    // Progress after the end changes nothing.
    expect(uploadProgress(queue, b.key, 10)).toBe(queue);

    queue = removeUpload(queue, b.key);
    expect(queue.map((u) => u.name)).toEqual(['a.txt']);
    expect(removeUpload(queue, 'nope')).toBe(queue);
  });

  it('takes at most 10 files per message, refused ones not counted', () => {
    let r = addUploads([], Array.from({ length: 12 }, (_, i) => file(`f${i}`)));
    expect(r.queue.length).toBe(MAX_ATTACHMENTS);
    expect(r.refused).toBe(2);
    expect(addUploads(r.queue, [file('more')]).refused).toBe(1);
    const q = uploadFailed(r.queue, r.queue[0].key, 'too large');
    r = addUploads(q, [file('x'), file('y')]);
    expect(r.refused).toBe(1);
    expect(r.added.map((u) => u.name)).toEqual(['x']);
  });

  it('keeps a voice message apart: it goes alone, not with the next message', () => {
    const { queue, added } = addUploads([], [file('v.webm', 10, 'audio/webm')], { voice: true });
    expect(added[0].voice).toBe(true);
    const done = uploadDone(queue, added[0].key, att({ id: 'a_v', contentType: 'audio/webm', durationMs: 3000 }));
    expect(readyAttachments(done)).toEqual([]);
    expect(canSend(done, '')).toBe(false);
    // And an uploading voice message does not hold the text back.
    expect(canSend(queue, 'text')).toBe(true);
  });
});

describe('signed URL cache', () => {
  it('keeps URLs until shortly before they expire, then asks again; one request at a time', async () => {
    let now = Date.parse('2026-12-01T10:00:00Z');
    let n = 0;
    const fetchUrls = vi.fn(async (id: string) => ({ url: `/api/v1/attachments/${id}?s=${++n}`, expiresAt: new Date(now + 30 * 60_000).toISOString() }));
    const cache = new UrlCache(fetchUrls, () => now, 60_000);
    const [a, b] = await Promise.all([cache.get('a_1'), cache.get('a_1')]);
    expect(a).toBe(b);
    expect(fetchUrls).toHaveBeenCalledTimes(1);
    now += 28 * 60_000; // 2 minutes left
    expect((await cache.get('a_1')).url).toBe(a.url);
    expect(cache.peek('a_1')).toBe(a);
    now += 61_000; // under a minute left: too close
    expect(cache.peek('a_1')).toBeUndefined();
    const c = await cache.get('a_1');
    expect(c.url).not.toBe(a.url);
    expect(fetchUrls).toHaveBeenCalledTimes(2);
    // drop forgets (a load failed).
    cache.drop('a_1');
    expect(cache.peek('a_1')).toBeUndefined();
  });

  it('does not keep a failure', async () => {
    const fetchUrls = vi.fn().mockRejectedValueOnce(new ApiError(404, 'not_found', 'gone')).mockResolvedValueOnce({ url: '/u', expiresAt: new Date(Date.now() + 1e6).toISOString() });
    const cache = new UrlCache(fetchUrls);
    await expect(cache.get('a_1')).rejects.toThrow('gone');
    expect((await cache.get('a_1')).url).toBe('/u');
  });
});

describe('waveform peaks', () => {
  it('takes the loudest sample of each slice, scaled to the loudest bar', () => {
    const samples = new Float32Array(400);
    for (let i = 0; i < 100; i++) samples[i] = 0.1 * Math.sin(i);
    for (let i = 100; i < 200; i++) samples[i] = i === 150 ? -0.8 : 0.2;
    for (let i = 300; i < 400; i++) samples[i] = 0.4;
    const p = computePeaks(samples, 4);
    expect(p.length).toBe(4);
    expect(p[1]).toBe(1); // |−0.8| is the loudest
    expect(p[3]).toBeCloseTo(0.5);
    expect(p[2]).toBeCloseTo(0.06); // silence: a low line, not nothing
    expect(p[0]).toBeGreaterThan(0.06);
    expect(p[0]).toBeLessThan(0.2);
  });

  it('copes with silence, fewer samples than bars, and nothing', () => {
    expect(computePeaks(new Float32Array(100), 5)).toEqual([0.06, 0.06, 0.06, 0.06, 0.06]);
    expect(computePeaks([0.5, -1], 4)).toEqual([0.5, 0.5, 1, 1]);
    expect(computePeaks([], 3)).toEqual([0, 0, 0]);
  });

  it('makes a stable pseudo-waveform from an id', () => {
    const a = pseudoPeaks('a_abc', 40);
    expect(a.length).toBe(40);
    expect(pseudoPeaks('a_abc', 40)).toEqual(a);
    expect(pseudoPeaks('a_abd', 40)).not.toEqual(a);
    expect(Math.min(...a)).toBeGreaterThanOrEqual(0.15);
    expect(Math.max(...a)).toBeLessThanOrEqual(1);
    expect(new Set(a.map((v) => v.toFixed(2))).size).toBeGreaterThan(10);
  });
});

describe('recording', () => {
  it('picks Opus in WebM, else in Ogg, else none', () => {
    expect(voiceMimeType(() => true)).toBe('audio/webm;codecs=opus');
    expect(voiceMimeType((t) => t.startsWith('audio/ogg'))).toBe('audio/ogg;codecs=opus');
    expect(voiceMimeType(() => false)).toBeNull();
  });

  it('says why the microphone cannot be used', () => {
    expect(microphoneError({ name: 'NotAllowedError' })).toMatch(/may not use the microphone/);
    expect(microphoneError({ name: 'NotFoundError' })).toMatch(/No microphone was found/);
    expect(microphoneError({ name: 'NotReadableError' })).toMatch(/in use/);
    expect(microphoneError(new Error('x'))).toMatch(/cannot be recorded/);
  });
});

/** An XMLHttpRequest stand-in that answers what the test says. */
class FakeXhr implements XhrLike {
  static made: FakeXhr[] = [];
  method = '';
  url = '';
  headers: Record<string, string> = {};
  body: Blob | null = null;
  status = 0;
  responseText = '';
  responseHeaders: Record<string, string> = {};
  aborted = false;
  upload: XhrLike['upload'] = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  constructor() {
    FakeXhr.made.push(this);
  }
  open(method: string, url: string) {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(n: string, v: string) {
    this.headers[n] = v;
  }
  send(body: Blob) {
    this.body = body;
  }
  abort() {
    this.aborted = true;
    this.onabort?.();
  }
  getResponseHeader(n: string) {
    return this.responseHeaders[n] ?? null;
  }
  answer(status: number, body: unknown, headers: Record<string, string> = {}) {
    this.status = status;
    this.responseText = JSON.stringify(body);
    this.responseHeaders = headers;
    this.onload?.();
  }
}

describe('uploading a file', () => {
  async function signedIn() {
    const token = jwt(900);
    const fetchFn = vi.fn(async (url: string) => (url.endsWith('/auth/refresh') ? json(200, session(jwt(900))) : json(200, session(token))));
    const api = new ApiClient(fetchFn);
    await api.login('alice', 'pw');
    return { api, fetchFn };
  }
  const tick = () => new Promise((r) => setTimeout(r, 0));

  it('sends the raw file with its name percent-encoded and the token in a header, reporting progress', async () => {
    FakeXhr.made = [];
    const { api } = await signedIn();
    const progress: number[] = [];
    const blob = new Blob(['hello']);
    const h = uploadFile(api, blob, 'Ünïcode report #1.pdf', (n) => progress.push(n), () => new FakeXhr());
    const x = FakeXhr.made[0];
    expect(x.method).toBe('POST');
    expect(x.url).toBe('/api/v1/attachments');
    expect(x.url).not.toContain('token');
    expect(x.headers.Authorization).toBe(`Bearer ${api.accessToken}`);
    expect(x.headers['X-Filename']).toBe(encodeURIComponent('Ünïcode report #1.pdf'));
    expect(x.body).toBe(blob);
    x.upload.onprogress?.({ loaded: 3, lengthComputable: true });
    x.answer(201, att({ id: 'a_up' }));
    expect((await h.promise).id).toBe('a_up');
    expect(progress).toEqual([3]);
  });

  it('gives the server error (code, message, Retry-After), in words on the chip', async () => {
    FakeXhr.made = [];
    const { api } = await signedIn();
    const h = uploadFile(api, new Blob(['x']), 'big.bin', () => {}, () => new FakeXhr());
    FakeXhr.made[0].answer(413, { error: { code: 'attachment_too_large', message: 'the file is larger than the limit of 1 MiB', field: 'file' } });
    const e = await h.promise.catch((x) => x);
    expect(e).toMatchObject({ status: 413, code: 'attachment_too_large', field: 'file' });
    expect(describeUploadError(e)).toBe('The file is larger than the limit of 1 MiB');

    const h2 = uploadFile(api, new Blob(['x']), 'a', () => {}, () => new FakeXhr());
    FakeXhr.made[1].answer(429, { error: { code: 'rate_limited', message: 'you are uploading too fast; wait a moment' } }, { 'Retry-After': '7' });
    expect(describeUploadError(await h2.promise.catch((x) => x))).toBe('you are uploading too fast; wait a moment Try again in 7 s.');

    const h3 = uploadFile(api, new Blob(['x']), 'a', () => {}, () => new FakeXhr());
    FakeXhr.made[2].onerror?.();
    expect(describeUploadError(await h3.promise.catch((x) => x))).toMatch(/can't reach Parley/);
  });

  it('refreshes an expired token once and sends again', async () => {
    FakeXhr.made = [];
    const { api, fetchFn } = await signedIn();
    const old = api.accessToken;
    const h = uploadFile(api, new Blob(['x']), 'a', () => {}, () => new FakeXhr());
    FakeXhr.made[0].answer(401, { error: { code: 'unauthorized', message: 'expired' } });
    await tick();
    await tick();
    expect(fetchFn.mock.calls.some(([u]) => String(u).endsWith('/auth/refresh'))).toBe(true);
    expect(FakeXhr.made.length).toBe(2);
    expect(FakeXhr.made[1].headers.Authorization).toBe(`Bearer ${api.accessToken}`);
    expect(api.accessToken).not.toBe(old);
    FakeXhr.made[1].answer(201, att({ id: 'a_2' }));
    expect((await h.promise).id).toBe('a_2');
  });

  it('aborts the request when cancelled', async () => {
    FakeXhr.made = [];
    const { api } = await signedIn();
    const h = uploadFile(api, new Blob(['x']), 'a', () => {}, () => new FakeXhr());
    h.abort();
    expect(FakeXhr.made[0].aborted).toBe(true);
    await expect(h.promise).rejects.toMatchObject({ code: 'aborted' });
  });
});

describe('unsent messages with files survive a reload', () => {
  it('keeps the attachments of a pending message, and drops a message whose files cannot be read back', () => {
    const storage = new MemoryStorage();
    const local = new LocalState(storage, 'u_1');
    const files = [att({ id: 'a_1' }), att({ id: 'a_2', name: 'b.pdf', contentType: 'application/pdf' })];
    local.putPending({ clientId: 'k1', conversationId: 'c1', body: '', createdAt: '2026-12-01T10:00:00Z', status: 'pending', attachments: files });
    expect(new LocalState(storage, 'u_1').pending()).toMatchObject([{ clientId: 'k1', attachments: files }]);
    // A tampered entry: its files are not attachments any more.
    const raw = JSON.parse(storage.getItem('parley:v1:u_1:pending')!);
    raw.k1.attachments = [{ id: 5 }];
    storage.setItem('parley:v1:u_1:pending', JSON.stringify(raw));
    expect(new LocalState(storage, 'u_1').pending()).toEqual([]);
  });
});
