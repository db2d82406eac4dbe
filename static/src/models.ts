/**
 * Model pages (`[data-model-page data-model=<name>]`, `/w/<slug>/models/...`).
 *
 * - Deploy state live: `model.version` / `model.alias` events of this model (from the
 *   workspace events socket, see live.ts) re-fetch the page's fragments. A fragment
 *   holding the focus or a form being edited is refreshed once the focus leaves it, so
 *   a deploy finishing elsewhere never wipes what someone is typing.
 * - Recent calls and the traffic charts are re-fetched every 30 s while the tab is
 *   visible, and right after a "try it" call.
 * - "Try it": posts the JSON body with the page's CSRF token and shows status, latency,
 *   version and the answer.
 * - Small helpers: tabs (`[data-tabs]`), the running total of a traffic split.
 */
import "./styles/models.css";
import { initCharts } from "./charts";
import { refreshFragment } from "./live";
import { initLogs } from "./logs";

const POLL_MS = 30_000;
const AFTER_CALL_MS = 1200; // the server writes call records every 0.5 s
const COALESCE_MS = 100;

interface PodiumEvent {
  event: string;
  data: Record<string, unknown>;
}

class FragmentRefresher {
  private pending = new Set<string>();
  private deferred = new Set<string>();
  private timer: number | undefined;

  constructor() {
    document.addEventListener("input", (event) => {
      (event.target as Element | null)?.closest("form")?.setAttribute("data-dirty", "");
    });
    document.addEventListener("focusout", () => window.setTimeout(() => this.flushDeferred(), 0));
  }

  schedule(names: string[]): void {
    names.filter((name) => document.querySelector(`[data-fragment="${name}"]`))
      .forEach((name) => this.pending.add(name));
    if (this.timer !== undefined || this.pending.size === 0) return;
    this.timer = window.setTimeout(() => {
      const batch = [...this.pending];
      this.pending.clear();
      this.timer = undefined;
      batch.forEach((name) => this.refresh(name));
    }, COALESCE_MS);
  }

  private busy(name: string): boolean {
    const element = document.querySelector(`[data-fragment="${name}"]`);
    if (!element) return false;
    const focused = document.activeElement;
    const editing = focused instanceof HTMLInputElement || focused instanceof HTMLSelectElement
      || focused instanceof HTMLTextAreaElement;
    return (editing && element.contains(focused)) || element.querySelector("form[data-dirty]") !== null;
  }

  private refresh(name: string): void {
    if (this.busy(name)) {
      this.deferred.add(name);
      return;
    }
    void refreshFragment(name).catch(() => undefined);
  }

  private flushDeferred(): void {
    for (const name of [...this.deferred]) {
      const element = document.querySelector(`[data-fragment="${name}"]`);
      if (element && !element.contains(document.activeElement)) {
        this.deferred.delete(name);
        void refreshFragment(name).catch(() => undefined);
      }
    }
  }
}

function initTabs(root: ParentNode): void {
  root.querySelectorAll<HTMLElement>("[data-tabs]").forEach((tabs) => {
    tabs.querySelectorAll<HTMLButtonElement>("[data-tab]").forEach((tab) => {
      tab.addEventListener("click", () => {
        tabs.querySelectorAll<HTMLButtonElement>("[data-tab]").forEach((other) => {
          other.setAttribute("aria-selected", String(other === tab));
        });
        tabs.querySelectorAll<HTMLElement>("[data-tab-panel]").forEach((panel) => {
          panel.hidden = panel.dataset.tabPanel !== tab.dataset.tab;
        });
      });
    });
  });
}

function updateSplitTotals(): void {
  document.querySelectorAll<HTMLFormElement>("form[data-split]").forEach((form) => {
    const total = Array.from(form.querySelectorAll<HTMLInputElement>('input[type="number"]'))
      .reduce((sum, input) => sum + (Number.parseInt(input.value, 10) || 0), 0);
    const label = form.querySelector<HTMLElement>("[data-split-total]");
    if (label) {
      label.textContent = String(total);
      label.classList.toggle("bad", total !== 100);
    }
  });
}

