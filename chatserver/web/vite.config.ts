import { build, type Plugin } from 'vite';
import { defineConfig } from 'vitest/config';

/** A path next to this file (no Node types in this project: a URL's path, decoded). */
const near = (p: string) => decodeURIComponent(new URL(p, import.meta.url).pathname);

// The service worker (src/sw.ts) is built on its own, after the app, into dist/sw.js: one
// classic script without imports (any browser can register it, no module workers needed),
// at the root so that its scope is the whole app.
function serviceWorker(): Plugin {
  return {
    name: 'parley-service-worker',
    apply: 'build',
    async closeBundle() {
      await build({
        configFile: false,
        logLevel: 'warn',
        build: {
          outDir: near('dist'),
          emptyOutDir: false,
          copyPublicDir: false,
          target: 'es2022',
          sourcemap: false,
          lib: { entry: near('src/sw.ts'), formats: ['iife'], name: 'parleySW', fileName: () => 'sw.js' },
        },
      });
    },
  };
}

// The chat server serves dist/ under a strict CSP (script-src 'self', style-src 'self'):
// nothing may be inlined into index.html, so the modulepreload polyfill is off and
// assets are always emitted as files.
export default defineConfig({
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  plugins: [serviceWorker()],
  build: {
    outDir: 'dist',
    emptyOutDir: true, // public/.keep is copied back as dist/.keep for go:embed
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    sourcemap: false,
    target: 'es2022',
  },
  server: {
    proxy: {
      '/api': { target: 'http://127.0.0.1:8080', ws: true, changeOrigin: false },
    },
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
  },
});
