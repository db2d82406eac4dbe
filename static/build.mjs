// Bundle src/app.ts (and the stylesheet it imports) into ../webapp/static/build/app.{js,css}.
// `node build.mjs --watch` rebuilds on change.
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const watch = process.argv.includes("--watch");

const options = {
  absWorkingDir: here,
  entryPoints: { app: "src/app.ts" },
  outdir: "../webapp/static/build",
  bundle: true,
  format: "iife",
  target: ["es2020"],
  minify: !watch,
  sourcemap: true,
  legalComments: "none",
  logLevel: "info",
};

if (watch) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  await esbuild.build(options);
}
