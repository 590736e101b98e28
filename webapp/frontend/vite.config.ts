// Builds the TypeScript entries in src/ into webapp/core/static/dist/ with stable names
// (dist/app.js): Django's static files storage adds the content hash when it collects them.
import { resolve } from "node:path";
import { defineConfig } from "vitest/config";

// One entry per page script; a template loads it with {% static 'dist/<name>.js' %}.
const entries: Record<string, string> = {
  app: resolve(import.meta.dirname, "src/app.ts"),
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
        chunkFileNames: "chunks/[name]-[hash].js",
        assetFileNames: "assets/[name]-[hash][extname]",
      },
    },
  },
  test: {
    // Pure modules test in plain Node (fast); DOM tests opt in with `// @vitest-environment happy-dom`.
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
});
