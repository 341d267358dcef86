// The guided tour's callout: when a page may be about a step (base.html then renders
// #tour-slot), ask the server for the step's callout (POST /tour/here, which also records
// the visit) and put it next to the element the step is about, outlined. A static script:
// the Content-Security-Policy allows no inline script.
(function () {
  const slot = document.getElementById("tour-slot");
  if (!slot || !window.fetch) return;
  const token = slot.dataset.csrftoken || "";
  fetch("/tour/here", {
    method: "POST",
    credentials: "same-origin",
    headers: { "x-csrftoken": token },
    body: new URLSearchParams({ path: slot.dataset.path || "/", csrftoken: token }),
  })
    .then((response) => (response.status === 200 ? response.text() : ""))
    .then((html) => {
      if (!html) return;
      slot.innerHTML = html;
      const callout = slot.querySelector(".tour-callout");
      if (!callout) return;
      const find = (selector) => {
        try {
          return selector ? document.querySelector(selector) : null;
        } catch (_) {
          return null; // a selector this browser does not know: the callout stays on top
        }
      };
      const highlighted = find(callout.dataset.tourHighlight);
      if (highlighted) highlighted.classList.add("tour-highlight");
      const anchor = find(callout.dataset.tourAnchor);
      if (anchor && !anchor.contains(slot)) {
        anchor.insertAdjacentElement(
          callout.dataset.tourBefore === "true" ? "beforebegin" : "afterend",
          callout,
        );
        const box = callout.getBoundingClientRect();
        if (box.top < 0 || box.bottom > window.innerHeight) {
          callout.scrollIntoView({ block: "nearest" });
        }
      }
      callout.classList.add("tour-shown");
    })
    .catch(() => {}); // the tour is a help, never in the way of the page
})();
