/**
 * Confirmations for destructive actions.
 *
 * - `<form data-confirm="Revoke this key?">` asks before submitting.
 * - `<input data-confirm-match="acme">` keeps its form's submit buttons
 *   disabled until the typed text equals the expected value (the server
 *   checks it again; this only saves a round trip).
 * - `<select data-autosubmit>` submits its form on change (the form's
 *   `[data-autosubmit-fallback]` button is hidden once this script runs).
 *
 * Listeners are delegated from the document so fragments swapped in by
 * live updates keep working.
 */

export function initConfirmations(root: Document): void {
  root.addEventListener("submit", (event) => {
    const form = event.target as HTMLFormElement;
    const message = form.dataset.confirm;
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  }, true);

  const syncMatch = (input: HTMLInputElement): void => {
    const ok = input.value.trim() === input.dataset.confirmMatch;
    input.form?.querySelectorAll<HTMLButtonElement>("button[type=submit]").forEach((b) => {
      b.disabled = !ok;
    });
  };
  root.querySelectorAll<HTMLInputElement>("input[data-confirm-match]").forEach(syncMatch);
  root.addEventListener("input", (event) => {
    const input = event.target;
    if (input instanceof HTMLInputElement && input.dataset.confirmMatch !== undefined) syncMatch(input);
  });

  root.addEventListener("change", (event) => {
    const select = event.target;
    if (select instanceof HTMLSelectElement && select.dataset.autosubmit !== undefined) {
      select.form?.requestSubmit();
    }
  });
  root.documentElement.classList.add("js");
}
