import { defineConfig } from 'vite';

// The browser snippet: one minified IIFE with no runtime dependencies, served at GET /analytics.js.
export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    lib: {
      entry: 'client/index.ts',
      formats: ['iife'],
      name: 'analytics',
      fileName: () => 'analytics.js',
    },
  },
});
