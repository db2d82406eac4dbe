// Two bundles into ../webapp/static/build/:
// - app.{js,css}: src/app.ts and its stylesheet, loaded on every page; ide-new.js, the new-model page's picker;
// - ide.{js,css} + editor.worker.js: the model editor (Monaco and its worker), loaded only on the editor page.
// Every font and worker Monaco needs is emitted next to them: nothing is fetched from a CDN.
// `node build.mjs --watch` rebuilds on change.
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const watch = process.argv.includes("--watch");

const common = {
  absWorkingDir: here,
  outdir: "../webapp/static/build",
  bundle: true,
  format: "iife",
  target: ["es2020"],
  minify: !watch,
  legalComments: "none",
  logLevel: "info",
};

const builds = [
  { ...common, entryPoints: { app: "src/app.ts", "ide-new": "src/ide/new.ts" }, sourcemap: true },
  {
    ...common,
    entryPoints: {
      ide: "src/ide/main.ts",
      "editor.worker": "node_modules/monaco-editor/esm/vs/editor/editor.worker.js",
    },
    // Monaco's own sources are large: no source map for them keeps the build quick and the folder small.
    sourcemap: false,
    loader: { ".ttf": "file" },
    assetNames: "[name]",
  },
];

if (watch) {
  for (const options of builds) await (await esbuild.context(options)).watch();
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
}
