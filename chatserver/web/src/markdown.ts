/**
 * A small Markdown subset for message text, parsed to a tree the view turns into Preact
 * nodes and text nodes: never HTML, so nothing in a message can become markup.
 *
 * Blocks: paragraphs (newlines kept), ``` or ~~~ code blocks, > quotes, - * + and 1. lists.
 * Inline: **bold** __bold__, *italic* _italic_, ~~strike~~, `code`, http(s):// and www.
 * links, [label](http(s) link). Anything else, unclosed markers included, stays literal
 * text; a backslash makes a marker literal. Links are http(s) only (a bare www. address
 * becomes https://).
 *
 * Every step is linear in the length of the text (no regular expression that can
 * backtrack over more than one line, markers matched with a stack whose entries are each
 * pushed and popped once), so no message can make the page hang.
 */

export type Inline =
  | { t: 'text'; v: string }
  | { t: 'code'; v: string }
  | { t: 'strong' | 'em' | 'del'; c: Inline[] }
  | { t: 'link'; href: string; c: Inline[] };

export type Block =
  | { t: 'p'; c: Inline[] }
  | { t: 'pre'; v: string }
  | { t: 'quote'; c: Block[] }
  | { t: 'ul'; items: Inline[][] }
  | { t: 'ol'; start: number; items: Inline[][] };

/** Quotes nest this deep; deeper `>` are text. */
const MAX_QUOTE_DEPTH = 4;

const FENCE = /^ {0,3}(`{3,}|~{3,})(.*)$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const BULLET = /^ {0,3}[-*+] +(\S.*)$/;
const ORDERED = /^ {0,3}(\d{1,9})[.)] +(\S.*)$/;

export function parseMarkdown(text: string): Block[] {
  return parseBlocks(text.split('\n'), 0);
}

function closesFence(line: string, ch: string, len: number): boolean {
  const m = /^ {0,3}(`{3,}|~{3,}) *$/.exec(line);
  return !!m && m[1][0] === ch && m[1].length >= len;
}

function parseBlocks(lines: string[], depth: number): Block[] {
  const out: Block[] = [];
  let para: string[] = [];
  const endPara = () => {
    if (para.length) out.push({ t: 'p', c: parseInline(para.join('\n')) });
    para = [];
  };
  for (let i = 0; i < lines.length; ) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence && !(fence[1][0] === '`' && fence[2].includes('`'))) {
      let end = -1;
      for (let j = i + 1; j < lines.length; j++) {
        if (closesFence(lines[j], fence[1][0], fence[1].length)) {
          end = j;
          break;
        }
      }
      if (end >= 0) {
        endPara();
        out.push({ t: 'pre', v: lines.slice(i + 1, end).join('\n') });
        i = end + 1;
        continue;
      }
      // Unclosed: the fence is text.
    } else if (depth < MAX_QUOTE_DEPTH && QUOTE.test(line)) {
      endPara();
      const inner: string[] = [];
      for (let m = QUOTE.exec(lines[i]); m && i < lines.length; m = i < lines.length ? QUOTE.exec(lines[i]) : null) {
        inner.push(m[1]);
        i++;
      }
      out.push({ t: 'quote', c: parseBlocks(inner, depth + 1) });
      continue;
    } else if (BULLET.test(line)) {
      endPara();
      const items: Inline[][] = [];
      for (let m = BULLET.exec(lines[i]); m; m = i < lines.length ? BULLET.exec(lines[i]) : null) {
        items.push(parseInline(m[1]));
        i++;
      }
      out.push({ t: 'ul', items });
      continue;
    } else {
      const first = ORDERED.exec(line);
      if (first) {
        endPara();
        const items: Inline[][] = [];
        for (let m: RegExpExecArray | null = first; m; m = i < lines.length ? ORDERED.exec(lines[i]) : null) {
          items.push(parseInline(m[2]));
          i++;
        }
        out.push({ t: 'ol', start: Number(first[1]), items });
        continue;
      }
    }
    if (line.trim() === '') endPara();
    else para.push(line);
    i++;
  }
  endPara();
  return out;
}

// ------------------------------------------------------------------------- inline

const PUNCT = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');
const isSpace = (c: string | undefined) => c === undefined || c === ' ' || c === '\n' || c === '\t' || c === '\r' || c === '\u00a0';
const isWord = (c: string | undefined) => c !== undefined && /[\p{L}\p{N}]/u.test(c);

interface Frame {
  marker: string;
  kind: 'strong' | 'em' | 'del';
  children: Inline[];
}

