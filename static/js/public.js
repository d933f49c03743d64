// The public pages' scripts: the NHS design system's components, and radios that reveal a question.
import { initAll } from "../vendor/nhsuk-frontend/nhsuk-frontend.min.js";

initAll();

// Radios that reveal a question. The design system's radios module marks each such radio aria-expanded, which
// ARIA does not allow on a radio (axe-core's aria-allowed-attr, a critical violation), so they are revealed here
// with aria-controls alone; the checkboxes module, where aria-expanded is allowed, is used as it comes.
for (const group of document.querySelectorAll("[data-sc-reveals]")) {
  const radios = [...group.querySelectorAll('input[type="radio"][data-aria-controls]')];
  const sync = () => {
    for (const radio of radios) {
      const revealed = document.getElementById(radio.dataset.ariaControls);
      radio.setAttribute("aria-controls", revealed.id);
      revealed.classList.toggle("nhsuk-radios__conditional--hidden", !radio.checked);
    }
  };
  group.addEventListener("change", sync);
  sync();
}
