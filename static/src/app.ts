/**
 * Podium's page script: loaded on every page, it wires the small behaviours
 * server-rendered pages need and, on workspace pages, the live events socket.
 */
import "./styles/app.css";
import { initClipboard } from "./clipboard";
import { initConfirmations } from "./confirm";
import { startLiveUpdates } from "./live";
import { initModelPages } from "./models";
import { initDropdowns, initMessages } from "./ui";

function main(): void {
  initDropdowns(document);
  initMessages(document);
  initClipboard(document);
  initConfirmations(document);
  const slug = document.body.dataset.workspace;
  if (slug) {
    startLiveUpdates(slug);
    initModelPages();
  }
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", main);
} else {
  main();
}
