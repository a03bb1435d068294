import { describe, expect, it } from 'vitest';
import { inlineText, parseInline, parseMarkdown, plainText, textDirection, urlAt, type Block, type Inline } from '../src/markdown';

/** A compact rendering of the tree, to compare whole structures at a glance. */
function show(nodes: Inline[]): string {
  return nodes
    .map((n) => {
      switch (n.t) {
        case 'text':
          return n.v;
        case 'code':
          return `<code>${n.v}</code>`;
        case 'link':
          return `<a ${n.href}>${show(n.c)}</a>`;
        default:
          return `<${n.t}>${show(n.c)}</${n.t}>`;
      }
    })
    .join('');
}
const md = (s: string) => show(parseInline(s));

function allText(blocks: Block[]): string {
  return blocks
    .map((b) => (b.t === 'p' ? inlineText(b.c) : b.t === 'pre' ? b.v : b.t === 'quote' ? allText(b.c) : b.items.map(inlineText).join('\n')))
    .join('\n');
}

describe('inline Markdown', () => {
  it('bold, italic, strike and code', () => {
    expect(md('**b** *i* __b2__ _i2_ ~~s~~ `c`')).toBe('<strong>b</strong> <em>i</em> <strong>b2</strong> <em>i2</em> <del>s</del> <code>c</code>');
  });

  it('nests, and *** is bold and italic', () => {
    expect(md('**bold _and italic_ here**')).toBe('<strong>bold <em>and italic</em> here</strong>');
    expect(md('~~gone **really**~~')).toBe('<del>gone <strong>really</strong></del>');
    expect(md('***both***')).toBe('<strong><em>both</em></strong>');
  });

  it('leaves unclosed markers literal', () => {
    expect(md('**not closed')).toBe('**not closed');
    expect(md('a *b and **c')).toBe('a *b and **c');
    expect(md('`open code')).toBe('`open code');
    expect(md('~~half')).toBe('~~half');
    expect(md('~one tilde~')).toBe('~one tilde~');
  });

  it('needs markers against the text: spaced stars and snake_case stay literal', () => {
    expect(md('2 * 3 * 4')).toBe('2 * 3 * 4');
    expect(md('snake_case_name and __init__.py')).toBe('snake_case_name and <strong>init</strong>.py');
    expect(md('** not bold **')).toBe('** not bold **');
    expect(md('****')).toBe('****');
  });

  it('improper nesting: the inner opener becomes text', () => {
    expect(md('**a _b** c_')).toBe('<strong>a _b</strong> c_');
  });

  it('code spans keep markers literal, also across a closing run of another length', () => {
    expect(md('`**not bold** <b>`')).toBe('<code>**not bold** <b></code>');
    expect(md('*a `b* c`')).toBe('*a <code>b* c</code>');
    expect(md('``a ` b``')).toBe('<code>a ` b</code>');
    expect(md('`https://example.com`')).toBe('<code>https://example.com</code>');
  });

  it('a backslash makes a marker literal', () => {
    expect(md('\\*not italic\\*')).toBe('*not italic*');
    expect(md('\\`x\\`')).toBe('`x`');
    expect(md('a\\b')).toBe('a\\b');
  });

  it('links http(s) and bare www. addresses, nothing else', () => {
    expect(md('see https://example.com/a?b=1.')).toBe('see <a https://example.com/a?b=1>https://example.com/a?b=1</a>.');
    expect(md('www.example.org')).toBe('<a https://www.example.org/>www.example.org</a>');
    expect(md('(at www.example.org/x)')).toBe('(at <a https://www.example.org/x>www.example.org/x</a>)');
    expect(md('**https://example.com/x_y**')).toBe('<strong><a https://example.com/x_y>https://example.com/x_y</a></strong>');
    for (const s of ['javascript:alert(1)', 'ftp://example.com', 'example.org', 'mailto:a@b.c', 'data:text/html,<script>', 'xwww.example.org', 'www.', 'https://']) {
      expect(parseInline(s).some((n) => n.t === 'link'), s).toBe(false);
    }
  });

  it('[label](url) links only to http(s) or www.', () => {
    expect(md('[the docs](https://example.com/docs)')).toBe('<a https://example.com/docs>the docs</a>');
    expect(md('[x](www.example.org)')).toBe('<a https://www.example.org/>x</a>');
    expect(md('[x](javascript:alert(1))')).toBe('[x](javascript:alert(1))');
    expect(md('[x](data:text/html;base64,AAA)')).toBe('[x](data:text/html;base64,AAA)');
  });

  it('markup is text', () => {
    expect(parseInline('<script>alert(1)</script> <img src=x onerror=alert(1)>')).toEqual([{ t: 'text', v: '<script>alert(1)</script> <img src=x onerror=alert(1)>' }]);
  });

  it('urlAt finds where an address ends and refuses other schemes', () => {
    expect(urlAt('go to https://a.example/b), ok', 6)).toEqual({ href: 'https://a.example/b', end: 25 });
    expect(urlAt('HTTPS://A.EXAMPLE', 0)?.href).toBe('https://a.example/');
    expect(urlAt('javascript:x', 0)).toBeNull();
  });
});

