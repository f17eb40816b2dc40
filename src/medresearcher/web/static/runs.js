// The live page of a run: follows /api/runs/<id>/events (server-sent events) and updates the
// page with textContent only, so nothing a run wrote is ever parsed as markup.
"use strict";

(function () {
  const live = document.getElementById("run-live");
  if (!live || live.dataset.status !== "running" || !window.EventSource) {
    return;
  }
  const note = document.getElementById("run-live-note");
  const setText = (id, text) => {
    const el = document.getElementById(id);
    if (el) {
      el.textContent = text;
    }
  };
  const seconds = (s) => {
    if (typeof s !== "number") return "—";
    if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    if (s >= 60) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
    return `${s.toFixed(1)} s`;
  };
  const fillTable = (id, entries, unit) => {
    const table = document.getElementById(id);
    if (!table) return;
    const body = document.createElement("tbody");
    for (const [key, value] of entries.sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const row = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = key;
      const td = document.createElement("td");
      td.className = "num";
      td.textContent = unit ? `${value} ${unit}` : String(value);
      row.append(th, td);
      body.append(row);
    }
    table.replaceChildren(body);
  };
  const showProgress = (progress) => {
    const cell = document.getElementById("run-progress");
    if (!cell || !progress) return;
    const bar = document.createElement("progress");
    if (progress.total) bar.max = progress.total;
    bar.value = progress.done || 0;
    const label = ` ${progress.done}${progress.total ? " / " + progress.total : ""} ${progress.label || ""}`;
    cell.replaceChildren(bar, document.createTextNode(label));
  };
  const badge = live.querySelector(".badge.status");
  const setStatus = (status) => {
    if (!badge) return;
    badge.textContent = status;
    badge.className = `badge status ${status}`;
  };

  const source = new EventSource(live.dataset.eventsUrl);
  if (note) note.textContent = " · following live";
  source.addEventListener("manifest", (event) => {
    const run = JSON.parse(event.data);
    setStatus(run.status);
    setText("run-elapsed", seconds(run.elapsed_s));
    setText("run-ended", run.ended_at || "—");
    setText("run-requests", String(run.usage.requests));
    setText("run-tokens", String(run.usage.total_tokens));
    setText("run-cost", typeof run.usage.cost_usd === "number" ? `$${run.usage.cost_usd.toFixed(4)}` : "not priced");
    fillTable("run-counts", Object.entries(run.counts || {}), "");
    fillTable("run-timings", Object.entries(run.timings || {}), "s");
    showProgress(run.progress);
    if (run.error) setText("run-live-note", ` · ${run.error}`);
  });
  source.addEventListener("log", (event) => {
    const log = document.getElementById("run-log");
    if (!log) return;
    log.append(document.createTextNode(JSON.parse(event.data)));
    log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("end", (event) => {
    source.close();
    setStatus(JSON.parse(event.data).status);
    if (note) note.textContent = " · ended";
  });
  source.onerror = () => {
    if (note) note.textContent = " · connection lost, retrying";
  };
})();
