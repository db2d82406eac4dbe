/**
 * Live log panels: `[data-logs data-model data-version data-source]` with Runtime / Build tabs.
 *
 * Each panel opens `/ws/workspaces/<slug>/models/<name>/versions/<n>/logs?source=...`, which
 * sends the last lines and then each new one as `{"event": "line", "line": {time, stream,
 * replica, text}}`, and `{"event": "end"}` when the log is finished (a stopped sandbox, or
 * one that has not started yet). When a deploy event for the panel's version arrives after
 * the end, the panel reconnects so a freshly started sandbox shows up without a reload.
 */

interface LogLine {
  time: string | null;
  stream: string;
  replica: number;
  text: string;
}

interface LogMessage {
  event: "line" | "end";
  line?: LogLine;
}

const MAX_LINES = 2000;
const RETRY_MS = 3000;
const CLOSE_FORBIDDEN = 4403;

class LogPanel {
  private socket: WebSocket | undefined;
  private ended = false;
  private retry: number | undefined;
  private lines: HTMLElement;
  private state: HTMLElement | null;
  private follow: HTMLInputElement | null;

  constructor(private root: HTMLElement, private slug: string) {
    this.lines = root.querySelector<HTMLElement>("[data-logs-lines]") as HTMLElement;
    this.state = root.querySelector<HTMLElement>("[data-logs-state]");
    this.follow = root.querySelector<HTMLInputElement>("[data-logs-follow]");
    root.querySelectorAll<HTMLButtonElement>("[data-log-source]").forEach((tab) => {
      tab.addEventListener("click", () => this.show(this.version, tab.dataset.logSource ?? "runtime"));
    });
  }

  get version(): string {
    return this.root.dataset.version ?? "";
  }

  get source(): string {
    return this.root.dataset.source ?? "runtime";
  }

  show(version: string, source: string): void {
    this.root.dataset.version = version;
    this.root.dataset.source = source;
    this.root.querySelectorAll<HTMLButtonElement>("[data-log-source]").forEach((tab) => {
      tab.setAttribute("aria-selected", String(tab.dataset.logSource === source));
    });
    this.connect();
  }

  connect(): void {
    window.clearTimeout(this.retry);
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.close();
    }
    this.lines.replaceChildren();
    this.ended = false;
    this.setState("Connecting…", "connecting");
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const model = encodeURIComponent(this.root.dataset.model ?? "");
    const url = `${scheme}://${window.location.host}/ws/workspaces/${encodeURIComponent(this.slug)}/models/`
      + `${model}/versions/${encodeURIComponent(this.version)}/logs?source=${encodeURIComponent(this.source)}`;
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onopen = () => this.setState("Live", "live");
    socket.onmessage = (event: MessageEvent<string>) => this.receive(JSON.parse(event.data) as LogMessage);
    socket.onclose = (event) => {
      if (this.ended) return;
      if (event.code === CLOSE_FORBIDDEN) {
        this.setState("Not available", "ended");
        return;
      }
      this.setState("Disconnected; retrying…", "connecting");
      this.retry = window.setTimeout(() => this.connect(), RETRY_MS);
    };
  }

  private receive(message: LogMessage): void {
    if (message.event === "end") {
      this.ended = true;
      const empty = this.lines.childElementCount === 0;
      this.setState(empty ? "No output yet" : "End of log", "ended");
      if (empty) {
        const note = document.createElement("div");
        note.className = "log-note";
        note.textContent = this.source === "build"
          ? "No build output: the environment was cached, or the build has not started."
          : "No runtime output: the sandbox is not running (yet).";
        this.lines.append(note);
      }
      return;
    }
    if (message.line) this.append(message.line);
  }

  private append(line: LogLine): void {
    this.lines.querySelector(".log-note")?.remove();
    const row = document.createElement("div");
    row.className = `log-line log-${line.stream}`;
    const when = document.createElement("span");
    when.className = "log-time";
    when.textContent = line.time ? formatTime(line.time) : "";
    if (line.time) when.title = line.time;
    const text = document.createElement("span");
    text.className = "log-text";
    text.textContent = line.text;
    row.append(when);
    if (line.replica > 0) {
      const replica = document.createElement("span");
      replica.className = "log-replica";
      replica.textContent = `r${line.replica}`;
      row.append(replica);
    }
    row.append(text);
    this.lines.append(row);
    while (this.lines.childElementCount > MAX_LINES) this.lines.firstElementChild?.remove();
    if (this.follow?.checked !== false) this.lines.scrollTop = this.lines.scrollHeight;
  }

  private setState(label: string, state: string): void {
    this.root.dataset.logsState = state;
    if (this.state) this.state.textContent = label;
  }

  /** A deploy step of this panel's version moved: pick up a sandbox that has started since. */
  onVersionEvent(version: string): void {
    if (version === this.version && this.ended) this.connect();
  }
}

function formatTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

export function initLogs(slug: string): void {
  const panels: LogPanel[] = [];
  document.querySelectorAll<HTMLElement>("[data-logs]").forEach((root) => {
    const panel = new LogPanel(root, slug);
    panels.push(panel);
    panel.connect();
  });
  if (panels.length === 0) return;
  // The version picker is a fragment re-rendered on deploy events: listen on the document, and keep
  // the version being shown selected after each swap.
  const picker = (): HTMLSelectElement | null => document.querySelector<HTMLSelectElement>("[data-logs-version]");
  document.addEventListener("change", (event) => {
    if (event.target === picker()) panels[0].show((event.target as HTMLSelectElement).value, panels[0].source);
  });
  document.addEventListener("podium:fragment", (event) => {
    const select = picker();
    if ((event as CustomEvent<{ name: string }>).detail.name === "log-versions" && select) {
      select.value = panels[0].version;
    }
  });
  document.addEventListener("podium:event", (event) => {
    const { event: name, data } = (event as CustomEvent<{ event: string; data: Record<string, unknown> }>).detail;
    const model = document.querySelector<HTMLElement>("[data-model-page]")?.dataset.model;
    if (name === "model.version" && data.model === model) {
      panels.forEach((panel) => panel.onVersionEvent(String(data.version)));
    }
  });
}
