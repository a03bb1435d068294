// Attachments in the conversation view: what a message carries (images with their blurred
// preview and a lightbox, video, document cards, voice messages with a waveform), the
// composer's upload chips, and the voice recorder. Every file is fetched through a signed
// URL (GET /attachments/{id}/url): <img>, <audio>, <video> and links cannot send the access
// token, which never goes in a URL.
import { useEffect, useRef, useState } from 'preact/hooks';
import {
  attachmentKind,
  computePeaks,
  formatDuration,
  formatSize,
  MAX_VOICE_MS,
  microphoneError,
  percent,
  pseudoPeaks,
  typeLabel,
  voiceMimeType,
  type SignedUrls,
} from '../attachments';
import type { ChatStore } from '../store';
import type { Attachment } from '../types';
import { Icon } from './MessageParts';
import { SealedAttachment } from './Encryption';
import './attachments.css';

/** Images are shown at most this large (CSS px) in a message; the lightbox shows them whole. */
const IMAGE_BOX = 320;

/**
 * The signed URLs of an attachment, from the store's cache (fetched again shortly before
 * they expire). `renew` drops them and asks again, once per failure of an element.
 */
function useUrls(store: ChatStore, id: string): [SignedUrls | null, () => void] {
  const [u, setU] = useState<SignedUrls | null>(() => store.urls.peek(id) ?? null);
  const live = useRef(true);
  useEffect(() => {
    live.current = true;
    if (!u) store.urls.get(id).then((r) => live.current && setU(r), () => {});
    return () => {
      live.current = false;
    };
  }, [id]);
  const renew = () => {
    store.urls.drop(id);
    store.urls.get(id).then((r) => live.current && setU(r), () => {});
  };
  return [u, renew];
}

/** The size an image is shown at: its aspect ratio, within IMAGE_BOX × IMAGE_BOX. */
export function displaySize(w: number, h: number, box = IMAGE_BOX): { w: number; h: number } {
  const k = Math.min(1, box / w, box / h);
  return { w: Math.max(1, Math.round(w * k)), h: Math.max(1, Math.round(h * k)) };
}

export function AttachmentList({ store, list, tab }: { store: ChatStore; list: Attachment[]; tab: number }) {
  const [open, setOpen] = useState<Attachment | null>(null);
  return (
    <div class="att-list" data-testid="attachments">
      {list.map((a) => {
        if (a.sealed) return <SealedAttachment key={a.id} store={store} a={a} tab={tab} />;
        switch (attachmentKind(a)) {
          case 'image':
            return <ImageAttachment key={a.id} store={store} a={a} tab={tab} onOpen={() => setOpen(a)} />;
          case 'video':
            return <VideoAttachment key={a.id} store={store} a={a} />;
          case 'voice':
            return <VoicePlayer key={a.id} store={store} a={a} tab={tab} />;
          case 'audio':
            return <AudioAttachment key={a.id} store={store} a={a} tab={tab} />;
          default:
            return <FileCard key={a.id} store={store} a={a} tab={tab} />;
        }
      })}
      {open && <Lightbox store={store} a={open} onClose={() => setOpen(null)} />}
    </div>
  );
}

/**
 * An image: its box is reserved from the width and height the server measured (the width
 * and height attributes give the elements their aspect ratio before anything loads), the
 * blurred preview fills it at once, and the thumbnail (or the image) fades in over it.
 */
