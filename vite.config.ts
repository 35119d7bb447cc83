import { defineConfig } from 'vite';

// The browser snippet: one minified IIFE with no runtime dependencies, served at GET /analytics.js.
// Its gzipped size is a feature, checked by scripts/snippet-size.ts after every build.
export default defineConfig({
  build: {
    outDir: 'dist',
    // dist/ also holds the compiled server: npm run build builds both into dist.next/, then puts it in dist/'s place.
    emptyOutDir: false,
    // Every browser with sendBeacon and `catch {}` runs ES2019; a newer target buys no bytes here.
    target: 'es2019',
    // Measured on this snippet: terser a few bytes smaller gzipped than Oxc (Vite's default), ~20 smaller than esbuild.
    minify: 'terser',
    lib: {
      entry: 'client/index.ts',
      formats: ['iife'],
      name: 'analytics',
      fileName: () => 'analytics.js',
    },
  },
});
