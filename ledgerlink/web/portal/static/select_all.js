// A "select all" checkbox: <input type="checkbox" data-select-all="member"> ticks or clears
// every checkbox named "member" (a static script: the Content-Security-Policy allows no
// inline event handlers).
document.addEventListener("change", (event) => {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || !box.dataset.selectAll) return;
  document
    .querySelectorAll(`input[type=checkbox][name="${box.dataset.selectAll}"]`)
    .forEach((c) => { c.checked = box.checked; });
});
