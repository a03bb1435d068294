import { defineConfig } from 'vitest/config';

// The chat server serves dist/ under a strict CSP (script-src 'self', style-src 'self'):
// nothing may be inlined into index.html, so the modulepreload polyfill is off and
// assets are always emitted as files.
export default defineConfig({
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
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
