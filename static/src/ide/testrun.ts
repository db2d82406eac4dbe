/**
 * The test panel: runs `load()` then `predict()` on the sample input with the draft code in a
 * sandbox (`POST test-runs`) and follows the run over its websocket
 * (`/ws/workspaces/<slug>/models/<name>/test-runs/<id>`): output lines as they come, then a final
 * status with the timings and the answer, or the error with its traceback and failing line.
 * If the socket closes before the final status, the run is read once with `GET test-runs/<id>`.
 */
import { call, detail, websocketUrl } from "./api";
import type { FileMap } from "./files";

export interface RunLine {
  time?: string | null;
  stream: string;
  text: string;
}

export interface RunError {
  type?: string;
  message?: string;
  traceback?: string;
  line?: number | null;
  path?: string | null;
}

export interface RunState {
  id?: string | number;
  status: string;
  result?: { load_ms?: number; predict_ms?: number; answer?: unknown } | null;
  error?: RunError | null;
  failed_step?: string | null;
  /** true when the run started in a warm runner, its libraries already imported */
  warm?: boolean | null;
  output?: RunLine[];
}

const FINAL = new Set(["passed", "failed"]);
const QUEUED_HINT_MS = 20_000;
const LABELS: Record<string, string> = {
  queued: "Queued", building: "Building the environment…", starting: "Starting…", running: "Running…",
  passed: "Passed", failed: "Failed",
};

function isFinal(state: RunState): boolean {
  return FINAL.has(state.status) || Boolean(state.result) || Boolean(state.error);
}

export class TestPanel {
  private run: HTMLElement;
  private output: HTMLElement;
  private socket: WebSocket | undefined;
  private queuedHint: number | undefined;
  onError: (error: RunError) => void = () => undefined;
  onStart: () => void = () => undefined;

  constructor(private root: HTMLElement, private api: string, private slug: string, private model: string) {
    this.run = root.querySelector<HTMLElement>("[data-run]") as HTMLElement;
    this.output = root.querySelector<HTMLElement>("[data-run-output]") as HTMLElement;
  }

  async start(files: FileMap, sampleInput: unknown): Promise<void> {
    this.socket?.close();
    this.onStart();
    this.reset();
    this.setStatus("starting", "Starting…");
    const answer = await call<{ id: string | number; status: string }>("POST", `${this.api}/test-runs`,
      { files, sample_input: sampleInput });
    if (answer.status !== 201 && answer.status !== 200) {
      this.setStatus("failed", "Not started");
      this.showError({ type: "Error", message: detail(answer) });
      return;
    }
    this.setStatus(answer.data.status || "queued", LABELS[answer.data.status] ?? answer.data.status);
    // A run waits in the queue only while Podium's worker builds its environment; one that never leaves
    // it means no worker is taking tasks.
    window.clearTimeout(this.queuedHint);
    this.queuedHint = window.setTimeout(() => {
      if (this.root.dataset.runStatus === "queued") {
        this.appendLine({ stream: "system", text: "podium: still queued; is Podium's worker running?" });
      }
    }, QUEUED_HINT_MS);
    this.follow(answer.data.id);
  }

  private follow(id: string | number): void {
    const path = `/ws/workspaces/${encodeURIComponent(this.slug)}/models/${encodeURIComponent(this.model)}`
      + `/test-runs/${encodeURIComponent(String(id))}`;
    const socket = new WebSocket(websocketUrl(path));
    this.socket = socket;
    let finished = false;
    socket.onmessage = (event: MessageEvent<string>) => {
      const message = JSON.parse(event.data) as { event: string; line?: RunLine } & RunState;
      if (message.event === "line" && message.line) this.appendLine(message.line);
      if (message.event === "status") {
        if (isFinal(message)) finished = true;
        this.showState(message);
      }
    };
    socket.onclose = () => {
      if (!finished && this.socket === socket) void this.fetchOnce(id);
    };
  }

  private async fetchOnce(id: string | number): Promise<void> {
    const answer = await call<RunState>("GET", `${this.api}/test-runs/${encodeURIComponent(String(id))}`);
    if (answer.status !== 200) return;
    if (this.output.childElementCount === 0) (answer.data.output ?? []).forEach((line) => this.appendLine(line));
    this.showState(answer.data);
  }

  private reset(): void {
    this.run.hidden = false;
    this.output.replaceChildren();
    this.part("[data-run-answer-wrap]").hidden = true;
    this.part("[data-run-error-wrap]").hidden = true;
    this.part("[data-run-timing]").textContent = "";
  }

  private part(selector: string): HTMLElement {
    return this.root.querySelector<HTMLElement>(selector) as HTMLElement;
  }

  /** How the member's last test run in this editor ended ("passed", "failed"), if one did. */
  get lastOutcome(): string | undefined {
    const state = this.root.dataset.runStatus;
    return state && FINAL.has(state) ? state : undefined;
  }

  private setStatus(state: string, label: string): void {
    const badge = this.part("[data-run-status]");
    badge.textContent = label;
    badge.className = `badge run-${state}`;
    this.root.dataset.runStatus = state;
  }

  appendLine(line: RunLine): void {
    const row = document.createElement("div");
    row.className = `log-line log-${line.stream}`;
    const text = document.createElement("span");
    text.className = "log-text";
    text.textContent = line.text;
    row.append(text);
    this.output.append(row);
    this.output.scrollTop = this.output.scrollHeight;
  }

  private showState(state: RunState): void {
    if (state.result) {
      this.setStatus("passed", "Passed");
      const { load_ms: load, predict_ms: predict } = state.result;
      const fmt = (ms: number | undefined): string => (ms == null ? "–" : `${Math.round(ms)} ms`);
      const start = state.warm ? " · warm start" : "";
      this.part("[data-run-timing]").textContent = `load ${fmt(load)} · predict ${fmt(predict)}${start}`;
      this.part("[data-run-answer]").textContent = JSON.stringify(state.result.answer, null, 2);
      this.part("[data-run-answer-wrap]").hidden = false;
    } else if (state.error) {
      this.setStatus("failed", state.failed_step ? `Failed: ${state.failed_step}` : "Failed");
      this.showError(state.error);
    } else {
      this.setStatus(state.status, LABELS[state.status] ?? state.status);
    }
  }

  private showError(error: RunError): void {
    this.part("[data-run-error-title]").textContent = [error.type, error.message].filter(Boolean).join(": ");
    this.part("[data-run-traceback]").textContent = error.traceback || error.message || "";
    this.part("[data-run-error-wrap]").hidden = false;
    this.onError(error);
  }
}
