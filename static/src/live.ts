/**
 * Live updates on workspace pages.
 *
 * Opens the workspace's events websocket (`/ws/workspaces/<slug>/events`),
 * reconnecting with exponential backoff, and keeps the page current without
 * a reload: each element marked `data-fragment="<name>"` with
 * `data-refresh-on="member. invitation."` (event-name prefixes) is
 * re-fetched from `<this page>?fragment=<name>` when a matching event
 * arrives and swapped in place. The server renders the fragment with the
 * same template and permission checks as the full page, so the client never
 * builds markup from event data.
 *
 * `body[data-live]` says the socket's state (connecting / connected /
 * offline) for the status dot and for tests.
 */

export interface LiveEvent {
  event: string;
  data: Record<string, unknown>;
}

const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_FORBIDDEN = 4403;
const MAX_BACKOFF_MS = 30_000;
const PING_EVERY_MS = 25_000;
const COALESCE_MS = 80;

function setState(state: "connecting" | "connected" | "offline"): void {
  document.body.dataset.live = state;
  const label = document.querySelector<HTMLElement>("[data-live-label]");
  if (label) {
    label.textContent = { connecting: "Connecting…", connected: "Live", offline: "Offline" }[state];
  }
}

function fragmentsFor(eventName: string): string[] {
  const names = new Set<string>();
  document.querySelectorAll<HTMLElement>("[data-fragment][data-refresh-on]").forEach((el) => {
    const prefixes = (el.dataset.refreshOn ?? "").split(/\s+/).filter(Boolean);
    if (prefixes.some((prefix) => eventName.startsWith(prefix))) {
      names.add(el.dataset.fragment as string);
    }
  });
  return [...names];
}

function allFragments(): string[] {
  return [...new Set(
    Array.from(document.querySelectorAll<HTMLElement>("[data-fragment]"), (el) => el.dataset.fragment as string),
  )];
}

export async function refreshFragment(name: string): Promise<void> {
  const url = new URL(window.location.href);
  url.search = "";
  url.searchParams.set("fragment", name);
  const response = await fetch(url, {
    credentials: "same-origin",
    cache: "no-store",
    headers: { "X-Requested-With": "fetch" },
  });
  if (response.status === 404 || response.status === 403) {
    // No longer a member (or no longer allowed): let the full page say so.
    window.location.reload();
    return;
  }
  if (!response.ok) return;
  const template = document.createElement("template");
  template.innerHTML = (await response.text()).trim();
  const fresh = template.content.querySelector<HTMLElement>(`[data-fragment="${name}"]`);
  const current = document.querySelector<HTMLElement>(`[data-fragment="${name}"]`);
  if (!fresh || !current) return;
  current.replaceWith(fresh);
  fresh.classList.add("flash");
  document.dispatchEvent(new CustomEvent("podium:fragment", { detail: { name } }));
}

class Refresher {
  private pending = new Set<string>();
  private timer: number | undefined;

  schedule(names: string[]): void {
    names.forEach((name) => this.pending.add(name));
    if (this.timer !== undefined || this.pending.size === 0) return;
    this.timer = window.setTimeout(() => {
      const batch = [...this.pending];
      this.pending.clear();
      this.timer = undefined;
      batch.forEach((name) => void refreshFragment(name).catch(() => undefined));
    }, COALESCE_MS);
  }
}

function handle(message: LiveEvent, refresher: Refresher): void {
  const me = document.body.dataset.username;
  const data = message.data ?? {};
  switch (message.event) {
    case "workspace.renamed":
      document.querySelectorAll<HTMLElement>("[data-workspace-name]").forEach((el) => {
        el.textContent = String(data.name ?? el.textContent);
      });
      break;
    case "workspace.deleted":
      window.location.assign("/workspaces");
      return;
    case "member.removed":
      if (data.user === me) {
        window.location.assign("/workspaces");
        return;
      }
      break;
    case "member.changed":
      if (data.user === me) {
        // A new role changes what this page may show: load it again.
        window.location.reload();
        return;
      }
      break;
  }
  refresher.schedule(fragmentsFor(message.event));
  document.dispatchEvent(new CustomEvent<LiveEvent>("podium:event", { detail: message }));
}

export function startLiveUpdates(slug: string): void {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${window.location.host}/ws/workspaces/${encodeURIComponent(slug)}/events`;
  const refresher = new Refresher();
  let attempt = 0;
  let everConnected = false;
  let ping: number | undefined;

  const connect = (): void => {
    setState("connecting");
    const socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      attempt = 0;
      ping = window.setInterval(() => socket.send(JSON.stringify({ type: "ping" })), PING_EVERY_MS);
    });
    socket.addEventListener("message", (event: MessageEvent<string>) => {
      let message: LiveEvent;
      try {
        message = JSON.parse(event.data) as LiveEvent;
      } catch {
        return;
      }
      if (message.event === "hello") {
        setState("connected");
        // After a reconnect, events may have been missed: refresh everything once.
        if (everConnected) refresher.schedule(allFragments());
        everConnected = true;
        return;
      }
      if (message.event !== "pong") handle(message, refresher);
    });
    socket.addEventListener("close", (event) => {
      window.clearInterval(ping);
      setState("offline");
      if (event.code === CLOSE_UNAUTHENTICATED || event.code === CLOSE_FORBIDDEN) return;
      const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
      attempt += 1;
      window.setTimeout(connect, delay);
    });
  };
  connect();
}
