/** Dropdown menus (<details class="dropdown">) and dismissible messages. */

export function initDropdowns(root: ParentNode): void {
  const menus = Array.from(root.querySelectorAll<HTMLDetailsElement>("details.dropdown"));
  document.addEventListener("click", (event) => {
    for (const menu of menus) {
      if (menu.open && !menu.contains(event.target as Node)) {
        menu.open = false;
      }
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      for (const menu of menus) menu.open = false;
    }
  });
}

export function initMessages(root: ParentNode): void {
  root.querySelectorAll<HTMLButtonElement>("[data-dismiss]").forEach((button) => {
    button.addEventListener("click", () => button.closest(".alert")?.remove());
  });
}
