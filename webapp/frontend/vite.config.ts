// Builds the TypeScript entries in src/ into webapp/core/static/dist/ with stable names
// (dist/app.js): Django's static files storage adds the content hash when it collects them.
import { resolve } from "node:path";
import { defineConfig } from "vitest/config";

// One entry per page script; a template loads it with {% static 'dist/<name>.js' %}.
// Pages without charts load only app.js; uPlot and d3-hierarchy live in the run page and compare bundles.
const entries: Record<string, string> = {
  app: resolve(import.meta.dirname, "src/app.ts"),
  run_page: resolve(import.meta.dirname, "src/run_page.ts"),
  compare: resolve(import.meta.dirname, "src/compare.ts"),
  run_list: resolve(import.meta.dirname, "src/run_list.ts"),
  // The playground (imports its own stylesheet: dist/playground.css).
  playground: resolve(import.meta.dirname, "src/playground.ts"),
  // The charts' and explorer's stylesheet: dist/dashboard.css, linked by the run and compare pages.
  dashboard: resolve(import.meta.dirname, "src/dashboard.css"),
};

export default defineConfig({
  base: "./",
  publicDir: false,
  build: {
    outDir: resolve(import.meta.dirname, "../core/static/dist"),
    emptyOutDir: true,
    sourcemap: true,
    target: "es2022",
    rolldownOptions: {
      input: entries,
      output: {
        entryFileNames: "[name].js",
        // Code shared by run_page and compare (uPlot, the chart modules): one chunk they both import.
        chunkFileNames: "chunks/shared-[hash].js",
        // Stylesheets keep stable names too (dist/run_page.css), for {% static %} in the templates.
        assetFileNames: (asset) =>
          asset.names.some((n) => n.endsWith(".css")) ? "[name][extname]" : "assets/[name]-[hash][extname]",
      },
    },
  },
  test: {
    // Pure modules test in plain Node (fast); DOM tests opt in with `// @vitest-environment happy-dom`.
    environment: "node",
    // One worker thread, modules shared between files: ~3 s instead of ~12 s on a busy 2-core machine.
    // Tests keep no module state between them (each builds its own objects and DOM).
    pool: "threads",
    isolate: false,
    include: ["src/**/*.test.ts"],
  },
});
