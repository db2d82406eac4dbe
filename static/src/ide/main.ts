/**
 * The model editor (`/w/<slug>/models/<name>/edit`, `[data-ide]`): Monaco with the model's files in
 * a tree and tabs, saving (Ctrl/Cmd+S, `PUT source` with the revision the edits started from),
 * per-member drafts on the server (`PUT draft`, debounced, restored on load), who else is editing
 * (`POST editing` heartbeats and `model.editing` events), syntax markers (`POST syntax`, debounced),
 * the compare view when a save is refused because someone saved first (409), the test panel
 * (testrun.ts) and the deploy panel (deploy.ts).
 *
 * `[data-ide][data-state]` says where the page is (loading / ready / failed) for tests and the
 * benchmark; `window.podiumIde.readyAt` is `performance.now()` when the editor first had a file
 * attached and could take the focus.
 */
import "../styles/ide.css";
import { type Answer, call, detail } from "./api";
import { DeployPanel } from "./deploy";
import { changedPaths, type FileMap, Files, type Source, validPath } from "./files";
import { configureWorkers, languageOf, monaco } from "./monaco";
import { type RunError, TestPanel } from "./testrun";

interface Draft {
  files: FileMap;
  base_revision: number;
  sample_input?: unknown;
  updated_at?: string;
}

interface SyntaxProblem {
  line: number;
  column?: number | null;
  end_line?: number | null;
  end_column?: number | null;
  message: string;
}

interface Editor {
  username: string;
  since?: string;
}

const DRAFT_DELAY_MS = 800;
const SYNTAX_DELAY_MS = 350;
const HEARTBEAT_MS = 15_000;
const SYNTAX_OWNER = "podium-syntax";
const RUN_OWNER = "podium-run";

function sampleText(value: unknown): string {
  if (value === undefined || value === null || value === "") return "{}";
  if (typeof value === "string") return value;
  const compact = JSON.stringify(value);
  return compact.length <= 120 ? compact : JSON.stringify(value, null, 2);
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = "", text = ""): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