function pushText(into: Inline[], v: string): void {
  if (!v) return;
  const last = into[into.length - 1];
  if (last && last.t === 'text') into[into.length - 1] = { t: 'text', v: last.v + v };
  else into.push({ t: 'text', v });
}

function pushAll(into: Inline[], nodes: Inline[]): void {
  for (const n of nodes) {
    if (n.t === 'text') pushText(into, n.v);
    else into.push(n);
  }
}

/**
 * The link a bare address at `i` makes, or null: http:// or https:// (any case), or www.
 * (made https://), starting a word, up to whitespace or < > " ' `, without trailing
 * punctuation. `end` is where the address ends in `s`.
 */
export function urlAt(s: string, i: number): { href: string; end: number } | null {
  // Only at the start of a word: not inside another address (a:www.x, a@www.x, x.www.y).
  if (i > 0 && (isWord(s[i - 1]) || ':/.@-'.includes(s[i - 1]))) return null;
  const head = s.slice(i, i + 8).toLowerCase();
  const www = head.startsWith('www.');
  if (!www && !head.startsWith('http://') && !head.startsWith('https://')) return null;
  let j = i;
  while (j < s.length && !isSpace(s[j]) && !'<>"\'`'.includes(s[j])) j++;
  // Trailing punctuation (and Markdown markers) stay outside the link.
  while (j > i && '.,;:!?)]*_~'.includes(s[j - 1])) j--;
  const url = s.slice(i, j);
  const prefix = www ? 4 : url.indexOf('//') + 2;
  if (url.length <= prefix) return null;
  const href = safeHref(www ? 'https://' + url : url);
  return href ? { href, end: j } : null;
}

