/**
 * The files being edited: one Monaco text model per text file, compared with the saved source to
 * say what is unsaved. *Saved* is the source as of `revision`; a path missing from it is new, a
 * saved path missing from the open files is deleted. Binary files (`binary` in the source) are
 * listed but not editable, and are left as they are on save.
 */
import { languageOf, monaco } from "./monaco";

export type FileMap = Record<string, string>;

export interface Source {
  files: FileMap;
  revision: number;
  saved_by?: string | null;
  saved_at?: string | null;
  sample_input?: unknown;
  binary?: string[];
}

const FIRST = ["model.py", "requirements.txt"];

export function sortPaths(paths: string[]): string[] {
  return [...paths].sort((a, b) => {
    const rank = (p: string): number => (FIRST.includes(p) ? FIRST.indexOf(p) : FIRST.length);
    return rank(a) - rank(b) || a.localeCompare(b);
  });
}

export class Files {
  readonly models = new Map<string, monaco.editor.ITextModel>();
  saved: FileMap = {};
  binary: string[] = [];
  private counter = 0;

  constructor(private onChange: (path: string) => void) {}

  /** Replace every open file with `files` (a fresh load, a restored draft, "take theirs"). */
  reset(files: FileMap): void {
    for (const model of this.models.values()) model.dispose();
    this.models.clear();
    for (const [path, text] of Object.entries(files)) this.add(path, text);
  }

  add(path: string, text: string): monaco.editor.ITextModel {
    this.counter += 1;
    // A unique URI per model: a file renamed then re-added never collides with a disposed one.
    const uri = monaco.Uri.from({ scheme: "podium", path: `/${this.counter}/${path}` });
    const model = monaco.editor.createModel(text, languageOf(path), uri);
    model.onDidChangeContent(() => this.onChange(path));
    this.models.set(path, model);
    return model;
  }

  rename(from: string, to: string): void {
    const text = this.models.get(from)?.getValue() ?? "";
    this.remove(from);
    this.add(to, text);
  }

  remove(path: string): void {
    this.models.get(path)?.dispose();
    this.models.delete(path);
  }

  paths(): string[] {
    return sortPaths([...this.models.keys(), ...this.binary.filter((p) => !this.models.has(p))]);
  }

  current(): FileMap {
    const files: FileMap = {};
    for (const [path, model] of this.models) files[path] = model.getValue();
    return files;
  }

  isDirty(path: string): boolean {
    const model = this.models.get(path);
    if (!model) return false;
    return this.saved[path] !== model.getValue();
  }

  /** Anything to save: an edited, new or deleted file. */
  anyDirty(): boolean {
    const current = this.current();
    const savedPaths = Object.keys(this.saved);
    if (savedPaths.length !== Object.keys(current).length) return true;
    return savedPaths.some((path) => current[path] !== this.saved[path]);
  }
}

export function changedPaths(a: FileMap, b: FileMap): string[] {
  return sortPaths([...new Set([...Object.keys(a), ...Object.keys(b)])].filter((p) => a[p] !== b[p]));
}

/** A path a member may give a file: relative, no `..`, no leading dot directories, no spaces at the ends. */
export function validPath(path: string): string | null {
  const clean = path.trim().replace(/^\/+/, "");
  if (!clean) return "Give the file a name.";
  if (clean.split("/").some((part) => part === "" || part === "." || part === "..")) return "Use a relative path without “..”.";
  if (!/^[\w./ -]+$/.test(clean)) return "Use letters, digits, dots, dashes, underscores and slashes.";
  return null;
}
