import type { ComponentChildren } from 'preact';
import { useMemo } from 'preact/hooks';
import { parseMarkdown, type Block, type Inline } from '../markdown';

/**
 * Message text as Markdown (src/markdown.ts): the tree becomes elements and text nodes
 * only, never HTML, so no message can inject markup. Each block takes its own direction
 * (dir="auto"), so a Hebrew line and an English one in one message each read right.
 */
export function RichText({ text }: { text: string }) {
  const blocks = useMemo(() => parseMarkdown(text), [text]);
  return <>{blocks.map(block)}</>;
}

function block(b: Block, key: number): ComponentChildren {
  switch (b.t) {
    case 'p':
      return (
        <p key={key} class="md-p" dir="auto">
          {b.c.map(inline)}
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
          {b.c.map(block)}
        </blockquote>
      );
    case 'ul':
      return (
        <ul key={key} class="md-list">
          {b.items.map((it, i) => (
            <li key={i} dir="auto">
              {it.map(inline)}
            </li>
          ))}
        </ul>
      );
    case 'ol':
      return (
        <ol key={key} class="md-list" start={b.start}>
          {b.items.map((it, i) => (
            <li key={i} dir="auto">
              {it.map(inline)}
            </li>
          ))}
        </ol>
      );
  }
}

function inline(n: Inline, key: number): ComponentChildren {
  switch (n.t) {
    case 'text':
      return n.v;
    case 'code':
      return (
        <code key={key} class="md-code">
          {n.v}
        </code>
      );
    case 'strong':
      return <strong key={key}>{n.c.map(inline)}</strong>;
    case 'em':
      return <em key={key}>{n.c.map(inline)}</em>;
    case 'del':
      return <del key={key}>{n.c.map(inline)}</del>;
    case 'link':
      return (
        <a key={key} href={n.href} target="_blank" rel="noopener noreferrer">
          {n.c.map(inline)}
        </a>
      );
  }
}