function httpClass(status: number): string {
  return `badge http http-${String(status).charAt(0)}xx`;
}

function showResult(form: HTMLFormElement, status: number, latency: string, version: string, answer: string): void {
  const result = form.parentElement?.querySelector<HTMLElement>("[data-try-result]");
  if (!result) return;
  const set = (selector: string, text: string): void => {
    const element = result.querySelector<HTMLElement>(selector);
    if (element) element.textContent = text;
  };
  const badge = result.querySelector<HTMLElement>("[data-try-status]");
  if (badge) {
    badge.className = status ? httpClass(status) : "badge http http-4xx";
    badge.textContent = status ? String(status) : "not sent";
  }
  set("[data-try-latency]", latency);
  set("[data-try-version]", version);
  set("[data-try-answer]", answer);
  result.hidden = false;
  result.dataset.status = String(status);
}

async function sendTry(form: HTMLFormElement, onDone: () => void): Promise<void> {
  const body = form.querySelector<HTMLTextAreaElement>("textarea")?.value ?? "";
  try {
    JSON.parse(body);
  } catch (error) {
    showResult(form, 0, "", "", `The body is not valid JSON: ${(error as Error).message}`);
    return;
  }
  const button = form.querySelector<HTMLButtonElement>('button[type="submit"]');
  if (button) button.disabled = true;
  const token = form.querySelector<HTMLInputElement>('input[name="csrfmiddlewaretoken"]')?.value ?? "";
  try {
    const response = await fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token, "X-Requested-With": "fetch" },
      body,
    });
    const text = await response.text();
    let payload: Record<string, unknown> | undefined;
    try {
      payload = JSON.parse(text) as Record<string, unknown>;
    } catch {
      payload = undefined;
    }
    if (payload && "answer" in payload) {
      const version = payload.version != null ? `v${payload.version} · ${payload.alias}` : String(payload.alias ?? "");
      showResult(form, response.status, `${Number(payload.latency_ms).toFixed(1)} ms`, version,
        JSON.stringify(payload.answer, null, 2));
    } else {
      const detail = payload?.detail ?? (response.status === 403 ? "Your role cannot call this model." : text.slice(0, 300));
      showResult(form, response.status, "", "", String(detail));
    }
  } catch (error) {
    showResult(form, 0, "", "", `Podium could not be reached: ${(error as Error).message}`);
  } finally {
    if (button) button.disabled = false;
    onDone();
  }
}

export function initModelPages(): void {
  const pageRoot = document.querySelector<HTMLElement>("[data-model-page]");
  const slug = document.body.dataset.workspace;
  if (!pageRoot || !slug) return;
  const model = pageRoot.dataset.model;
  const version = pageRoot.dataset.version;
  const refresher = new FragmentRefresher();
  initTabs(document);
  initCharts();
  initLogs(slug);

  document.addEventListener("podium:event", (event) => {
    const { event: name, data } = (event as CustomEvent<PodiumEvent>).detail;
    if (!name.startsWith("model.") || data.model !== model) return;
    if (version !== undefined) {
      if (name === "model.alias" || String(data.version) === version) refresher.schedule(["version"]);
      return;
    }
    refresher.schedule(["versions", "routing", "forms", "log-versions"]);
  });

  const refreshTraffic = (): void => refresher.schedule(["calls", "metrics"]);
  window.setInterval(() => {
    if (document.visibilityState === "visible") refreshTraffic();
  }, POLL_MS);

  document.addEventListener("submit", (event) => {
    const form = event.target as HTMLFormElement;
    if (form.dataset.try === undefined) return;
    event.preventDefault();
    void sendTry(form, () => window.setTimeout(refreshTraffic, AFTER_CALL_MS));
  });
  document.addEventListener("input", (event) => {
    if ((event.target as Element | null)?.closest("form[data-split]")) updateSplitTotals();
  });
  document.addEventListener("podium:fragment", updateSplitTotals);
  updateSplitTotals();
}
