import type { ComponentChildren } from 'preact';
import { useMemo } from 'preact/hooks';
import { parseMarkdown, type Block, type Inline } from '../markdown';
import { mentionParts } from '../notify';

/** Who a message mentions (the server's `mentions`) and how to find them by username. */
export interface Mentions {
  ids: readonly string[];
  byUsername: ReadonlyMap<string, string>;
  meId: string;
}

/**
 * Message text as Markdown (src/markdown.ts): the tree becomes elements and text nodes
 * only, never HTML, so no message can inject markup. Each block takes its own direction
 * (dir="auto"), so a Hebrew line and an English one in one message each read right.
 * `linkTab` is the tabIndex of its links: -1 keeps them out of the Tab order while their
 * message is not the focused one (the list is one Tab stop).
 */
export function RichText({ text, linkTab, mentions }: { text: string; linkTab?: number; mentions?: Mentions }) {
  const blocks = useMemo(() => parseMarkdown(text), [text]);
  return <>{blocks.map((b, i) => block(b, i, linkTab, mentions))}</>;
}

function block(b: Block, key: number, tab: number | undefined, men: Mentions | undefined): ComponentChildren {
  const inl = (n: Inline, i: number) => inline(n, i, tab, men);
  switch (b.t) {
    case 'p':
      return (
        <p key={key} class="md-p" dir="auto">
          {b.c.map(inl)}
        </p>
      );
    case 'pre':
      return (
        <pre key={key} class="md-pre" dir="ltr">
          <code>{b.v}</code>
        </pre>
      );
    case 'quote':
      return (
        <blockquote key={key} class="md-quote" dir="auto">
          {b.c.map((x, i) => block(x, i, tab, men))}
        </blockquote>
      );
    case 'ul':
      return (
        <ul key={key} class="md-list">
          {b.items.map((it, i) => (
            <li key={i} dir="auto">
              {it.map(inl)}
            </li>
          ))}
        </ul>
      );
    case 'ol':
      return (
        <ol key={key} class="md-list" start={b.start}>
          {b.items.map((it, i) => (
            <li key={i} dir="auto">
              {it.map(inl)}
            </li>
          ))}
        </ol>
      );
  }
}

function inline(n: Inline, key: number, tab: number | undefined, men: Mentions | undefined): ComponentChildren {
  const inl = (x: Inline, i: number) => inline(x, i, tab, men);
  switch (n.t) {
    case 'text':
      if (!men || men.ids.length === 0) return n.v;
      // A mention of a member the server found in the text: marked, more strongly when it is me.
      return mentionParts(n.v, men.byUsername, men.ids, men.meId).map((part, i) =>
        typeof part === 'string' ? (
          part
        ) : (
          <span key={`${key}-${i}`} class={'mention' + (part.me ? ' mention-me' : '')} data-testid="mention">
            @{part.username}
          </span>
        ),
      );
    case 'code':
      return (
        <code key={key} class="md-code">
          {n.v}
        </code>
      );
    case 'strong':
      return <strong key={key}>{n.c.map(inl)}</strong>;
    case 'em':
      return <em key={key}>{n.c.map(inl)}</em>;
    case 'del':
      return <del key={key}>{n.c.map(inl)}</del>;
    case 'link':
      return (
        <a key={key} href={n.href} target="_blank" rel="noopener noreferrer" tabIndex={tab}>
          {n.c.map(inl)}
        </a>
      );
  }
}
