/**
 * Calls to Podium's API from the editor pages, with the session cookie and the page's CSRF token.
 * Every call answers `{status, data}`: callers branch on the status (409 conflict, 404 no draft...)
 * instead of catching exceptions; a network failure reads as status 0.
 */

export interface Answer<T = Record<string, unknown>> {
  status: number;
  data: T;
}

export function csrfToken(): string {
  return document.querySelector<HTMLInputElement>('input[name="csrfmiddlewaretoken"]')?.value ?? "";
}

export async function call<T = Record<string, unknown>>(method: string, url: string, body?: unknown): Promise<Answer<T>> {
  const headers: Record<string, string> = { "X-Requested-With": "fetch", Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  try {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      cache: "no-store",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let data: unknown = {};
    try {
      data = text ? JSON.parse(text) : {};
    } catch {
      data = { detail: text.slice(0, 300) };
    }
    return { status: response.status, data: data as T };
  } catch (error) {
    return { status: 0, data: { detail: `Podium could not be reached: ${(error as Error).message}` } as T };
  }
}

/** The message to show for a failed answer. */
export function detail(answer: Answer<unknown>): string {
  const data = answer.data as Record<string, unknown> | undefined;
  if (data && typeof data.detail === "string") return data.detail;
  if (answer.status === 403) return "Your role does not allow this.";
  return `Podium answered ${answer.status}.`;
}

export function websocketUrl(path: string): string {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${window.location.host}${path}`;
}