function ImageAttachment({ store, a, tab, onOpen }: { store: ChatStore; a: Attachment; tab: number; onOpen: () => void }) {
  const [u, renew] = useUrls(store, a.id);
  const [loaded, setLoaded] = useState(false);
  const retried = useRef(false);
  const { w, h } = displaySize(a.width!, a.height!);
  const src = u ? (a.thumbnail && u.thumbnailUrl ? u.thumbnailUrl : u.url) : undefined;
  return (
    <button type="button" class="att-image" tabIndex={tab} aria-label={`Open image ${a.name}`} onClick={onOpen} data-testid="att-image" data-w={a.width} data-h={a.height}>
      {a.preview ? (
        <img class="att-preview" src={a.preview} width={w} height={h} alt="" aria-hidden="true" />
      ) : (
        <svg class="att-sizer" viewBox={`0 0 ${w} ${h}`} width={w} height={h} aria-hidden="true" focusable="false" />
      )}
      {src && (
        <img
          class={'att-full' + (loaded ? ' loaded' : '')}
          src={src}
          width={w}
          height={h}
          alt={a.name}
          decoding="async"
          onLoad={() => setLoaded(true)}
          onError={() => {
            // An expired or refused URL: ask for a fresh one, once.
            if (retried.current) return;
            retried.current = true;
            renew();
          }}
        />
      )}
    </button>
  );
}

