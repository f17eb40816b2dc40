// The QA lab: anchor search, strategy parameters, one question with its checks and chain.
"use strict";

(function () {
  const form = document.getElementById("lab-form");
  const status = document.getElementById("lab-status");
  const strategy = document.getElementById("strategy");
  const anchor = document.getElementById("anchor");
  const anchorResults = document.getElementById("anchor-results");
  const { el, clear, getJSON } = window.MR || {};
  let labGraph = null;

  function say(text, kind) {
    status.textContent = text;
    status.className = "status " + (kind || "");
  }

  if (!window.MR) {
    say("The page's scripts did not load (static/graphview.js).", "error");
    return;
  }

  function showParams() {
    for (const box of document.querySelectorAll(".params")) {
      box.hidden = box.dataset.strategy !== strategy.value;
    }
  }
  strategy.addEventListener("change", showParams);
  showParams();

  let timer = null;
  anchor.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      clear(anchorResults);
      const query = anchor.value.trim();
      if (query.length < 2) return;
      try {
        const data = await getJSON(`/api/graph/search?q=${encodeURIComponent(query)}&limit=8`);
        for (const entity of data.results) {
          const button = el("button", { type: "button", class: "result", "data-id": entity.id });
          button.append(el("span", { class: "swatch", "data-type": entity.type }));
          button.append(el("span", { class: "name" }, entity.name));
          button.append(el("span", { class: "muted" }, ` ${entity.type} · ${entity.id}`));
          button.addEventListener("click", () => {
            anchor.value = entity.id;
            clear(anchorResults);
          });
          const item = el("li", {});
          item.append(button);
          anchorResults.append(item);
        }
      } catch (error) {
        anchorResults.append(el("li", { class: "error" }, error.message));
      }
    }, 250);
  });

  function request() {
    const params = {};
    const box = document.querySelector(`.params[data-strategy="${strategy.value}"]`);
    for (const input of box ? box.querySelectorAll("input[data-param]") : []) {
      const kind = input.dataset.kind;
      if (kind === "bool") params[input.dataset.param] = input.checked;
      else if (input.value !== "") {
        params[input.dataset.param] = kind === "float" ? parseFloat(input.value) : parseInt(input.value, 10);
      }
    }
    const writer = form.querySelector("input[name=writer]:checked").value;
    const endpoint = document.getElementById("endpoint");
    const paradigm = document.getElementById("paradigm").value;
    return {
      anchor: anchor.value.trim(),
      strategy: strategy.value,
      max_hops: parseInt(document.getElementById("max_hops").value, 10) || 4,
      seed: parseInt(document.getElementById("seed").value, 10) || 0,
      params,
      writer,
      endpoint: endpoint ? endpoint.value : "writer",
      paradigm: paradigm || null,
      level: parseInt(document.getElementById("level").value, 10) || 1,
      language: document.getElementById("language").value,
    };
  }

  function nameOf(data, id) {
    const node = data.nodes.find((n) => n.id === id);
    return node ? node.name : id;
  }

  function showChain(data) {
    MR.renderChain(document.getElementById("lab-chain"), data.chain);
    const edgeBox = document.getElementById("lab-edge");
    if (typeof window.d3 === "undefined") {
      edgeBox.textContent = "The drawing needs d3: run `make web-assets` (npm ci).";
      return;
    }
    if (!labGraph) {
      labGraph = new MR.ForceGraph(document.getElementById("lab-graph"), {
        onEdgeClick: (edge) => MR.edgeDetails(edgeBox, edge, (id) => nameOf(data, id)),
      });
    }
    labGraph.clear();
    labGraph.resize();
    labGraph.add({ nodes: data.nodes, edges: data.edges }, null);
    const chainIds = data.chain.filter((step) => step.entity).map((step) => step.entity);
    labGraph.highlight(chainIds, data.edges.filter((e) => e.in_chain), chainIds);
  }

  function showRecord(record) {
    document.getElementById("question").textContent = record.question;
    document.getElementById("answer").textContent = record.answer;
    document.getElementById("aliases").textContent = record.answer_aliases.join("; ") || "—";
    document.getElementById("specialties").textContent = record.specialties.join(", ") || "—";
    document.getElementById("paradigm-out").textContent = record.paradigm;
    document.getElementById("hops").textContent = String(record.hops);
    const sheet = document.getElementById("cheat-sheet");
    clear(sheet);
    for (const step of record.cheat_sheet) sheet.append(el("li", {}, step));
    const checks = document.getElementById("checks");
    clear(checks);
    for (const [name, check] of Object.entries(record.checks)) {
      const row = el("tr", { class: check.passed ? "pass" : "fail", "data-check": name });
      row.append(el("td", {}, name));
      row.append(el("td", { class: "verdict" }, check.passed ? "pass" : "fail"));
      row.append(el("td", { class: "muted" }, check.detail || ""));
      checks.append(row);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = request();
    if (!body.anchor) {
      say("Choose an anchor first.", "error");
      return;
    }
    const button = document.getElementById("generate");
    button.disabled = true;
    say("sampling and writing…", "busy");
    try {
      const data = await getJSON("/api/qa-lab/generate", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const result = document.getElementById("lab-result");
      if (!data.sample) {
        result.hidden = true;
        say(data.message, "error");
        return;
      }
      result.hidden = false;
      showChain(data);
      if (data.record) {
        showRecord(data.record);
        const failed = Object.entries(data.record.checks).filter(([, c]) => !c.passed).length;
        say(failed ? `written; ${failed} check(s) failed` : "written; every check passed", failed ? "warn" : "ok");
      } else {
        document.getElementById("question").textContent = "—";
        say(data.message, "error");
      }
    } catch (error) {
      say(error.message, "error");
    } finally {
      button.disabled = false;
    }
  });

  const initial = document.getElementById("lab").dataset.anchor;
  if (initial) anchor.value = initial;
})();
