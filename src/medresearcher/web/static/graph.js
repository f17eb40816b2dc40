// The graph explorer: search, expand on click, entity and fact details, sample highlight.
"use strict";

(function () {
  const root = document.getElementById("explorer");
  const status = document.getElementById("graph-status");
  const details = document.getElementById("details");
  const results = document.getElementById("search-results");
  const { el, clear, getJSON } = window.MR || {};

  if (typeof window.d3 === "undefined" || !window.MR) {
    status.textContent =
      "The graph view needs d3, which is not installed: run `make web-assets` (npm ci).";
    status.className = "error";
    return;
  }

  const graph = new MR.ForceGraph(document.getElementById("graph"), {
    onNodeClick: (node) => expand(node.id),
    onEdgeClick: (edge) => MR.edgeDetails(details, edge, nameOf),
  });

  function nameOf(id) {
    const node = graph.nodes.get(id);
    return node ? node.name : id;
  }

  function say(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "muted";
  }

  function counts() {
    return `${graph.nodes.size} nodes, ${graph.links.size} relations`;
  }

  function limit() {
    const value = parseInt(document.getElementById("limit").value, 10);
    return Number.isFinite(value) ? Math.max(5, Math.min(200, value)) : 40;
  }

  function showEntity(entity, data) {
    clear(details);
    const head = el("h3", {});
    head.append(el("span", { class: "swatch", "data-type": entity.type }));
    head.append(document.createTextNode(entity.name));
    details.append(head);
    details.append(el("p", { class: "muted" }, `${entity.type} · ${entity.id} · degree ${entity.degree}`));
    if (entity.description) details.append(el("p", { class: "description" }, entity.description));
    const list = el("dl", { class: "facts" });
    const add = (term, value) => {
      list.append(el("dt", {}, term));
      list.append(el("dd", {}, value));
    };
    if (entity.aliases && entity.aliases.length) add("aliases", entity.aliases.join("; "));
    if (entity.xrefs && entity.xrefs.length) add("xrefs", entity.xrefs.join(", "));
    for (const [key, value] of Object.entries(entity.attrs || {})) {
      if (key === "prevalence" || key === "xref_mapping") continue;
      add(key, typeof value === "string" ? value : JSON.stringify(value));
    }
    if (entity.source) add("source", entity.source);
    details.append(list);
    if (data) {
      const spread = Object.entries(data.by_predicate)
        .map(([pred, n]) => `${pred} ${n}`)
        .join(", ");
      details.append(el("p", { class: "muted" }, `showing ${data.shown} of ${data.total} relations (${spread})`));
    }
  }

  async function expand(id) {
    say(`loading ${id}…`);
    try {
      const data = await getJSON(`/api/graph/neighbours/${encodeURIComponent(id)}?limit=${limit()}`);
      graph.add({ nodes: data.nodes, edges: data.edges }, data.centre.id);
      graph.markExpanded(data.centre.id);
      showEntity(data.centre, data);
      say(counts());
    } catch (error) {
      say(error.message, true);
    }
  }

  async function search(query) {
    clear(results);
    if (!query.trim()) return;
    say(`searching “${query}”…`);
    try {
      const data = await getJSON(`/api/graph/search?q=${encodeURIComponent(query)}&limit=25`);
      if (!data.results.length) {
        results.append(el("li", { class: "muted" }, "no entity matches"));
      }
      for (const entity of data.results) {
        const item = el("li", {});
        const button = el("button", { type: "button", class: "result", "data-id": entity.id });
        button.append(el("span", { class: "swatch", "data-type": entity.type }));
        button.append(el("span", { class: "name" }, entity.name));
        button.append(el("span", { class: "muted" }, ` ${entity.type} · ${entity.id} · ${entity.degree}`));
        button.addEventListener("click", () => expand(entity.id));
        item.append(button);
        results.append(item);
      }
      say(`${data.results.length} matches`);
    } catch (error) {
      say(error.message, true);
    }
  }

  async function loadSamples() {
    const select = document.getElementById("sample-select");
    try {
      const data = await getJSON("/api/samples?limit=500");
      for (const sample of data.samples) {
        const label = `${sample.anchor_name} → ${sample.end_name} (${sample.strategy}, ${sample.hops} hops)`;
        select.append(el("option", { value: sample.id }, label));
      }
    } catch (error) {
      select.append(el("option", { value: "", disabled: "" }, "no samples.jsonl in this workspace"));
    }
  }

  async function showSample(id) {
    if (!id) return;
    say(`loading sample ${id}…`);
    try {
      const data = await getJSON(`/api/samples/${encodeURIComponent(id)}`);
      graph.add({ nodes: data.nodes, edges: data.edges }, null);
      const chainIds = data.chain.filter((step) => step.entity).map((step) => step.entity);
      graph.highlight(
        data.nodes.map((n) => n.id),
        data.edges,
        chainIds
      );
      MR.renderChain(document.getElementById("sample-chain"), data.chain);
      say(`${counts()} · sample ${data.sample.strategy}, ${data.sample.hops} hops`);
    } catch (error) {
      say(error.message, true);
    }
  }

  document.getElementById("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    search(document.getElementById("search-input").value);
  });
  document.getElementById("sample-form").addEventListener("submit", (event) => {
    event.preventDefault();
    showSample(document.getElementById("sample-select").value);
  });
  document.getElementById("clear").addEventListener("click", () => {
    graph.clear();
    clear(document.getElementById("sample-chain"));
    say(counts());
  });
  window.addEventListener("resize", () => graph.resize());

  const legend = document.getElementById("legend");
  for (const type of Object.keys(MR.TYPE_COLOURS)) {
    const item = el("li", {});
    item.append(el("span", { class: "swatch", "data-type": type }));
    item.append(document.createTextNode(type));
    legend.append(item);
  }
  say("search an entity to begin");
  loadSamples();
  if (root.dataset.entity) expand(root.dataset.entity);
  if (root.dataset.sample) showSample(root.dataset.sample);
})();