/** The URL when it is an http(s) one, normalised; else null. */
export function safeHref(url: string): string | null {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

/** Positions of backtick runs by length, looked up left to right (each cursor only moves forward). */
class BacktickRuns {
  private runs = new Map<number, { at: number[]; next: number }>();
  constructor(s: string) {
    for (let i = 0; i < s.length; ) {
      if (s[i] !== '`') {
        i++;
        continue;
      }
      let j = i;
      while (s[j] === '`') j++;
      const r = this.runs.get(j - i) ?? { at: [], next: 0 };
      r.at.push(i);
      this.runs.set(j - i, r);
      i = j;
    }
  }
  /** The first run of exactly `len` backticks starting after `pos`, or -1. */
  after(pos: number, len: number): number {
    const r = this.runs.get(len);
    if (!r) return -1;
    while (r.next < r.at.length && r.at[r.next] <= pos) r.next++;
    return r.next < r.at.length ? r.at[r.next] : -1;
  }
}

export function parseInline(s: string): Inline[] {
  const root: Inline[] = [];
  const frames: Frame[] = [];
  const open = new Map<string, number>();
  const ticks = new BacktickRuns(s);
  let buf = '';
  const top = () => (frames.length ? frames[frames.length - 1].children : root);
  const flush = () => {
    pushText(top(), buf);
    buf = '';
  };
  /** Ends the frames above index k: their markers become text. */
  const unwind = (k: number) => {
    const into = k < 0 ? root : frames[k].children;
    for (let f = k + 1; f < frames.length; f++) {
      pushText(into, frames[f].marker);
      pushAll(into, frames[f].children);
      open.set(frames[f].marker, (open.get(frames[f].marker) ?? 0) - 1);
    }
    frames.length = k + 1;
  };
  /** Closes the nearest open frame of `ch` markers no longer than `len`; returns its length, 0 if none. */
  const close = (ch: string, len: number): number => {
    let any = false;
    for (let l = 1; l <= len; l++) if ((open.get(ch.repeat(l)) ?? 0) > 0) any = true;
    if (!any) return 0;
    let k = frames.length - 1;
    while (k >= 0 && !(frames[k].marker[0] === ch && frames[k].marker.length <= len)) k--;
    if (k < 0) return 0;
    unwind(k);
    const f = frames.pop()!;
    open.set(f.marker, (open.get(f.marker) ?? 0) - 1);
    top().push({ t: f.kind, c: f.children });
    return f.marker.length;
  };
  const push = (marker: string) => {
    frames.push({ marker, kind: marker[0] === '~' ? 'del' : marker.length === 2 ? 'strong' : 'em', children: [] });
    open.set(marker, (open.get(marker) ?? 0) + 1);
  };

  for (let i = 0; i < s.length; ) {
    const c = s[i];
    if (c === '\\' && i + 1 < s.length && PUNCT.has(s[i + 1])) {
      buf += s[i + 1];
      i += 2;
      continue;
    }
    if (c === '`') {
      let j = i;
      while (s[j] === '`') j++;
      const len = j - i;
      const end = ticks.after(i, len);
      if (end < 0) {
        buf += s.slice(i, j);
        i = j;
        continue;
      }
      flush();
      top().push({ t: 'code', v: s.slice(j, end) });
      i = end + len;
      continue;
    }
    if (c === '*' || c === '_' || c === '~') {
      let j = i;
      while (s[j] === c) j++;
      const len = j - i;
      const usable = c === '~' ? len === 2 : len <= 3;
      if (!usable) {
        buf += s.slice(i, j);
        i = j;
        continue;
      }
      const before = s[i - 1];
      const after = s[j];
      let canOpen = !isSpace(after);
      let canClose = i > 0 && !isSpace(before);
      if (c === '_') {
        // snake_case_words stay as they are.
        canOpen = canOpen && !isWord(before);
        canClose = canClose && !isWord(after);
      }
      let left = len;
      if (canClose) {
        flush();
        for (let n = close(c, left); n > 0 && left > 0; n = left > 0 ? close(c, left) : 0) left -= n;
      }
      if (left > 0 && canOpen) {
        flush();
        if (c === '~') push('~~');
        else if (left === 3) {
          push(c + c);
          push(c);
        } else push(c.repeat(left));
      } else if (left > 0) buf += c.repeat(left);
      i = j;
      continue;
    }
    if (c === '[') {
      const link = labelledLink(s, i);
      if (link) {
        flush();
        top().push({ t: 'link', href: link.href, c: [{ t: 'text', v: link.label }] });
        i = link.end;
        continue;
      }
    }
    if (c === 'h' || c === 'H' || c === 'w' || c === 'W') {
      const u = urlAt(s, i);
      if (u) {
        flush();
        top().push({ t: 'link', href: u.href, c: [{ t: 'text', v: s.slice(i, u.end) }] });
        i = u.end;
        continue;
      }
    }
    buf += c;
    i++;
  }
  flush();
  unwind(-1);
  return root;
}

/** `[label](url)` at `i` with an http(s) or www. url; bounded scans, so linear overall. */
function labelledLink(s: string, i: number): { label: string; href: string; end: number } | null {
  let j = i + 1;
  while (j < s.length && j - i <= 300 && !'[]\n'.includes(s[j])) j++;
  if (s[j] !== ']' || j === i + 1 || s[j + 1] !== '(') return null;
  const label = s.slice(i + 1, j);
  const start = j + 2;
  let k = start;
  while (k < s.length && k - start <= 2000 && !isSpace(s[k]) && !'()[]<>'.includes(s[k])) k++;
  if (s[k] !== ')' || k === start) return null;
  const url = s.slice(start, k);
  const href = /^www\./i.test(url) ? safeHref('https://' + url) : /^https?:\/\//i.test(url) ? safeHref(url) : null;
  return href ? { label, href, end: k + 1 } : null;
}

/** The plain text of inline nodes (for tests and previews). */
export function inlineText(nodes: Inline[]): string {
  return nodes.map((n) => (n.t === 'text' || n.t === 'code' ? n.v : inlineText(n.c))).join('');
}

const RTL_CHAR = /[\u0590-\u08FF\uFB1D-\uFDFF\uFE70-\uFEFF]/;
const LETTER = /\p{L}/u;

/**
 * The direction of a text by its first strong character (as dir="auto" decides):
 * 'rtl' for Hebrew, Arabic, Syriac, Thaana…, 'ltr' for other letters, null when there is
 * no letter (digits, emoji, punctuation only).
 */
export function textDirection(text: string): 'rtl' | 'ltr' | null {
  for (const ch of text) {
    if (RTL_CHAR.test(ch)) return 'rtl';
    if (LETTER.test(ch)) return 'ltr';
  }
  return null;
}

/**
 * A message's text without its Markdown, on one line: markers gone (`**b**` is "b", a
 * `[label](url)` its label, a code block its code), quotes and list items as their text,
 * white space collapsed. For the conversation list's preview, which is plain text.
 */
export function plainText(text: string): string {
  const out: string[] = [];
  const blocks = (bs: Block[]) => {
    for (const b of bs) {
      switch (b.t) {
        case 'p':
          out.push(inlineText(b.c));
          break;
        case 'pre':
          out.push(b.v);
          break;
        case 'quote':
          blocks(b.c);
          break;
        case 'ul':
        case 'ol':
          for (const item of b.items) out.push(inlineText(item));
          break;
      }
    }
  };
  blocks(parseMarkdown(text));
  return out.join(' ').replace(/\s+/g, ' ').trim();
}
