// Shared by the graph explorer and the QA lab: a D3 force-directed view of entities and
// relations, and small helpers. Every piece of graph text goes into the page through
// textContent (d3's .text()) or attributes, never as markup.
"use strict";

(function () {
  const TYPE_COLOURS = {
    disease: "#c0392b",
    phenotype: "#2f7fc1",
    gene: "#2e9e57",
    drug: "#8e44ad",
    category: "#7f8c8d",
    symptom: "#d9731a",
    pathogen: "#149e8c",
    anatomy: "#b08d0b",
    transmission: "#3d4f63",
  };

  function colour(type) {
    return TYPE_COLOURS[type] || "#9aa4ae";
  }

  // An element with attributes and text content (never HTML).
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, String(value));
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // fetch + JSON, throwing an Error with the server's "detail" when the status is not ok.
  async function getJSON(url, options) {
    const response = await fetch(url, options);
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (!response.ok) {
      let detail = body && body.detail !== undefined ? body.detail : response.statusText;
      if (typeof detail !== "string") detail = JSON.stringify(detail);
      throw new Error(detail);
    }
    return body;
  }

  function short(text, n) {
    text = String(text);
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }

  function edgeKey(edge) {
    const s = typeof edge.source === "object" ? edge.source.id : edge.source;
    const t = typeof edge.target === "object" ? edge.target.id : edge.target;
    return s + "\u0000" + edge.pred + "\u0000" + t;
  }

  // Frequencies read "Very frequent (99-80%)": the edge label keeps the percentage.
  function edgeLabel(edge) {
    if (!edge.frequency) return edge.pred;
    const match = /\(([^)]*)\)/.exec(edge.frequency);
    return edge.pred + " · " + (match ? match[1] : edge.frequency);
  }

  class ForceGraph {
    constructor(svg, { onNodeClick, onEdgeClick } = {}) {
      this.svg = d3.select(svg);
      this.onNodeClick = onNodeClick || (() => {});
      this.onEdgeClick = onEdgeClick || (() => {});
      this.nodes = new Map();
      this.links = new Map();
      this.expanded = new Set();
      this.highlightNodes = new Set();
      this.highlightEdges = new Set();
      this.chainOrder = new Map();
      this.svg.selectAll("*").remove();
      const defs = this.svg.append("defs");
      for (const [id, fill] of [["arrow", "#8a94a3"], ["arrow-hl", "#e67e22"]]) {
        defs
          .append("marker")
          .attr("id", id)
          .attr("viewBox", "0 -5 10 10")
          .attr("refX", 20)
          .attr("markerWidth", 7)
          .attr("markerHeight", 7)
          .attr("orient", "auto")
          .append("path")
          .attr("d", "M0,-5L10,0L0,5")
          .attr("fill", fill);
      }
      this.root = this.svg.append("g").attr("class", "viewport");
      this.linkLayer = this.root.append("g").attr("class", "links");
      this.labelLayer = this.root.append("g").attr("class", "edge-labels");
      this.nodeLayer = this.root.append("g").attr("class", "nodes");
      // Zoom and pan by hand; until the user does, each layout ends fitted to the view.
      this.userZoomed = false;
      this.zoom = d3
        .zoom()
        .scaleExtent([0.2, 4])
        .on("zoom", (event) => {
          if (event.sourceEvent) this.userZoomed = true;
          this.root.attr("transform", event.transform);
        });
      this.svg.call(this.zoom);
      this.simulation = d3
        .forceSimulation()
        .force("link", d3.forceLink().id((d) => d.id).distance(140))
        .force("charge", d3.forceManyBody().strength(-420))
        .force("collide", d3.forceCollide(26))
        .on("tick", () => this.tick())
        .on("end", () => this.fit());
      this.resize();
    }

    resize() {
      const box = this.svg.node().getBoundingClientRect();
      this.width = box.width || 800;
      this.height = box.height || 600;
      this.simulation.force("center", d3.forceCenter(this.width / 2, this.height / 2));
    }

    // Scale and centre the drawing so every node and label is in view.
    fit() {
      if (this.userZoomed || !this.nodes.size) return;
      const xs = Array.from(this.nodes.values(), (d) => d.x);
      const ys = Array.from(this.nodes.values(), (d) => d.y);
      const [x0, x1, y0, y1] = [d3.min(xs) - 30, d3.max(xs) + 190, d3.min(ys) - 30, d3.max(ys) + 30];
      const scale = Math.min(1.6, 0.95 * Math.min(this.width / (x1 - x0), this.height / (y1 - y0)));
      const transform = d3.zoomIdentity
        .translate(this.width / 2, this.height / 2)
        .scale(scale)
        .translate(-(x0 + x1) / 2, -(y0 + y1) / 2);
      this.svg.transition().duration(300).call(this.zoom.transform, transform);
    }

    clear() {
      this.nodes.clear();
      this.links.clear();
      this.expanded.clear();
      this.highlightNodes.clear();
      this.highlightEdges.clear();
      this.chainOrder.clear();
      this.userZoomed = false;
      this.render();
    }

    // Merge nodes and edges; new nodes start next to ``origin`` (the node expanded).
    add(data, origin) {
      const from = origin && this.nodes.get(origin);
      for (const node of data.nodes || []) {
        const known = this.nodes.get(node.id);
        if (known) {
          Object.assign(known, node);
        } else {
          const x = from ? from.x + (Math.random() - 0.5) * 60 : this.width / 2 + (Math.random() - 0.5) * 80;
          const y = from ? from.y + (Math.random() - 0.5) * 60 : this.height / 2 + (Math.random() - 0.5) * 80;
          this.nodes.set(node.id, Object.assign({ x, y }, node));
        }
      }
      for (const edge of data.edges || []) {
        const key = edgeKey(edge);
        if (!this.links.has(key) && this.nodes.has(edge.source) && this.nodes.has(edge.target)) {
          this.links.set(key, Object.assign({ key }, edge));
        }
      }
      this.render();
    }

    markExpanded(id) {
      this.expanded.add(id);
      this.render();
    }

    // Highlight a sample: its nodes, its edges, and the chain's order on the chain nodes.
    highlight(nodeIds, edges, chainIds) {
      this.highlightNodes = new Set(nodeIds);
      this.highlightEdges = new Set(edges.map(edgeKey));
      this.chainOrder = new Map((chainIds || []).map((id, index) => [id, index]));
      this.render();
    }

    render() {
      const nodes = Array.from(this.nodes.values());
      const links = Array.from(this.links.values());
      const linkSel = this.linkLayer
        .selectAll("line")
        .data(links, (d) => d.key)
        .join((enter) =>
          enter
            .append("line")
            .on("click", (event, d) => this.onEdgeClick(d))
            .call((line) => line.append("title"))
        )
        .attr("class", (d) => "link" + (this.highlightEdges.has(d.key) ? " hl" : ""))
        .attr("marker-end", (d) => (this.highlightEdges.has(d.key) ? "url(#arrow-hl)" : "url(#arrow)"));
      linkSel.select("title").text((d) => d.label || d.pred);
      this.labelLayer
        .selectAll("text")
        .data(links, (d) => d.key)
        .join((enter) =>
          enter.append("text").on("click", (event, d) => this.onEdgeClick(d))
        )
        .attr("class", (d) => "edge-label" + (this.highlightEdges.has(d.key) ? " hl" : ""))
        .text((d) => edgeLabel(d));
      const nodeSel = this.nodeLayer
        .selectAll("g.node")
        .data(nodes, (d) => d.id)
        .join((enter) => {
          const g = enter.append("g").attr("class", "node");
          g.append("circle").attr("r", 11);
          g.append("text").attr("class", "order").attr("text-anchor", "middle").attr("dy", 4);
          g.append("text").attr("class", "name").attr("x", 15).attr("dy", 4);
          g.append("title");
          g.on("click", (event, d) => this.onNodeClick(d));
          g.call(
            d3
              .drag()
              .on("start", (event, d) => {
                if (!event.active) this.simulation.alphaTarget(0.2).restart();
                d.fx = d.x;
                d.fy = d.y;
              })
              .on("drag", (event, d) => {
                d.fx = event.x;
                d.fy = event.y;
              })
              .on("end", (event, d) => {
                if (!event.active) this.simulation.alphaTarget(0);
                d.fx = null;
                d.fy = null;
              })
          );
          return g;
        })
        .attr("data-id", (d) => d.id)
        .attr("data-type", (d) => d.type)
        .attr(
          "class",
          (d) =>
            "node" +
            (this.expanded.has(d.id) ? " expanded" : "") +
            (this.highlightNodes.has(d.id) ? " hl" : "") +
            (this.chainOrder.has(d.id) ? " chain" : "")
        );
      nodeSel.select("circle").attr("fill", (d) => colour(d.type));
      nodeSel.select("text.name").text((d) => short(d.name, 32));
      nodeSel.select("text.order").text((d) => (this.chainOrder.has(d.id) ? this.chainOrder.get(d.id) : ""));
      nodeSel.select("title").text((d) => d.name + " (" + d.type + ", " + d.id + ")");
      this.simulation.nodes(nodes);
      this.simulation.force("link").links(links);
      this.simulation.alpha(0.8).restart();
    }

    tick() {
      this.linkLayer
        .selectAll("line")
        .attr("x1", (d) => d.source.x)
        .attr("y1", (d) => d.source.y)
        .attr("x2", (d) => d.target.x)
        .attr("y2", (d) => d.target.y);
      this.labelLayer
        .selectAll("text")
        .attr("x", (d) => (d.source.x + d.target.x) / 2)
        .attr("y", (d) => (d.source.y + d.target.y) / 2);
      this.nodeLayer.selectAll("g.node").attr("transform", (d) => `translate(${d.x},${d.y})`);
    }
  }

  // A definition list of an edge's fact: predicate, context and every source.
  function edgeDetails(container, edge, nameOf) {
    clear(container);
    const s = typeof edge.source === "object" ? edge.source.id : edge.source;
    const t = typeof edge.target === "object" ? edge.target.id : edge.target;
    container.append(el("h3", {}, "Fact"));
    container.append(el("p", { class: "fact" }, `${nameOf(s)} —${edge.pred}→ ${nameOf(t)}`));
    const list = el("dl", { class: "facts" });
    const add = (term, value) => {
      list.append(el("dt", {}, term));
      list.append(el("dd", {}, value));
    };
    if (edge.frequency) add("frequency", edge.frequency);
    for (const [group, values] of [
      ["clinical", edge.clinical],
      ["temporal", edge.temporal],
      ["spatial", edge.spatial],
    ]) {
      for (const [key, value] of Object.entries(values || {})) {
        if (key === "frequency") continue;
        add(`${group}.${key}`, typeof value === "string" ? value : JSON.stringify(value));
      }
    }
    if (edge.evidence) add("evidence", edge.evidence);
    add("confidence", String(edge.confidence));
    container.append(list);
    container.append(el("h4", {}, "Sources"));
    const sources = el("ul", { class: "sources" });
    for (const source of edge.sources || []) sources.append(el("li", {}, source));
    container.append(sources);
  }

  // A sample's chain (entity, predicate, entity, …) as the items of the ordered list `list`:
  // entities numbered by hop, predicates between them (the explorer and the QA lab).
  function renderChain(list, chain) {
    clear(list);
    chain.forEach((step, index) => {
      list.append(
        step.entity
          ? el("li", { class: "entity", "data-id": step.entity, value: index / 2 }, step.name)
          : el("li", { class: "predicate" }, step.predicate)
      );
    });
  }

  window.MR = {
    TYPE_COLOURS,
    colour,
    el,
    clear,
    getJSON,
    short,
    edgeKey,
    edgeLabel,
    edgeDetails,
    renderChain,
    ForceGraph,
  };
})();