function ago(iso: string | null | undefined): string {
  if (!iso) return "";
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

class Ide {
  private readonly api: string;
  private readonly slug: string;
  private readonly model: string;
  private readonly canWrite: boolean;
  private readonly me = document.body.dataset.username ?? "";
  private readonly files: Files;
  private editor!: monaco.editor.IStandaloneCodeEditor;
  private diff: monaco.editor.IStandaloneDiffEditor | undefined;
  private diffModels: { original: monaco.editor.ITextModel; modified: monaco.editor.ITextModel }[] = [];
  private merged = new Map<string, monaco.editor.ITextModel>();
  private theirs: Source | undefined;
  private tabs: string[] = [];
  private active = "";
  private baseRevision = 0;
  private source: Source | undefined;
  private savedSample = "{}";
  private draftTimer: number | undefined;
  private draftExists = false;
  private syntaxTimers = new Map<string, number>();
  private runDecorations: monaco.editor.IEditorDecorationsCollection | undefined;
  private saving: Promise<boolean> | undefined;
  private loading = true;
  private tests: TestPanel | undefined;
  private deployer: DeployPanel | undefined;

  constructor(private root: HTMLElement) {
    const data = root.dataset;
    this.api = data.api ?? "";
    this.slug = data.slug ?? "";
    this.model = data.model ?? "";
    this.canWrite = data.canWrite === "true";
    this.files = new Files((path) => this.changed(path));
  }

  private q<T extends HTMLElement = HTMLElement>(selector: string): T {
    return this.root.querySelector<T>(selector) as T;
  }

  /** The source and draft the page was rendered with, as the API would have answered them. */
  private initialFiles(): Promise<[Answer<Source>, Answer<Draft> | undefined]> | undefined {
    const block = document.getElementById("podium-editor-initial");
    if (!block?.textContent) return undefined;
    const initial = JSON.parse(block.textContent) as { source: Source; draft: Draft | null };
    const draft = initial.draft ? { status: 200, data: initial.draft } : { status: 404, data: {} as Draft };
    return Promise.resolve([{ status: 200, data: initial.source }, this.canWrite ? draft : undefined]);
  }

  async start(): Promise<void> {
    configureWorkers(this.root.dataset.workerUrl ?? "");
    const loads = this.initialFiles() ?? Promise.all([
      call<Source>("GET", `${this.api}/source`),
      this.canWrite ? call<Draft>("GET", `${this.api}/draft`) : Promise.resolve(undefined),
    ]);
    this.editor = monaco.editor.create(this.q("[data-editor]"), {
      model: null,
      automaticLayout: true,
      readOnly: !this.canWrite,
      minimap: { enabled: false },
      fontSize: 13,
      scrollBeyondLastLine: false,
      tabSize: 4,
      insertSpaces: true,
      renderWhitespace: "selection",
      glyphMargin: true,
    });
    this.editor.addCommand(monaco.KeyMod.CtrlCmd | monaco.KeyCode.KeyS, () => void this.save());
    const [source, draft] = await loads;
    if (source.status !== 200) {
      this.root.dataset.state = "failed";
      this.notice(`The model's code could not be loaded: ${detail(source)}`, "error");
      this.setSaveState(`Not loaded (${source.status})`);
      return;
    }
    this.load(source.data, draft && draft.status === 200 ? draft.data : undefined);
    this.loading = false;
    this.wire();
    this.root.dataset.state = "ready";
    (window as unknown as { podiumIde: unknown }).podiumIde = {
      readyAt: performance.now(),
      editor: this.editor,
      value: (path: string) => this.files.models.get(path)?.getValue(),
      open: (path: string) => this.open(path),
      files: () => this.files.current(),
    };
    for (const path of this.files.models.keys()) this.scheduleSyntax(path);
  }

  private load(source: Source, draft: Draft | undefined): void {
    this.source = source;
    this.files.saved = { ...source.files };
    this.files.binary = source.binary ?? [];
    this.savedSample = sampleText(source.sample_input);
    this.baseRevision = source.revision;
    let sample = this.savedSample;
    if (draft) {
      this.files.reset(draft.files);
      this.baseRevision = draft.base_revision;
      this.draftExists = true;
      if (draft.sample_input !== undefined) sample = sampleText(draft.sample_input);
      const stale = draft.base_revision !== source.revision;
      this.notice(stale
        ? `Restored your unsaved draft (${ago(draft.updated_at)}). The saved code has changed since you started it: `
          + "saving will show you the difference."
        : `Restored your unsaved draft (${ago(draft.updated_at)}).`, stale ? "warning" : "info");
    } else {
      this.files.reset(source.files);
    }
    this.q<HTMLTextAreaElement>("[data-sample]").value = sample;
    const first = this.files.models.has("model.py") ? "model.py" : this.files.paths()[0];
    if (first) this.open(first);
    this.render();
  }

  private wire(): void {
    const sample = this.q<HTMLTextAreaElement>("[data-sample]");
    sample.addEventListener("input", () => {
      this.checkSample();
      this.scheduleDraft();
      this.render();
    });
    this.root.addEventListener("click", (event) => {
      const button = (event.target as Element).closest<HTMLElement>("[data-action]");
      if (!button || !this.root.contains(button)) return;
      const action = button.dataset.action;
      if (action === "save") void this.save();
      else if (action === "test") {
        this.showSide("test");
        void this.test();
      } else if (action === "deploy") {
        this.showSide("deploy");
        void this.deploy();
      }
      else if (action === "new-file") this.newFile();
      else if (action === "take-theirs") this.takeTheirs();
      else if (action === "keep-mine") void this.keepMine();
    });
    this.root.querySelectorAll<HTMLElement>("[data-side-tab]").forEach((tab) => {
      tab.addEventListener("click", () => this.showSide(tab.dataset.sideTab ?? "test"));
    });
    this.q<HTMLInputElement>("[data-upload]")?.addEventListener("change", (event) => {
      void this.upload(event.target as HTMLInputElement);
    });
    this.q<HTMLSelectElement>("[data-compare-file]").addEventListener("change", (event) => {
      this.showDiff((event.target as HTMLSelectElement).value);
    });
    window.addEventListener("keydown", (event) => {
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
        event.preventDefault();
        if (this.canWrite) void this.save();
      }
    });
    window.addEventListener("pagehide", () => {
      this.flushDraft();
      void fetch(`${this.api}/editing`, { method: "DELETE", keepalive: true, credentials: "same-origin",
        headers: { "X-CSRFToken": this.csrf() } });
    });
    const testRoot = this.q("[data-test-panel]");
    this.tests = new TestPanel(testRoot, this.api, this.slug, this.model);
    this.tests.onStart = () => this.clearRunError();
    this.tests.onError = (error) => this.markRunError(error);
    const deployRoot = this.q("[data-deploy-panel]");
    this.deployer = new DeployPanel(deployRoot, this.root, this.api, this.slug, this.model);
    this.deployer.sampleBody = () => sample.value;
    this.startPresence();
    if (this.canWrite) void this.prewarm();
  }

  /** Ask for a warm runner for this code, so that the first Test starts with its libraries imported
   * (only when its environment is built; the server starts nothing otherwise). Best effort: a refusal
   * changes nothing on the page. */
  private async prewarm(): Promise<void> {
    await call("POST", `${this.api}/warm-runner`, { files: this.files.current() });
  }

  // Files, tree and tabs ----------------------------------------------------------------------

  private changed(path: string): void {
    if (this.loading) return;
    this.scheduleDraft();
    this.scheduleSyntax(path);
    this.render();
  }

  private open(path: string): void {
    const model = this.files.models.get(path);
    if (!model) {
      if (this.files.binary.includes(path)) this.notice(`${path} is a binary file: it is kept as it is and cannot be edited here.`, "info");
      return;
    }
    if (!this.tabs.includes(path)) this.tabs.push(path);
    this.active = path;
    this.editor.setModel(model);
    this.render();
  }

  private closeTab(path: string): void {
    const index = this.tabs.indexOf(path);
    this.tabs = this.tabs.filter((p) => p !== path);
    if (this.active === path) {
      const next = this.tabs[Math.max(0, index - 1)];
      if (next) this.open(next);
      else {
        this.active = "";
        this.editor.setModel(null);
      }
    }
    this.render();
  }

  private render(): void {
    this.renderTree();
    this.renderTabs();
    const dirty = this.dirty();
    this.root.dataset.dirty = String(dirty);
    const save = this.root.querySelector<HTMLButtonElement>('[data-action="save"]');
    if (save) save.disabled = !dirty;
    if (!this.saving) this.setSaveState(dirty ? "Unsaved changes" : this.savedLabel());
  }

  private dirty(): boolean {
    return this.files.anyDirty() || this.q<HTMLTextAreaElement>("[data-sample]").value !== this.savedSample;
  }

  private savedLabel(): string {
    const source = this.source;
    if (!source || !source.revision) return "Not saved yet";
    const who = source.saved_by ? ` by ${source.saved_by === this.me ? "you" : source.saved_by}` : "";
    return `Saved${who} ${ago(source.saved_at)}`;
  }

  private renderTree(): void {
    const tree = this.q("[data-tree]");
    const items = this.files.paths().map((path) => {
      const item = el("li", "ide-tree-item");
      item.setAttribute("role", "treeitem");
      item.dataset.path = path;
      const binary = !this.files.models.has(path);
      if (path === this.active) item.classList.add("active");
      const name = el("button", "ide-tree-name", path);
      name.type = "button";
      name.addEventListener("click", () => this.open(path));
      item.append(name);
      if (binary) item.append(el("span", "ide-tree-tag", "binary"));
      if (this.files.isDirty(path) || (!binary && !(path in this.files.saved))) {
        item.classList.add("dirty");
        item.append(el("span", "dirty-dot"));
      }
      if (this.canWrite && !binary) {
        const tools = el("span", "ide-tree-tools");
        const rename = el("button", "btn-icon", "✎");
        rename.type = "button";
        rename.title = `Rename ${path}`;
        rename.addEventListener("click", () => this.renameFile(item, path));
        const remove = el("button", "btn-icon", "✕");
        remove.type = "button";
        remove.title = `Delete ${path}`;
        remove.addEventListener("click", () => this.deleteFile(path));
        tools.append(rename, remove);
        item.append(tools);
      }
      return item;
    });
    const deleted = Object.keys(this.files.saved).filter((p) => !this.files.models.has(p) && !this.files.binary.includes(p));
    for (const path of deleted) {
      const item = el("li", "ide-tree-item deleted dirty");
      item.dataset.path = path;
      item.append(el("span", "ide-tree-name", path), el("span", "ide-tree-tag", "deleted"));
      items.push(item);
    }
    tree.replaceChildren(...items);
  }

  private renderTabs(): void {
    const bar = this.q("[data-tabs-bar]");
    bar.replaceChildren(...this.tabs.map((path) => {
      const tab = el("div", "ide-tab");
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-selected", String(path === this.active));
      tab.dataset.path = path;
      const label = el("button", "ide-tab-name", path.split("/").pop() ?? path);
      label.type = "button";
      label.title = path;
      label.addEventListener("click", () => this.open(path));
      tab.append(label);
      if (this.files.isDirty(path) || !(path in this.files.saved)) {
        tab.classList.add("dirty");
        tab.append(el("span", "dirty-dot"));
      }
      const close = el("button", "ide-tab-close", "×");
      close.type = "button";
      close.title = `Close ${path}`;
      close.addEventListener("click", () => this.closeTab(path));
      tab.append(close);
      return tab;
    }));
  }

  private inlineInput(anchor: HTMLElement, initial: string, commit: (value: string) => string | null): void {
    const input = el("input", "ide-inline-input");
    input.value = initial;
    input.setAttribute("aria-label", "File name");
    const error = el("div", "ide-inline-error small");
    anchor.replaceChildren(input, error);
    input.focus();
    input.setSelectionRange(0, initial.lastIndexOf(".") > 0 ? initial.lastIndexOf(".") : initial.length);
    let done = false;
    const finish = (apply: boolean): void => {
      if (done) return;
      if (apply) {
        const problem = commit(input.value.trim());
        if (problem) {
          error.textContent = problem;
          input.focus();
          return;
        }
      }
      done = true;
      this.render();
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") finish(true);
      if (event.key === "Escape") finish(false);
    });
    input.addEventListener("blur", () => window.setTimeout(() => finish(input.value.trim() !== initial && input.value.trim() !== ""), 100));
  }

  private newFile(): void {
    const item = el("li", "ide-tree-item editing");
    this.q("[data-tree]").prepend(item);
    this.inlineInput(item, "", (path) => {
      const problem = validPath(path) ?? (this.files.paths().includes(path) ? `${path} already exists.` : null);
      if (problem) return problem;
      this.files.add(path, "");
      this.open(path);
      this.scheduleDraft();
      return null;
    });
  }

  private renameFile(item: HTMLElement, from: string): void {
    this.inlineInput(item, from, (to) => {
      if (to === from) return null;
      const problem = validPath(to) ?? (this.files.paths().includes(to) ? `${to} already exists.` : null);
      if (problem) return problem;
      this.files.rename(from, to);
      this.tabs = this.tabs.map((p) => (p === from ? to : p));
      if (this.active === from) this.open(to);
      this.scheduleDraft();
      return null;
    });
  }

  private deleteFile(path: string): void {
    if (!window.confirm(`Delete ${path}? It goes when you save.`)) return;
    this.tabs = this.tabs.filter((p) => p !== path);
    if (this.active === path) this.closeTab(path);
    this.files.remove(path);
    this.scheduleDraft();
    this.render();
  }

  private async upload(input: HTMLInputElement): Promise<void> {
    for (const file of Array.from(input.files ?? [])) {
      const text = await file.text();
      if (text.includes("\u0000")) {
        this.notice(`${file.name} is a binary file: deploy it with the podium client (podium deploy ./dir).`, "warning");
        continue;
      }
      const existing = this.files.models.get(file.name);
      if (existing) existing.setValue(text);
      else this.files.add(file.name, text);
      this.open(file.name);
    }
    input.value = "";
    this.scheduleDraft();
    this.render();
  }

  // Saving and drafts --------------------------------------------------------------------------

  private sampleValue(): unknown {
    const text = this.q<HTMLTextAreaElement>("[data-sample]").value;
    try {
      return JSON.parse(text);
    } catch {
      return undefined;
    }
  }

  private checkSample(): boolean {
    const box = this.q("[data-sample-error]");
    const text = this.q<HTMLTextAreaElement>("[data-sample]").value;
    try {
      JSON.parse(text);
      box.hidden = true;
      return true;
    } catch (error) {
      box.textContent = `Not valid JSON: ${(error as Error).message}`;
      box.hidden = false;
      return false;
    }
  }

  save(base?: number): Promise<boolean> {
    if (!this.canWrite) return Promise.resolve(false);
    if (this.saving) return this.saving;
    this.saving = this.doSave(base ?? this.baseRevision).finally(() => {
      this.saving = undefined;
      this.render();
    });
    return this.saving;
  }

  private async doSave(base: number): Promise<boolean> {
    this.setSaveState("Saving…");
    const files = this.files.current();
    const body: Record<string, unknown> = { files, base_revision: base };
    const sample = this.sampleValue();
    if (sample !== undefined) body.sample_input = sample;
    const answer = await call<Source & { theirs?: Source; code?: string }>("PUT", `${this.api}/source`, body);
    if (answer.status === 409 && answer.data.theirs) {
      this.setSaveState("Not saved: someone saved first");
      this.openCompare(answer.data.theirs);
      return false;
    }
    if (answer.status !== 200 && answer.status !== 201) {
      this.notice(`Not saved: ${detail(answer)}`, "error");
      return false;
    }
    const saved = answer.data;
    this.source = { ...saved, files: files, revision: saved.revision ?? base + 1 };
    this.files.saved = { ...files };
    this.baseRevision = this.source.revision;
    if (sample !== undefined) this.savedSample = this.q<HTMLTextAreaElement>("[data-sample]").value;
    window.clearTimeout(this.draftTimer);
    this.draftTimer = undefined;
    if (this.dirty()) this.scheduleDraft();
    else void this.deleteDraft();
    this.notice("");
    this.root.dataset.revision = String(this.baseRevision);
    return true;
  }

  private scheduleDraft(): void {
    if (!this.canWrite || this.loading) return;
    window.clearTimeout(this.draftTimer);
    this.draftTimer = window.setTimeout(() => {
      this.draftTimer = undefined;
      void this.writeDraft();
    }, DRAFT_DELAY_MS);
  }

  private draftBody(): Record<string, unknown> {
    const body: Record<string, unknown> = { files: this.files.current(), base_revision: this.baseRevision };
    const sample = this.sampleValue();
    if (sample !== undefined) body.sample_input = sample;
    return body;
  }

  private async writeDraft(): Promise<void> {
    if (!this.dirty()) {
      await this.deleteDraft();
      return;
    }
    const answer = await call("PUT", `${this.api}/draft`, this.draftBody());
    if (answer.status === 200 || answer.status === 201 || answer.status === 204) {
      this.draftExists = true;
      this.root.dataset.draft = "saved";
    }
  }

  private async deleteDraft(): Promise<void> {
    if (!this.draftExists) return;
    this.draftExists = false;
    this.root.dataset.draft = "none";
    await call("DELETE", `${this.api}/draft`);
  }

  /** Leaving the page with a draft not yet written: write it now (keepalive outlives the page). */
  private flushDraft(): void {
    if (this.draftTimer === undefined || !this.dirty()) return;
    window.clearTimeout(this.draftTimer);
    void fetch(`${this.api}/draft`, {
      method: "PUT",
      keepalive: true,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": this.csrf() },
      body: JSON.stringify(this.draftBody()),
    });
  }

  private csrf(): string {
    return document.querySelector<HTMLInputElement>('input[name="csrfmiddlewaretoken"]')?.value ?? "";
  }

  // The compare view ---------------------------------------------------------------------------

  private openCompare(theirs: Source): void {
    this.theirs = theirs;
    const mine = this.files.current();
    const changed = changedPaths(theirs.files, mine);
    for (const model of this.merged.values()) model.dispose();
    this.merged = new Map(changed.map((path) => [path,
      monaco.editor.createModel(mine[path] ?? "", languageOf(path))]));
    const select = this.q<HTMLSelectElement>("[data-compare-file]");
    select.replaceChildren(...changed.map((path) => new Option(path, path)));
    select.hidden = changed.length < 2;
    const who = theirs.saved_by ? `${theirs.saved_by} saved ${ago(theirs.saved_at)}` : "It was saved";
    this.q("[data-compare-who]").textContent = `${who} (revision ${theirs.revision}) while you were editing.`;
    this.q("[data-compare]").hidden = false;
    this.root.dataset.compareState = "open";
    this.q("[data-editor]").hidden = true;
    if (!this.diff) {
      this.diff = monaco.editor.createDiffEditor(this.q("[data-diff]"), {
        automaticLayout: true,
        originalEditable: false,
        readOnly: false,
        renderSideBySide: true,
        useInlineViewWhenSpaceIsLimited: false,
        renderMarginRevertIcon: false,
        renderGutterMenu: false,
        minimap: { enabled: false },
        fontSize: 13,
      });
    }
    if (changed.length) this.showDiff(changed[0]);
  }

  private showDiff(path: string): void {
    if (!this.diff || !this.theirs) return;
    const original = monaco.editor.createModel(this.theirs.files[path] ?? "", languageOf(path));
    const modified = this.merged.get(path);
    if (!modified) return;
    this.diff.setModel({ original, modified });
    this.diffModels.forEach((m) => m.original.dispose());
    this.diffModels = [{ original, modified }];
  }

  private closeCompare(): void {
    this.diff?.setModel(null);
    this.diffModels.forEach((m) => m.original.dispose());
    this.diffModels = [];
    this.q("[data-compare]").hidden = true;
    this.root.dataset.compareState = "closed";
    this.q("[data-editor]").hidden = false;
  }

  private acceptTheirs(theirs: Source): void {
    this.source = theirs;
    this.files.saved = { ...theirs.files };
    this.baseRevision = theirs.revision;
  }

  private takeTheirs(): void {
    const theirs = this.theirs;
    if (!theirs) return;
    this.closeCompare();
    this.loading = true;
    this.files.reset(theirs.files);
    this.loading = false;
    this.acceptTheirs(theirs);
    this.tabs = this.tabs.filter((p) => this.files.models.has(p));
    const next = this.tabs.includes(this.active) ? this.active : this.files.paths()[0];
    this.tabs = this.tabs.length ? this.tabs : [next];
    this.open(next);
    void this.deleteDraft();
    this.notice(`You now have ${theirs.saved_by ?? "their"} saved code (revision ${theirs.revision}).`, "info");
    this.render();
  }

  /** Keep the right side of every changed file (with any hand merge) and save it over theirs. */
  private async keepMine(): Promise<void> {
    const theirs = this.theirs;
    if (!theirs) return;
    for (const [path, model] of this.merged) {
      const text = model.getValue();
      const existing = this.files.models.get(path);
      if (existing) {
        if (existing.getValue() !== text) existing.setValue(text);
      } else if (text !== "") {
        // A file you deleted stays deleted unless you wrote something into it on the right.
        this.files.add(path, text);
      }
    }
    this.closeCompare();
    this.acceptTheirs(theirs);
    if (this.active) this.open(this.active);
    await this.save(theirs.revision);
  }

  // Syntax and run errors ----------------------------------------------------------------------

  private scheduleSyntax(path: string): void {
    if (!path.endsWith(".py")) return;
    window.clearTimeout(this.syntaxTimers.get(path));
    this.syntaxTimers.set(path, window.setTimeout(() => void this.checkSyntax(path), SYNTAX_DELAY_MS));
  }

  private async checkSyntax(path: string): Promise<void> {
    const model = this.files.models.get(path);
    if (!model) return;
    const content = model.getValue();
    const answer = await call<{ errors: SyntaxProblem[] }>(
      "POST", `${this.api}/syntax`, { path, content });
    if (answer.status !== 200 || model.isDisposed() || model.getValue() !== content) return;
    const errors = answer.data.errors ?? [];
    const lines = model.getLineCount();
    monaco.editor.setModelMarkers(model, SYNTAX_OWNER, errors.map((error) => {
      const line = Math.min(Math.max(1, error.line || 1), lines);
      const column = Math.max(1, error.column || 1);
      const endLine = Math.min(Math.max(line, error.end_line || line), lines);
      const endColumn = error.end_line && error.end_column ? error.end_column : model.getLineMaxColumn(endLine);
      return {
        severity: monaco.MarkerSeverity.Error,
        message: error.message,
        startLineNumber: line,
        startColumn: column,
        endLineNumber: endLine,
        endColumn: Math.max(endLine === line ? column + 1 : 1, endColumn),
        source: "syntax",
      };
    }));
    this.renderProblems();
  }

  private renderProblems(): void {
    const box = this.q("[data-problems]");
    const markers = monaco.editor.getModelMarkers({ owner: SYNTAX_OWNER });
    const rows = markers.map((marker) => {
      const path = [...this.files.models].find(([, m]) => m.uri.toString() === marker.resource.toString())?.[0] ?? "";
      const row = el("button", "ide-problem", `${path}:${marker.startLineNumber}:${marker.startColumn}  ${marker.message}`);
      row.type = "button";
      row.addEventListener("click", () => {
        this.open(path);
        this.editor.revealLineInCenter(marker.startLineNumber);
        this.editor.setPosition({ lineNumber: marker.startLineNumber, column: marker.startColumn });
        this.editor.focus();
      });
      return row;
    });
    box.replaceChildren(...rows);
    box.hidden = rows.length === 0;
    this.root.dataset.syntaxErrors = String(rows.length);
  }

  private clearRunError(): void {
    this.runDecorations?.clear();
    for (const model of this.files.models.values()) monaco.editor.setModelMarkers(model, RUN_OWNER, []);
  }

  private markRunError(error: RunError): void {
    if (!error.line) return;
    const path = error.path && this.files.models.has(error.path) ? error.path : "model.py";
    const model = this.files.models.get(path);
    if (!model) return;
    this.open(path);
    const line = Math.min(error.line, model.getLineCount());
    this.runDecorations?.clear();
    this.runDecorations = this.editor.createDecorationsCollection([{
      range: new monaco.Range(line, 1, line, 1),
      options: { isWholeLine: true, className: "ide-error-line", glyphMarginClassName: "ide-error-glyph",
        hoverMessage: { value: [error.type, error.message].filter(Boolean).join(": ") } },
    }]);
    monaco.editor.setModelMarkers(model, RUN_OWNER, [{
      severity: monaco.MarkerSeverity.Error, message: [error.type, error.message].filter(Boolean).join(": "),
      startLineNumber: line, startColumn: 1, endLineNumber: line, endColumn: model.getLineMaxColumn(line),
    }]);
    this.editor.revealLineInCenter(line);
    this.root.dataset.errorLine = `${path}:${line}`;
  }

  // Test and deploy --------------------------------------------------------------------------

  private async test(): Promise<void> {
    if (!this.checkSample()) return;
    const button = this.root.querySelector<HTMLButtonElement>('[data-action="test"]');
    if (button) button.disabled = true;
    try {
      await this.tests?.start(this.files.current(), this.sampleValue());
    } finally {
      if (button) button.disabled = false;
    }
  }

  private async deploy(): Promise<void> {
    const button = this.root.querySelector<HTMLButtonElement>('[data-action="deploy"]');
    const question = "The last test run of this code failed. Deploy it anyway? The version will most likely fail at "
      + "the same step; the version serving now keeps serving.";
    if (this.tests?.lastOutcome === "failed" && !window.confirm(question)) return;
    if (button) button.disabled = true;
    try {
      if (this.dirty() && !(await this.save())) return;
      await this.deployer?.deploy();
    } finally {
      if (button) button.disabled = false;
    }
  }

  private showSide(name: string): void {
    this.root.querySelectorAll<HTMLElement>("[data-side-tab]").forEach((tab) => {
      tab.setAttribute("aria-selected", String(tab.dataset.sideTab === name));
    });
    this.root.querySelectorAll<HTMLElement>("[data-side-panel]").forEach((panel) => {
      panel.hidden = panel.dataset.sidePanel !== name;
    });
  }

  // Presence and notices --------------------------------------------------------------------

  private startPresence(): void {
    document.addEventListener("podium:event", (event) => {
      const { event: name, data } = (event as CustomEvent<{ event: string; data: Record<string, unknown> }>).detail;
      if (name === "model.editing" && data.model === this.model) this.showEditors((data.editors ?? []) as Editor[]);
    });
    const beat = async (): Promise<void> => {
      const answer = await call<{ editors: Editor[] }>("POST", `${this.api}/editing`, {});
      if (answer.status === 200) this.showEditors(answer.data.editors ?? []);
    };
    void beat();
    window.setInterval(() => {
      if (document.visibilityState === "visible") void beat();
    }, HEARTBEAT_MS);
  }

  private showEditors(editors: Editor[]): void {
    const others = [...new Set(editors.map((e) => e.username).filter((name) => name !== this.me))];
    const box = this.q("[data-presence]");
    box.hidden = others.length === 0;
    box.textContent = others.length === 0 ? ""
      : others.length === 1 ? `${others[0]} is also editing`
        : `${others.slice(0, -1).join(", ")} and ${others[others.length - 1]} are also editing`;
    this.root.dataset.editors = others.join(",");
  }

  private setSaveState(text: string): void {
    this.q("[data-save-state]").textContent = text;
  }

  private notice(text: string, kind: "info" | "warning" | "error" = "info"): void {
    const box = this.q("[data-notice]");
    box.textContent = text;
    box.className = `ide-notice ide-notice-${kind}`;
    box.hidden = !text;
  }
}

function main(): void {
  const root = document.querySelector<HTMLElement>("[data-ide]");
  if (root) void new Ide(root).start();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
else main();
