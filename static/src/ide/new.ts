/**
 * The new-model page (`[data-new-model]`): lists the templates (`GET model-templates`) as cards,
 * creates the model from the chosen one (`POST models {name, template}`) and opens its editor.
 * A small bundle of its own (build/ide-new.js): this page loads no editor.
 */
import "../styles/ide.css";
import { call, detail } from "./api";

interface Template {
  id: string;
  name: string;
  description: string;
}

async function init(form: HTMLFormElement): Promise<void> {
  const cards = form.querySelector<HTMLElement>("[data-template-cards]")!;
  const state = form.querySelector<HTMLElement>("[data-templates-state]")!;
  const answer = await call<Template[]>("GET", form.dataset.templatesApi ?? "");
  if (answer.status !== 200 || !Array.isArray(answer.data)) {
    state.textContent = `The templates could not be loaded: ${detail(answer)}`;
    return;
  }
  state.remove();
  answer.data.forEach((template, index) => {
    const card = document.createElement("label");
    card.className = "template-card";
    card.dataset.template = template.id;
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "template";
    radio.value = template.id;
    radio.checked = index === 0;
    const name = document.createElement("strong");
    name.textContent = template.name;
    const description = document.createElement("span");
    description.className = "muted small";
    description.textContent = template.description;
    card.append(radio, name, description);
    cards.append(card);
  });
  form.dataset.state = "ready";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void create(form);
  });
}

async function create(form: HTMLFormElement): Promise<void> {
  const name = form.querySelector<HTMLInputElement>("[data-new-name]")!.value.trim();
  const template = form.querySelector<HTMLInputElement>('input[name="template"]:checked')?.value;
  const error = form.querySelector<HTMLElement>("[data-new-error]")!;
  const fail = (message: string): void => {
    error.textContent = message;
    error.hidden = false;
  };
  if (!template) return fail("Choose a template.");
  // The server's rule (serving/actions.py NAME_RE), which the client checks too.
  if (!/^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/.test(name)) {
    return fail("Use lower-case letters, digits and dashes (1-64), starting and ending with a letter or digit.");
  }
  const submit = form.querySelector<HTMLButtonElement>("[data-new-submit]")!;
  submit.disabled = true;
  const answer = await call<Record<string, unknown>>("POST", form.dataset.modelsApi ?? "", { name, template });
  if (answer.status !== 201 && answer.status !== 200) {
    submit.disabled = false;
    const data = answer.data as Record<string, unknown>;
    const field = Array.isArray(data.name) ? String(data.name[0]) : "";
    return fail(field || detail(answer));
  }
  window.location.assign(`${form.dataset.editorUrl}${encodeURIComponent(name)}/edit`);
}

const form = document.querySelector<HTMLFormElement>("[data-new-model]");
if (form) void init(form);
