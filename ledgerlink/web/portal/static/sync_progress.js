// Live progress of a sync run from its server-sent events; reloads the page (to show the
// records) once the run has ended.
(function () {
  const section = document.getElementById("sync-progress");
  if (!section || section.dataset.finished === "true" || !window.EventSource) return;
  const source = new EventSource(section.dataset.events);
  const set = (name, value) => {
    const el = section.querySelector(`[data-field="${name}"]`);
    if (el) el.textContent = value;
  };
  source.addEventListener("progress", (event) => {
    const state = JSON.parse(event.data);
    section.querySelector("progress").value = state.percent;
    set("percent", state.percent);
    set("done", state.done);
    set("total", state.total);
    set("rate", state.rate);
    set("eta", state.eta_seconds === null ? "—" : `${state.eta_seconds} s`);
    set("errors", state.errors);
    set("status", state.outcome || state.status);
    const status = section.querySelector('[data-field="status"]');
    if (status) status.className = `badge ${state.tone || ""}`;
    if (state.finished) {
      source.close();
      window.location.reload();
    }
  });
})();
