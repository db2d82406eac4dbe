/**
 * Monaco for the editor page: the editor core with all its features, the languages a model's files
 * use (Python, YAML, INI/TOML-ish config, Markdown, shell), and the editor worker served by Podium
 * next to this bundle (`data-worker-url`), never from a CDN.
 */
import "monaco-editor/esm/vs/editor/editor.all.js";
import "monaco-editor/esm/vs/basic-languages/python/python.contribution.js";
import "monaco-editor/esm/vs/basic-languages/yaml/yaml.contribution.js";
import "monaco-editor/esm/vs/basic-languages/ini/ini.contribution.js";
import "monaco-editor/esm/vs/basic-languages/markdown/markdown.contribution.js";
import "monaco-editor/esm/vs/basic-languages/shell/shell.contribution.js";
import * as monaco from "monaco-editor/esm/vs/editor/editor.api.js";

export { monaco };

export function configureWorkers(workerUrl: string): void {
  (self as unknown as { MonacoEnvironment: unknown }).MonacoEnvironment = {
    getWorkerUrl: () => workerUrl,
  };
}

const LANGUAGES: Record<string, string> = {
  py: "python", yaml: "yaml", yml: "yaml", toml: "ini", cfg: "ini", ini: "ini", md: "markdown", sh: "shell",
  json: "json",
};

export function languageOf(path: string): string {
  const ext = path.includes(".") ? path.split(".").pop()?.toLowerCase() ?? "" : "";
  return LANGUAGES[ext] ?? "plaintext";
}