describe('blocks', () => {
  it('paragraphs keep their newlines; a blank line separates them', () => {
    expect(parseMarkdown('one\ntwo\n\nthree')).toEqual([
      { t: 'p', c: [{ t: 'text', v: 'one\ntwo' }] },
      { t: 'p', c: [{ t: 'text', v: 'three' }] },
    ]);
  });

  it('code blocks keep everything literal; an unclosed fence is text', () => {
    expect(parseMarkdown('before\n```js\nconst a = **b**;\n<b>x</b>\n```\nafter')).toEqual([
      { t: 'p', c: [{ t: 'text', v: 'before' }] },
      { t: 'pre', v: 'const a = **b**;\n<b>x</b>' },
      { t: 'p', c: [{ t: 'text', v: 'after' }] },
    ]);
    expect(parseMarkdown('~~~\nx\n~~~')).toEqual([{ t: 'pre', v: 'x' }]);
    expect(parseMarkdown('```\nno end')).toEqual([{ t: 'p', c: [{ t: 'text', v: '```\nno end' }] }]);
  });

  it('quotes, nested, with Markdown inside', () => {
    expect(parseMarkdown('> **said**\n> > earlier\nreply')).toEqual([
      {
        t: 'quote',
        c: [
          { t: 'p', c: [{ t: 'strong', c: [{ t: 'text', v: 'said' }] }] },
          { t: 'quote', c: [{ t: 'p', c: [{ t: 'text', v: 'earlier' }] }] },
        ],
      },
      { t: 'p', c: [{ t: 'text', v: 'reply' }] },
    ]);
  });

  it('lists: bullets and numbers (with their start)', () => {
    expect(parseMarkdown('Shopping:\n- milk\n* *eggs*\n\n3. third\n4) fourth')).toEqual([
      { t: 'p', c: [{ t: 'text', v: 'Shopping:' }] },
      { t: 'ul', items: [[{ t: 'text', v: 'milk' }], [{ t: 'em', c: [{ t: 'text', v: 'eggs' }] }]] },
      { t: 'ol', start: 3, items: [[{ t: 'text', v: 'third' }], [{ t: 'text', v: 'fourth' }]] },
    ]);
    // Not a list: no space after the marker, or bold at the start of a line.
    expect(parseMarkdown('-1 degrees\n**bold** start').map((b) => b.t)).toEqual(['p']);
  });

  it('keeps every character of plain text', () => {
    const text = 'Hello <b>there</b> & "friends"\n\nnew paragraph with 5 * 3 and a_b';
    const blocks = parseMarkdown(text);
    expect(allText(blocks)).toBe('Hello <b>there</b> & "friends"\nnew paragraph with 5 * 3 and a_b');
  });
});

describe('linear time', () => {
  // Each input is 4,000 characters or more built to make a naive matcher rescan the rest
  // of the text for every marker. They must all come back fast.
  const adversarial: Record<string, string> = {
    'unclosed stars': '*a '.repeat(1400),
    'unclosed underscores': '_a '.repeat(1400),
    'alternating openers': '*_~~'.repeat(1000) + 'x',
    'closers with no opener': 'a* '.repeat(1400),
    'backtick runs of growing length': Array.from({ length: 88 }, (_, i) => '`'.repeat(i + 1) + 'x').join(''),
    'single backticks': '`a'.repeat(2001),
    'open brackets': '[a'.repeat(2001),
    'labels without urls': '[a](b'.repeat(900),
    'url prefixes': 'www.'.repeat(1000) + ' ' + 'http:'.repeat(800),
    'quote markers': '>'.repeat(4000),
    'fences': '```\n'.repeat(1000) + '~~~~\n'.repeat(100),
    'list lines': '- *a\n'.repeat(1000),
    'escapes': '\\'.repeat(4001),
  };
  for (const [name, text] of Object.entries(adversarial)) {
    it(name, () => {
      expect(text.length).toBeGreaterThanOrEqual(4000);
      const t0 = performance.now();
      const blocks = parseMarkdown(text);
      const ms = performance.now() - t0;
      expect(blocks.length).toBeGreaterThan(0);
      // Generous for a slow machine; a quadratic matcher takes seconds on these.
      expect(ms).toBeLessThan(250);
    });
  }

  it('grows linearly: 8 times the input, well under 64 times the work', () => {
    const time = (n: number) => {
      const s = '**a _b `c [d '.repeat(n);
      const t0 = performance.now();
      for (let i = 0; i < 5; i++) parseMarkdown(s);
      return performance.now() - t0;
    };
    time(200); // warm up
    const small = time(500);
    const large = time(4000);
    expect(large / Math.max(small, 0.5)).toBeLessThan(30);
  });
});

describe('textDirection', () => {
  it('takes the first strong character', () => {
    expect(textDirection('שלום, מה שלומך?')).toBe('rtl');
    expect(textDirection('123 مرحبا')).toBe('rtl');
    expect(textDirection('Hello שלום')).toBe('ltr');
    expect(textDirection('👍 42!')).toBeNull();
    expect(textDirection('**שלום**')).toBe('rtl');
  });
});

describe('plainText (the conversation list preview)', () => {
  it('strips the markup to its text, on one line', () => {
    expect(plainText('**bold** and _italic_ and ~~gone~~ and `code`')).toBe('bold and italic and gone and code');
    expect(plainText('see [the docs](https://example.com/docs) or www.example.org')).toBe('see the docs or www.example.org');
    expect(plainText('> quoted\n> more\n\nreply')).toBe('quoted more reply');
    expect(plainText('- one\n- two\n1. three')).toBe('one two three');
    expect(plainText('```\nconst x = 1;\n```')).toBe('const x = 1;');
    expect(plainText('not *closed and \\*escaped\\*')).toBe('not *closed and *escaped*');
    expect(plainText('  lots   of\n\nspace ')).toBe('lots of space');
    expect(plainText('')).toBe('');
    expect(plainText('<script>alert(1)</script>')).toBe('<script>alert(1)</script>');
  });
});
