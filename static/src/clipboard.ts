/**
 * Copy buttons: `<button data-copy="#selector">` copies the value (inputs) or
 * text of the element the selector names. Works on plain-HTTP installs too,
 * where `navigator.clipboard` is unavailable, by selecting the text and using
 * the legacy copy command.
 */

function textOf(target: Element): string {
  if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) {
    return target.value;
  }
  return target.textContent?.trim() ?? "";
}

function legacyCopy(text: string): boolean {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

export async function copyText(text: string): Promise<boolean> {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Permission refused (e.g. a headless browser): fall back below.
    }
  }
  return legacyCopy(text);
}

function flashLabel(button: HTMLButtonElement, label: string): void {
  const original = button.dataset.label ?? button.innerHTML;
  button.dataset.label = original;
  button.textContent = label;
  window.setTimeout(() => {
    button.innerHTML = original;
  }, 1600);
}

export function initClipboard(root: ParentNode): void {
  root.addEventListener("click", (event) => {
    const button = (event.target as Element | null)?.closest<HTMLButtonElement>("button[data-copy]");
    if (!button) return;
    event.preventDefault();
    const target = document.querySelector(button.dataset.copy ?? "");
    if (!target) return;
    if (target instanceof HTMLInputElement) target.select();
    void copyText(textOf(target)).then((ok) => flashLabel(button, ok ? "Copied" : "Press Ctrl+C"));
  });
}