/** The image whole, in a modal dialog: Escape, the close button or a click closes it; the focus goes back. */
function Lightbox({ store, a, onClose }: { store: ChatStore; a: Attachment; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [u] = useUrls(store, a.id);
  // Who opened it (read before showModal moves the focus), to give the focus back.
  const [opener] = useState(() => document.activeElement as HTMLElement | null);
  useEffect(() => {
    const d = ref.current;
    // showModal makes the rest of the page inert: the focus stays in the dialog.
    if (d && !d.open) d.showModal();
    return () => {
      if (d?.open) d.close();
      if (opener && opener.isConnected) opener.focus();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      class="lightbox"
      aria-label={`Image: ${a.name}`}
      data-testid="lightbox"
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
      onClick={(e) => {
        // A click on the picture or around it closes; the bar's controls do their own thing.
        if (!(e.target as Element).closest('.lightbox-bar')) onClose();
      }}
    >
      <div class="lightbox-bar">
        <span class="lightbox-name">{a.name}</span>
        <span class="lightbox-size">
          {a.width} × {a.height} · {formatSize(a.size)}
        </span>
        {u && (
          <a class="btn btn-small" href={u.url} download={a.name}>
            <Icon name="download" /> Download
          </a>
        )}
        <button type="button" class="btn-icon lightbox-close" aria-label="Close" onClick={onClose} autoFocus>
          ×
        </button>
      </div>
      <div class="lightbox-body">
        {a.preview && <img class="lightbox-preview" src={a.preview} width={a.width} height={a.height} alt="" aria-hidden="true" />}
        {u && <img class="lightbox-img" src={u.url} width={a.width} height={a.height} alt={a.name} />}
      </div>
    </dialog>
  );
}

function VideoAttachment({ store, a }: { store: ChatStore; a: Attachment }) {
  const [u, renew] = useUrls(store, a.id);
  const retried = useRef(false);
  return (
    <div class="att-video-box">
      {/* The box is 16:9 from CSS before the metadata arrives (the server does not measure videos). */}
      <video
        class="att-video"
        controls
        preload="metadata"
        src={u?.url}
        aria-label={`Video ${a.name}`}
        onError={() => {
          if (!u || retried.current) return;
          retried.current = true;
          renew();
        }}
      />
      <span class="att-caption">
        {a.name} · {formatSize(a.size)}
      </span>
    </div>
  );
}

function AudioAttachment({ store, a, tab }: { store: ChatStore; a: Attachment; tab: number }) {
  const [u] = useUrls(store, a.id);
  return (
    <div class="att-audio">
      <audio controls preload="metadata" src={u?.url} tabIndex={tab} aria-label={`Audio ${a.name}`} />
      <span class="att-caption">
        {a.name} · {formatSize(a.size)}
      </span>
    </div>
  );
}

/** Saves a file from a fresh signed URL (the one held may have expired). */
async function download(store: ChatStore, a: Attachment): Promise<void> {
  const u = await store.urls.get(a.id);
  const link = document.createElement('a');
  link.href = u.url;
  link.download = a.name;
  document.body.appendChild(link);
  link.click();
  link.remove();
}

/** A document: its name, type and size, and a link that saves it (the server sends it as an attachment). */
function FileCard({ store, a, tab }: { store: ChatStore; a: Attachment; tab: number }) {
  const [u] = useUrls(store, a.id);
  const kind = typeLabel(a.contentType, a.name);
  return (
    <div class="att-file" data-testid="att-file">
      <span class="att-file-icon" aria-hidden="true">
        <Icon name="file" />
      </span>
      <span class="att-file-text">
        <a
          class="att-file-name"
          href={u?.url ?? '#'}
          download={a.name}
          tabIndex={tab}
          aria-label={`Download ${a.name}, ${kind}, ${formatSize(a.size)}`}
          onClick={(e) => {
            // No URL yet, or one about to expire: fetch a fresh one first.
            if (!store.urls.peek(a.id)) {
              e.preventDefault();
              void download(store, a).catch(() => (store.notice.value = `${a.name} cannot be downloaded right now.`));
            }
          }}
        >
          {a.name}
        </a>
        <span class="att-file-meta">
          {kind} · {formatSize(a.size)}
        </span>
      </span>
      <span class="att-file-dl" aria-hidden="true">
        <Icon name="download" />
      </span>
    </div>
  );
}

const BARS = 40;
/** Waveforms computed on this page, by attachment id (decoding is the costly part). */
const peaksCache = new Map<string, Peaks>();

interface Peaks {
  bars: number[];
  /** Decoded from the recording, or made up from the id (decoding failed), or not yet known. */
  source: 'decoded' | 'pseudo' | 'pending';
}

/**
 * The peaks of a voice message: decoded in the browser (Web Audio decodeAudioData on an
 * OfflineAudioContext, which needs no user gesture), or, when that fails, a stable
 * pseudo-waveform from the id, so that the player never jumps or stays empty.
 */
function usePeaks(id: string, url: string | undefined): Peaks {
  const [peaks, setPeaks] = useState<Peaks | null>(() => peaksCache.get(id) ?? null);
  useEffect(() => {
    if (peaks || !url) return;
    let live = true;
    const done = (p: Peaks) => {
      peaksCache.set(id, p);
      if (live) setPeaks(p);
    };
    (async () => {
      const res = await fetch(url, { credentials: 'same-origin' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const data = await res.arrayBuffer();
      const Ctx = window.OfflineAudioContext;
      if (!Ctx) throw new Error('no Web Audio');
      const buf = await new Ctx(1, 1, 48000).decodeAudioData(data);
      return computePeaks(buf.getChannelData(0), BARS);
    })().then(
      (bars) => done({ bars, source: 'decoded' }),
      () => done({ bars: pseudoPeaks(id, BARS), source: 'pseudo' }),
    );
    return () => {
      live = false;
    };
  }, [id, url]);
  return peaks ?? { bars: new Array<number>(BARS).fill(0.06), source: 'pending' };
}

/** A voice message: play/pause, the position and duration, and the waveform (played part coloured). */
function VoicePlayer({ store, a, tab }: { store: ChatStore; a: Attachment; tab: number }) {
  const [u, renew] = useUrls(store, a.id);
  const audio = useRef<HTMLAudioElement>(null);
  const [playing, setPlaying] = useState(false);
  const [pos, setPos] = useState(0);
  const retried = useRef(false);
  const peaks = usePeaks(a.id, u?.url);
  const total = a.durationMs ?? 0;
  const played = total > 0 ? Math.min(1, pos / total) : 0;
  const toggle = () => {
    const el = audio.current;
    if (!el) return;
    if (el.paused) void el.play().catch(() => setPlaying(false));
    else el.pause();
  };
  return (
    <div class={'att-voice' + (playing ? ' playing' : '')} data-testid="att-voice">
      <button type="button" class="btn-icon voice-play" tabIndex={tab} onClick={toggle} aria-label={playing ? 'Pause voice message' : `Play voice message, ${formatDuration(total)}`} disabled={!u}>
        <Icon name={playing ? 'pause' : 'play'} />
      </button>
      <svg class="waveform" viewBox={`0 0 ${BARS * 4} 32`} width={BARS * 4} height="32" aria-hidden="true" focusable="false" data-testid="waveform" data-source={peaks.source}>
        {peaks.bars.map((p, i) => {
          const h = Math.max(2, Math.round(p * 30));
          return <rect key={i} x={i * 4} y={16 - h / 2} width="2.5" height={h} rx="1" class={i / BARS < played ? 'on' : undefined} />;
        })}
      </svg>
      <span class="voice-time" data-testid="voice-time">
        {playing || pos > 0 ? `${formatDuration(pos)} / ${formatDuration(total)}` : formatDuration(total)}
      </span>
      <audio
        ref={audio}
        preload="metadata"
        src={u?.url}
        onPlay={() => setPlaying(true)}
        onPause={() => setPlaying(false)}
        onEnded={() => {
          setPlaying(false);
          setPos(0);
        }}
        onTimeUpdate={(e) => setPos(e.currentTarget.currentTime * 1000)}
        onError={() => {
          if (!u || retried.current) return;
          retried.current = true;
          renew();
        }}
      />
    </div>
  );
}

/** The files of the next message: name, size, progress, the server's refusal, and cancel/remove. */
export function UploadChips({ store, conversationId }: { store: ChatStore; conversationId: string }) {
  const q = store.uploads.value[conversationId] ?? [];
  const uploading = q.filter((u) => u.status === 'uploading').length;
  const ready = q.filter((u) => u.status === 'done' && !u.voice).length;
  // Announced politely as it changes (the bars themselves are not live regions).
  const status = uploading ? `Uploading ${uploading === 1 ? '1 file' : `${uploading} files`}…` : ready ? `${ready === 1 ? '1 file' : `${ready} files`} ready to send` : '';
  return (
    <>
      <p class="sr-only" aria-live="polite" data-testid="upload-status">
        {status}
      </p>
      {q.length > 0 && (
        <ul class="upload-chips" aria-label="Files to send" data-testid="upload-chips">
          {q.map((u) => {
            const label = u.voice ? 'Voice message' : u.name;
            return (
              <li key={u.key} class={'upload-chip ' + u.status} data-testid="upload-chip" data-status={u.status}>
                <span class="chip-icon" aria-hidden="true">
                  <Icon name={u.voice ? 'mic' : 'file'} />
                </span>
                <span class="chip-text">
                  <span class="chip-name">{label}</span>
                  <span class="chip-meta">
                    {u.status === 'uploading' ? `${formatSize(u.loaded)} of ${formatSize(u.size)}` : formatSize(u.size)}
                    {u.status === 'done' && u.voice ? ' · sending' : ''}
                  </span>
                  {u.status === 'uploading' && <progress class="chip-progress" max={100} value={percent(u)} aria-label={`Uploading ${label}`} />}
                  {u.status === 'error' && (
                    <span class="chip-error" role="alert" data-testid="upload-error">
                      {u.error}
                    </span>
                  )}
                </span>
                <button type="button" class="btn-icon chip-remove" aria-label={u.status === 'uploading' ? `Cancel upload of ${label}` : `Remove ${label}`} onClick={() => store.cancelUpload(conversationId, u.key)}>
                  ×
                </button>
              </li>
            );
          })}
        </ul>
      )}
    </>
  );
}

interface Recording {
  rec: MediaRecorder;
  stream: MediaStream;
  chunks: Blob[];
  type: string;
  started: number;
  timer: ReturnType<typeof setInterval>;
  send: boolean;
}

/**
 * The voice recorder: a microphone button; while recording, a timer, Cancel and "Stop and
 * send". It stops (and sends) by itself a second before the server's length limit.
 */
export function VoiceRecorder({ store, conversationId, disabled, onState }: { store: ChatStore; conversationId: string; disabled: boolean; onState: (recording: boolean) => void }) {
  const [state, setState] = useState<'idle' | 'asking' | 'recording'>('idle');
  const [elapsed, setElapsed] = useState(0);
  const [error, setError] = useState('');
  const cur = useRef<Recording | null>(null);
  const stopButton = useRef<HTMLButtonElement>(null);
  const micButton = useRef<HTMLButtonElement>(null);

  const finish = (send: boolean) => {
    const r = cur.current;
    if (!r) return;
    r.send = send;
    clearInterval(r.timer);
    if (r.rec.state !== 'inactive') r.rec.stop();
    else r.stream.getTracks().forEach((t) => t.stop());
  };
  // Leaving the conversation while recording: nothing is sent.
  useEffect(() => () => finish(false), []);
  useEffect(() => onState(state === 'recording'), [state]);

  const start = async () => {
    setError('');
    if (typeof MediaRecorder === 'undefined' || !navigator.mediaDevices?.getUserMedia) {
      setError('Voice messages cannot be recorded in this browser.');
      return;
    }
    const type = voiceMimeType((t) => MediaRecorder.isTypeSupported(t));
    if (!type) {
      setError('This browser cannot record Opus audio, which voice messages use.');
      return;
    }
    setState('asking');
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (e) {
      setState('idle');
      setError(microphoneError(e));
      return;
    }
    const rec = new MediaRecorder(stream, { mimeType: type });
    const r: Recording = { rec, stream, chunks: [], type, started: Date.now(), timer: 0 as unknown as ReturnType<typeof setInterval>, send: false };
    rec.ondataavailable = (e) => {
      if (e.data.size > 0) r.chunks.push(e.data);
    };
    rec.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      clearInterval(r.timer);
      if (cur.current === r) cur.current = null;
      setState('idle');
      setElapsed(0);
      micButton.current?.focus();
      if (!r.send || r.chunks.length === 0) return;
      const base = type.split(';')[0];
      const ext = base === 'audio/ogg' ? 'ogg' : 'webm';
      const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
      const file = new File(r.chunks, `voice-${stamp}.${ext}`, { type: base });
      store.attach(conversationId, [file], true);
    };
    r.timer = setInterval(() => {
      const ms = Date.now() - r.started;
      setElapsed(ms);
      if (ms >= MAX_VOICE_MS - 1000) finish(true);
    }, 250);
    cur.current = r;
    rec.start(1000);
    setElapsed(0);
    setState('recording');
    requestAnimationFrame(() => stopButton.current?.focus());
  };

  return (
    <>
      {state === 'recording' ? (
        <div class="recorder" data-testid="recorder">
          <span class="rec-dot" aria-hidden="true" />
          <span class="rec-time" role="timer" aria-label={`Recording, ${formatDuration(elapsed)}`} data-testid="rec-time">
            {formatDuration(elapsed)}
          </span>
          <span class="rec-limit">of {formatDuration(MAX_VOICE_MS)}</span>
          <button type="button" class="btn btn-small" onClick={() => finish(false)} aria-label="Cancel recording">
            Cancel
          </button>
          <button type="button" class="btn btn-small btn-primary" ref={stopButton} onClick={() => finish(true)} aria-label="Stop and send voice message" data-testid="rec-send">
            <Icon name="send" /> Send
          </button>
        </div>
      ) : (
        <button
          type="button"
          class="btn-icon composer-tool"
          ref={micButton}
          aria-label="Record a voice message"
          title="Record a voice message"
          disabled={disabled || state === 'asking'}
          onClick={() => void start()}
          data-testid="record"
        >
          <Icon name="mic" />
        </button>
      )}
      {error && (
        <p class="composer-error" role="alert" data-testid="record-error">
          {error}
          <button type="button" class="btn-icon" aria-label="Dismiss" onClick={() => setError('')}>
            ×
          </button>
        </p>
      )}
    </>
  );
}
