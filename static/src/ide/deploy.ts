/**
 * The deploy panel: `POST deploy` makes a new version from the saved code; its steps (environment,
 * start, ready) move live with the workspace's `model.version` events (live.ts dispatches them as
 * `podium:event`), and once it is ready the endpoint panel shows its URL, curl and Python snippets
 * with this Podium's real URL, a form that calls production through the model page's "try it"
 * endpoint, and the version's live logs (logs.ts). A slow event stream is backed by reading the
 * version every few seconds while it is in progress.
 */
import { initLogs } from "../logs";
import { call, csrfToken, detail } from "./api";

interface Step {
  name: string;
  status: string;
}

interface Version {
  number: number;
  status: string;
  steps?: Step[];
  error?: string | null;
  failed_step?: string | null;
}

const LABELS: Record<string, string> = {
  environment: "Environment", start: "Start sandbox", load: "Load model", ready: "Ready check",
};
const DEFAULT_STEPS = ["environment", "start", "load"];
const POLL_MS = 3000;

export class DeployPanel {
  private version: Version | undefined;
  private steps = new Map<string, string>();
  private poll: number | undefined;
  private logsStarted = false;
  sampleBody: () => string = () => "{}";

  constructor(private root: HTMLElement, private ide: HTMLElement, private api: string, private slug: string,
              private model: string) {
    document.addEventListener("podium:event", (event) => {
      const { event: name, data } = (event as CustomEvent<{ event: string; data: Record<string, unknown> }>).detail;
      if (name !== "model.version" || data.model !== this.model || !this.version) return;
      if (Number(data.version) !== this.version.number) return;
      if (typeof data.step === "string" && typeof data.step_status === "string") {
        this.steps.set(data.step, data.step_status);
      }
      if (typeof data.status === "string") this.version.status = data.status;
      this.render();
      if (data.status === "failed") void this.refresh();
    });
    root.querySelector<HTMLFormElement>("[data-call-form]")?.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.callEndpoint(event.target as HTMLFormElement);
    });
  }

  async deploy(): Promise<boolean> {
    this.root.querySelector<HTMLElement>("[data-deploy-empty]")!.hidden = true;
    this.root.querySelector<HTMLElement>("[data-endpoint-panel]")!.hidden = true;
    this.setError("");
    const answer = await call<Version>("POST", `${this.api}/deploy`, {});
    if (answer.status !== 201 && answer.status !== 200) {
      this.setError(detail(answer));
      return false;
    }
    this.show(answer.data);
    return true;
  }

  private show(version: Version): void {
    this.version = version;
    this.steps = new Map((version.steps ?? []).map((step) => [step.name, step.status]));
    this.render();
    window.clearInterval(this.poll);
    this.poll = window.setInterval(() => void this.refresh(), POLL_MS);
  }

  private async refresh(): Promise<void> {
    if (!this.version) return;
    const answer = await call<Version>("GET", `${this.api}/versions/${this.version.number}`);
    if (answer.status !== 200) return;
    for (const step of answer.data.steps ?? []) this.steps.set(step.name, step.status);
    this.version = { ...this.version, ...answer.data };
    this.render();
  }

  private render(): void {
    const version = this.version;
    if (!version) return;
    this.ide.querySelector<HTMLElement>("[data-deploy-version]")!.textContent = `v${version.number}`;
    const list = this.root.querySelector<HTMLElement>("[data-steps]")!;
    const names = this.steps.size ? [...this.steps.keys()] : DEFAULT_STEPS;
    for (const name of DEFAULT_STEPS) if (!names.includes(name)) names.push(name);
    list.replaceChildren(...names.map((name) => {
      const item = document.createElement("li");
      let status = this.steps.get(name) ?? "pending";
      if (version.status === "ready") status = "done";
      item.className = `ide-step step-${status}`;
      item.dataset.step = name;
      item.dataset.stepStatus = status;
      item.textContent = LABELS[name] ?? name;
      return item;
    }));
    this.root.dataset.deployStatus = version.status;
    this.ide.dataset.deployStatus = version.status;
    if (version.status === "ready") {
      window.clearInterval(this.poll);
      this.showEndpoint(version.number);
    } else if (version.status === "failed" || version.status === "stopped") {
      window.clearInterval(this.poll);
      this.setError(version.error ? `Deploy failed: ${version.error}` : "Deploy failed: see the version's build log.");
    }
  }

  private setError(message: string): void {
    const box = this.root.querySelector<HTMLElement>("[data-deploy-error]")!;
    box.textContent = message;
    box.hidden = !message;
  }

  private showEndpoint(number: number): void {
    const panel = this.root.querySelector<HTMLElement>("[data-endpoint-panel]")!;
    const endpoint = this.ide.dataset.endpoint ?? "";
    const body = compactJson(this.sampleBody());
    this.root.querySelector<HTMLElement>("[data-snippet-curl]")!.textContent = `curl -X POST ${endpoint} \\
  -H "Authorization: Bearer $PODIUM_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '${body}'`;
    this.root.querySelector<HTMLElement>("[data-snippet-python]")!.textContent = `import os
import httpx

response = httpx.post(
    "${endpoint}",
    headers={"Authorization": f"Bearer {os.environ['PODIUM_API_KEY']}"},
    json=${body},
)
response.raise_for_status()
print(response.json())`;
    const callBody = this.root.querySelector<HTMLTextAreaElement>("[data-call-body]");
    if (callBody && !callBody.value) callBody.value = body;
    panel.hidden = false;
    this.showLogs(number);
  }

  private showLogs(number: number): void {
    const slot = this.root.querySelector<HTMLElement>("[data-logs-slot]")!;
    if (!this.logsStarted) {
      slot.innerHTML = `<select data-logs-version hidden aria-label="Version"></select>
<div class="logs" data-logs data-source="runtime">
  <div class="logs-bar">
    <div class="tab-list" role="tablist" aria-label="Log source">
      <button type="button" role="tab" data-log-source="runtime" aria-selected="true">Runtime</button>
      <button type="button" role="tab" data-log-source="build" aria-selected="false">Build</button>
    </div>
    <span class="logs-state muted small" data-logs-state>Connecting…</span>
    <label class="logs-follow small"><input type="checkbox" checked data-logs-follow> Follow</label>
  </div>
  <div class="logview" role="log" aria-label="Log lines" data-logs-lines tabindex="0" data-testid="ide-logs"></div>
</div>`;
      const logs = slot.querySelector<HTMLElement>("[data-logs]")!;
      logs.dataset.model = this.model;
      logs.dataset.version = String(number);
      this.addOption(slot, number);
      this.logsStarted = true;
      initLogs(this.slug);
      return;
    }
    const picker = slot.querySelector<HTMLSelectElement>("[data-logs-version]")!;
    this.addOption(slot, number);
    picker.value = String(number);
    picker.dispatchEvent(new Event("change", { bubbles: true }));
  }

  private addOption(slot: HTMLElement, number: number): void {
    const picker = slot.querySelector<HTMLSelectElement>("[data-logs-version]")!;
    if ([...picker.options].some((o) => o.value === String(number))) return;
    picker.append(new Option(`v${number}`, String(number), true, true));
  }

  private async callEndpoint(form: HTMLFormElement): Promise<void> {
    const body = form.querySelector<HTMLTextAreaElement>("[data-call-body]")!.value;
    const result = form.querySelector<HTMLElement>("[data-call-result]")!;
    const badge = form.querySelector<HTMLElement>("[data-call-status]")!;
    const meta = form.querySelector<HTMLElement>("[data-call-meta]")!;
    const out = form.querySelector<HTMLElement>("[data-call-answer]")!;
    result.hidden = false;
    try {
      JSON.parse(body);
    } catch (error) {
      badge.textContent = "not sent";
      badge.className = "badge http http-4xx";
      meta.textContent = "";
      out.textContent = `The body is not valid JSON: ${(error as Error).message}`;
      return;
    }
    const button = form.querySelector<HTMLButtonElement>('button[type="submit"]')!;
    button.disabled = true;
    try {
      const response = await fetch(this.ide.dataset.tryUrl ?? "", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), "X-Requested-With": "fetch" },
        body,
      });
      const payload = (await response.json().catch(() => ({}))) as Record<string, unknown>;
      badge.textContent = String(response.status);
      badge.className = `badge http http-${String(response.status).charAt(0)}xx`;
      meta.textContent = "latency_ms" in payload
        ? `${Number(payload.latency_ms).toFixed(1)} ms · v${payload.version}` : "";
      out.textContent = "answer" in payload ? JSON.stringify(payload.answer, null, 2) : String(payload.detail ?? "");
      form.dataset.callResult = String(response.status);
    } catch (error) {
      badge.textContent = "failed";
      out.textContent = `Podium could not be reached: ${(error as Error).message}`;
    } finally {
      button.disabled = false;
    }
  }
}

function compactJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return text.trim() || "{}";
  }
}
