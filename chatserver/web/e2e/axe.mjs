// Accessibility checks with axe-core in the browser tests (issue 12 defect 9).
//
// axe runs inside the page, so its script must be injected. The chat server's CSP allows
// only its own scripts ('self', no inline script, no eval), which would block the injected
// copy: a context opened for axe checks uses `bypassCSP: true` (newAxePerson). That is why
// the checks get their own contexts: every other test keeps the CSP on, and asserts no
// violation of it.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { newPerson } from './harness.mjs';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** A person whose pages ignore the CSP, for axe only (see above). Same shape as newPerson. */
export function newAxePerson(browser, server, opts = {}) {
  return newPerson(browser, server, { ...opts, bypassCSP: true });
}

/**
 * Runs axe on the page (or on `include`, a CSS selector) with the WCAG 2.x A and AA rules and
 * best practices, and returns the violations of impact serious or critical, each as
 * "rule: help (N nodes: selectors)", so a failing assertion says what to fix.
 */
export async function seriousViolations(page, { include, disable = [] } = {}) {
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.addScriptTag({ content: axeSource });
  const result = await page.evaluate(
    async ({ include, disable }) => {
      const rules = Object.fromEntries(disable.map((r) => [r, { enabled: false }]));
      const r = await window.axe.run(include ? { include: [include] } : document, {
        runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
        rules,
        resultTypes: ['violations'],
      });
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) }));
    },
    { include, disable },
  );
  return result
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} (${v.nodes.length} nodes: ${v.nodes.slice(0, 5).join(', ')})`);
}
