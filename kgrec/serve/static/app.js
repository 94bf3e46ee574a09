// kgrec web view: plain JavaScript, no library, nothing fetched from another site.
// Talks to the same service: GET /health, /visits, /codes; POST /recommend.
// The rationale graph is drawn as SVG with a small layered layout (columns by distance from the
// visit, the drug on the right, rows ordered by the barycentre of their neighbours); nodes can be
// dragged with the pointer or moved with the arrow keys.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SVG_NS = "http://www.w3.org/2000/svg";

  // Node colours (Okabe & Ito, colour-blind safe) and a letter code drawn in each node.
  const TYPES = {
    Visit: ["#0072B2", "V", "visit"],
    Patient: ["#56B4E9", "P", "patient"],
    DiagnosisCode: ["#E69F00", "Dx", "diagnosis code"],
    ProcedureCode: ["#F0E442", "Px", "procedure code"],
    Disease: ["#D55E00", "Di", "disease"],
    Ingredient: ["#009E73", "In", "ingredient"],
    Drug: ["#CC79A7", "Rx", "drug class (ATC3)"],
    ATCClass: ["#882255", "ATC", "ATC class"],
    Chemical: ["#999933", "Ch", "chemical (MeSH)"],
    Publication: ["#BBBBBB", "Pub", "publication"],
    Trial: ["#44AA99", "Tr", "clinical trial"],
  };
  const FALLBACK = ["#DDDDDD", "?", "other"];
  const typeOf = (label) => TYPES[label] || FALLBACK;

  // Text colour (black or white) with the better contrast on a fill colour.
  function inkFor(hex) {
    const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
      .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    const lum = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    return 1.05 / (lum + 0.05) > (lum + 0.05) / 0.05 ? "#ffffff" : "#000000";
  }

  const state = {
    mode: "visit", chips: [], result: null, selected: -1, seq: 0, controller: null,
    visitGraphId: null, graph: null,
  };
  // Read by the browser test: completed submits and their submit -> graph drawn times.
  const probe = { done: 0, timings: [], last: null };
  window.kgrec = probe;

  // ------------------------------------------------------------------ helpers
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + "…" : s);

  // ICD9CM:4019 -> 401.9, ICD9PROC:3605 -> 36.05, ICD10CM:I4891 -> I48.91 (as kgrec.serve.lookup).
  function displayCode(code) {
    const i = code.indexOf(":");
    if (i < 0) return code;
    const system = code.slice(0, i), rest = code.slice(i + 1);
    const cut = { ICD9CM: rest.startsWith("E") ? 4 : 3, ICD10CM: 3, ICD9PROC: 2 }[system];
    return cut && rest.length > cut ? rest.slice(0, cut) + "." + rest.slice(cut) : rest;
  }
  const pct = (p) => (p * 100).toFixed(0) + "%";
  const relName = (t) => t.toLowerCase().replace(/_/g, " ");

  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  async function api(path, opts) {
    let r;
    try {
      r = await fetch(path, opts);
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(0, "Cannot reach the kgrec service (" + e.message + "). Is kgrec serve still running?");
    }
    const text = await r.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
    if (!r.ok) {
      let detail = body && body.detail !== undefined ? body.detail : text || r.statusText;
      if (typeof detail !== "string") detail = JSON.stringify(detail);
      throw new ApiError(r.status, detail);
    }
    return body;
  }

  const TITLES = { 0: "No connection", 400: "The service cannot answer this request", 413: "The request is too large",
    422: "Please check the input", 500: "Error in the service" };
  function showError(err) {
    const box = $("error");
    box.replaceChildren(
      el("strong", { text: (TITLES[err.status] || "Request failed") + (err.status ? ` (HTTP ${err.status})` : "") }),
      el("span", { text: err.message }),
    );
    box.hidden = false;
  }
  function hideError() { $("error").hidden = true; $("error").replaceChildren(); }
  function say(msg) { $("status").textContent = msg; }

  // ------------------------------------------------------------------ start-up
  async function loadHealth() {
    try {
      const h = await api("/health");
      const d = h.deployed || {};
      // what is deployed: e.g. "student-pooled, distilled from site-ensemble-names on mimic3 + eicu"
      const what = d.kind ? `${d.kind}${d.teacher ? `, distilled from ${d.teacher}` : ""}${d.sites ? ` on ${Object.keys(d.sites).join(" + ")}` : ""}` : h.model;
      $("health").textContent = `Model: ${what} · ${h.n_drugs} drug classes · threshold ${Number(h.threshold).toFixed(2)} · `
        + `graph store: ${h.store || "none"} · loaded in ${h.load_seconds} s`;
    } catch (e) {
      $("health").textContent = "Service not reachable: " + e.message;
    }
  }

  async function loadVisits() {
    const pick = $("visit-pick"), list = $("visit-list");
    try {
      const res = await api("/visits?limit=60");
      pick.replaceChildren(el("option", { value: "", text: `(choose one of ${res.total} visits)` }));
      list.replaceChildren();
      for (const v of res.visits) {
        const label = `${v.visit_id} · patient ${v.patient_id}${v.split ? " · " + v.split : ""} · ${clip(v.summary || "", 40)} (${v.n_diagnoses} dx)`;
        pick.append(el("option", { value: v.visit_id, text: label }));
        list.append(el("option", { value: v.visit_id, label }));
      }
      if (res.visits.length && !$("visit-id").value) {
        pick.value = res.visits[0].visit_id;
        $("visit-id").value = res.visits[0].visit_id;
      }
    } catch (e) {
      pick.replaceChildren(el("option", { value: "", text: "(visits not available)" }));
      showError(e);
    }
  }

  function setMode(mode) {
    state.mode = mode;
    $("visit-fields").hidden = mode !== "visit";
    $("patient-fields").hidden = mode !== "patient";
  }

  // ------------------------------------------------------------------ code autocomplete (combobox)
  const combo = { items: [], active: -1, timer: 0, ctl: null };

  function closeList() {
    $("code-options").hidden = true;
    $("code-input").setAttribute("aria-expanded", "false");
    $("code-input").removeAttribute("aria-activedescendant");
    combo.active = -1;
  }

  function setActive(i) {
    const opts = $("code-options").querySelectorAll("[role=option]");
    combo.active = i;
    opts.forEach((o, k) => o.setAttribute("aria-selected", k === i ? "true" : "false"));
    if (i >= 0 && opts[i]) {
      $("code-input").setAttribute("aria-activedescendant", opts[i].id);
      opts[i].scrollIntoView({ block: "nearest" });
    } else {
      $("code-input").removeAttribute("aria-activedescendant");
    }
  }

  function renderOptions(q) {
    const list = $("code-options");
    list.replaceChildren();
    combo.items.forEach((c, i) => {
      const o = el("li", { role: "option", id: `code-opt-${i}`, "aria-selected": "false", class: c.known ? null : "unknown" },
        el("code", { text: c.display }), " ", c.name || "",
        el("span", { class: "kind", text: ` · ${c.kind}${c.version ? ", ICD-" + c.version : ""}` }));
      o.addEventListener("mousedown", (ev) => ev.preventDefault()); // keep the focus in the input
      o.addEventListener("click", () => addChip(c));
      list.append(o);
    });
    if (!combo.items.length) {
      list.append(el("li", { role: "option", id: "code-opt-none", "aria-disabled": "true", "aria-selected": "false",
        text: `No code of the workspace matches “${q}”; Enter adds it as typed.` }));
    }
    list.hidden = false;
    $("code-input").setAttribute("aria-expanded", "true");
    setActive(-1);
  }

  async function fetchCodes() {
    const q = $("code-input").value.trim();
    if (!q) { closeList(); return; }
    if (combo.ctl) combo.ctl.abort();
    combo.ctl = new AbortController();
    try {
      const res = await api(`/codes?q=${encodeURIComponent(q)}&kind=diagnosis&kind=procedure&limit=12`, { signal: combo.ctl.signal });
      if ($("code-input").value.trim() !== q) return;
      combo.items = res.codes;
      renderOptions(q);
    } catch (e) {
      if (e.name === "AbortError") return;
      closeList();
      showError(e);
    }
  }

  function addChip(c) {
    const chip = { code: c.code, display: c.display, name: c.name || "", kind: c.kind, typed: false };
    if (!state.chips.some((x) => x.code === chip.code)) state.chips.push(chip);
    afterAdd(chip);
  }

  // 428.0, I10, E11.9, V58.61, 0DTJ4ZZ, ICD9CM:4280: a digit after at most one leading letter
  const looksLikeCode = (text) => /^([A-Za-z][A-Za-z0-9]*:)?[A-Za-z]?\d[0-9A-Za-z.]*$/.test(text.trim());

  function addTyped(text) {
    const code = text.trim();
    if (!code) return;
    const version = $("icd-version").value ? Number($("icd-version").value) : null;  // null: the service reads it from the code
    const prefixed = /^[A-Za-z][A-Za-z0-9]*:/.test(code);
    const kind = /^(ICD9PROC|ICD10PCS):/i.test(code) ? "procedure" : "diagnosis";
    const chip = { code, display: prefixed || !version ? code : `${code} (ICD-${version})`, name: "typed", kind, typed: !prefixed, version };
    if (!state.chips.some((x) => x.code === chip.code && x.version === chip.version)) state.chips.push(chip);
    afterAdd(chip);
  }

  function afterAdd(chip) {
    $("code-input").value = "";
    closeList();
    renderChips();
    say(`Added ${chip.display} ${chip.name === "typed" ? "" : chip.name} (${state.chips.length} code${state.chips.length === 1 ? "" : "s"}).`);
  }

  function renderChips() {
    const ul = $("chips");
    ul.replaceChildren();
    state.chips.forEach((c, i) => {
      const text = c.name && c.name !== "typed" ? `${c.display} ${c.name}` : c.display;
      const rm = el("button", { type: "button", "aria-label": `Remove ${text}`, text: "×" });
      rm.addEventListener("click", () => {
        state.chips.splice(i, 1);
        renderChips();
        say(`Removed ${text}.`);
        const buttons = $("chips").querySelectorAll("button");
        (buttons[Math.min(i, buttons.length - 1)] || $("code-input")).focus();
      });
      ul.append(el("li", {}, el("span", { text: clip(text, 48), title: text }), rm));
    });
    $("chips-empty").hidden = state.chips.length > 0;
  }

  function onCodeKey(ev) {
    const n = $("code-options").hidden ? 0 : combo.items.length;
    if (ev.key === "ArrowDown") {
      ev.preventDefault();
      if ($("code-options").hidden) { fetchCodes(); return; }
      if (n) setActive(Math.min(combo.active + 1, n - 1));
    } else if (ev.key === "ArrowUp") {
      ev.preventDefault();
      if (n) setActive(Math.max(combo.active - 1, 0));
    } else if (ev.key === "Enter") {
      const text = $("code-input").value.trim();
      if (!text) return; // an empty field: Enter submits the form
      ev.preventDefault();
      if (combo.active >= 0 && combo.items[combo.active]) addChip(combo.items[combo.active]);
      else if (looksLikeCode(text)) addTyped(text);
      else {  // a word, not a code: search the names instead of sending it as a code
        fetchCodes();
        say(`"${text}" is not a code: choose one of the codes whose name matches, or type the code itself.`);
      }
    } else if (ev.key === "Escape") {
      if (!$("code-options").hidden) { ev.preventDefault(); closeList(); }
    }
  }

  // ------------------------------------------------------------------ request
  function numberField(id) {
    const v = $(id).value.trim();
    return v === "" ? undefined : Number(v);
  }

  function buildRequest() {
    const body = {};
    for (const [key, id] of [["top_k", "top-k"], ["threshold", "threshold"], ["paths_per_drug", "paths"]]) {
      const v = numberField(id);
      if (v !== undefined) body[key] = v;
    }
    const current = $("current-drugs").value.split(/[\s,;]+/).filter(Boolean);
    if (current.length) body.current_drugs = current;
    if (state.mode === "visit") {
      body.visit_id = $("visit-id").value.trim();
    } else {
      const patient = { diagnoses: [], procedures: [] };
      if ($("icd-version").value) patient.icd_version = Number($("icd-version").value);
      for (const c of state.chips) {
        const entry = c.typed && c.version ? { code: c.code, version: c.version } : c.code;
        (c.kind === "procedure" ? patient.procedures : patient.diagnoses).push(entry);
      }
      body.patient = patient;
    }
    return body;
  }

  function setBusy(busy) {
    $("submit").disabled = busy;
    $("submit").textContent = busy ? "Working…" : "Recommend";
    document.body.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function finish(seq, t0, ok) {
    // "drawn": after the browser has laid out and painted the new content
    requestAnimationFrame(() => setTimeout(() => {
      if (seq !== state.seq) return;
      const g = state.graph;
      probe.last = { seq, ok, ms: performance.now() - t0, nodes: g ? g.nodes.length : 0, edges: g ? g.edges.length : 0 };
      probe.timings.push(probe.last);
      probe.done = seq;
    }, 0));
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    const t0 = performance.now();
    const seq = ++state.seq;
    if (state.controller) state.controller.abort();
    const ctl = (state.controller = new AbortController());
    closeList();
    hideError();
    setBusy(true);
    say("Asking the model…");
    let res;
    try {
      res = await api("/recommend", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify(buildRequest()), signal: ctl.signal,
      });
    } catch (e) {
      if (e.name === "AbortError" || seq !== state.seq) return;
      setBusy(false);
      clearResults();
      showError(e);
      say("");
      finish(seq, t0, false);
      return;
    }
    if (seq !== state.seq) return;
    setBusy(false);
    renderResults(res);
    if (res.drugs.length) selectDrug(0, false);
    finish(seq, t0, true);
  }

  // ------------------------------------------------------------------ results
  function clearResults() {
    state.result = null;
    state.selected = -1;
    state.graph = null;
    $("results").hidden = true;
    $("detail").hidden = true;
  }

  function interactionsOf(drug) {
    return (state.result.ddi_warnings || []).filter((w) => w.drug_a === drug || w.drug_b === drug);
  }

  function renderVisit(v) {
    const box = $("visit-summary");
    box.replaceChildren();
    const head = v.kind === "workspace"
      ? `Visit ${v.visit_id} of patient ${v.patient_id} · ${v.n_earlier_visits} earlier visit${v.n_earlier_visits === 1 ? "" : "s"}`
      : `New patient${v.label && v.label !== "patient" ? " " + v.label : ""} · ${v.n_earlier_visits} earlier visits`;
    box.append(el("p", { text: head }));
    const codes = [...(v.diagnoses || []).map((c) => ["diagnosis", c]), ...(v.procedures || []).map((c) => ["procedure", c])];
    const details = el("details", {}, el("summary", { text: `${(v.diagnoses || []).length} diagnoses, ${(v.procedures || []).length} procedures` }));
    const ul = el("ul");
    for (const [kind, c] of codes) ul.append(el("li", {}, el("code", { text: displayCode(c.code) }), ` ${c.name || "(no name)"} · ${kind}`));
    details.append(ul);
    box.append(details);
    if (v.prescribed && v.prescribed.length) box.append(el("p", { class: "muted", text: `Prescribed at this visit (for comparison): ${v.prescribed.join(", ")}` }));
    if (v.current_drugs && v.current_drugs.length) box.append(el("p", { class: "muted", text: `Taken now: ${v.current_drugs.map((d) => `${d.name} (${d.drug})`).join(", ")}` }));
  }

  function renderResults(res) {
    state.result = res;
    state.selected = -1;
    state.visitGraphId = res.visit.graph_id || null;
    renderVisit(res.visit);

    const notes = $("notes");
    notes.replaceChildren();
    for (const u of res.unknown_codes || []) {
      notes.append(el("li", { text: `Unknown code ${u.input} (${u.code}, ${u.kind}): ${u.reason}.` }));
    }
    for (const n of res.notes || []) notes.append(el("li", { text: n }));

    const ddi = res.ddi_warnings || [];
    $("ddi").hidden = ddi.length === 0;
    $("ddi-list").replaceChildren(...ddi.map((w) => el("li", {},
      el("strong", { text: `${w.drug_a_name} (${w.drug_a}) × ${w.drug_b_name} (${w.drug_b})` }),
      ` · between ${w.between} · source: ${w.sources.map((s) => `${s.source} (${s.licence})`).join("; ")}`)));

    const ol = $("drugs");
    ol.replaceChildren();
    res.drugs.forEach((d, i) => {
      const inter = interactionsOf(d.drug);
      const b = el("button", { type: "button", class: "drug" + (inter.length ? " interacts" : "") + (d.above_threshold ? "" : " below"),
        "aria-pressed": "false", "data-drug": d.drug },
        el("span", { class: "rank", text: String(d.rank) }),
        el("span", { class: "dname" }, d.name + " ", el("code", { text: d.drug }),
          inter.length ? el("span", { class: "badge ddi-badge", text: `⚠ DDI ×${inter.length}` }) : null,
          d.current ? el("span", { class: "badge now-badge", text: "taking now" }) : null,
          d.prescribed ? el("span", { class: "badge rx-badge", title: "prescribed at this visit", text: "✓ prescribed" }) : null),
        el("span", { class: "prob", text: d.probability.toFixed(2) }),
        el("span", { class: "bar", "aria-hidden": "true" }, el("span", { style: `width:${Math.max(1, d.probability * 100).toFixed(1)}%` })),
        el("span", { class: "meta", text: [
          `probability ${pct(d.probability)}`,
          d.above_threshold ? null : "below the threshold",
          `${d.n_paths} path${d.n_paths === 1 ? "" : "s"} found`,
          inter.length ? `interacts with ${[...new Set(inter.map((w) => (w.drug_a === d.drug ? w.drug_b : w.drug_a)))].join(", ")}` : null,
          d.current ? "taken now" : null,
          d.prescribed ? "prescribed at this visit" : null,
        ].filter(Boolean).join(" · ") }));
      b.addEventListener("click", () => selectDrug(i, true));
      ol.append(el("li", {}, b));
    });
    $("results").hidden = false;
    const who = res.visit.kind === "workspace" ? `visit ${res.visit.visit_id}` : "the patient";
    say(`${res.drugs.length} drug class${res.drugs.length === 1 ? "" : "es"} for ${who}`
      + (ddi.length ? `; ${ddi.length} interaction warning${ddi.length === 1 ? "" : "s"}` : "; no interaction warning")
      + (res.unknown_codes && res.unknown_codes.length ? `; ${res.unknown_codes.length} unknown code(s)` : "")
      + (res.drugs.length ? `. Showing why: ${res.drugs[0].name}.` : ". No drug to show."));
  }

  function onDrugsKey(ev) {
    const buttons = [...$("drugs").querySelectorAll("button.drug")];
    const i = buttons.indexOf(document.activeElement);
    if (i < 0) return;
    let j = null;
    if (ev.key === "ArrowDown") j = Math.min(i + 1, buttons.length - 1);
    else if (ev.key === "ArrowUp") j = Math.max(i - 1, 0);
    else if (ev.key === "Home") j = 0;
    else if (ev.key === "End") j = buttons.length - 1;
    if (j !== null) { ev.preventDefault(); buttons[j].focus(); }
  }

  function selectDrug(i, announce) {
    const res = state.result;
    const d = res.drugs[i];
    state.selected = i;
    $("drugs").querySelectorAll("button.drug").forEach((b, k) => b.setAttribute("aria-pressed", k === i ? "true" : "false"));
    $("detail-h").textContent = `Why ${d.name} (${d.drug})`;
    const counts = Object.entries(d.evidence_counts || {}).map(([k, n]) => `${relName(k)} ${n}`).join(", ");
    $("detail-meta").textContent = `Rank ${d.rank} · probability ${d.probability.toFixed(2)}`
      + ` · ${d.n_paths} path${d.n_paths === 1 ? "" : "s"} found${counts ? " (" + counts + ")" : ""}, ${d.paths.length} drawn`
      + (d.cautions.length ? ` · ${d.cautions.length} caution${d.cautions.length === 1 ? "" : "s"}` : "");
    const inter = interactionsOf(d.drug);
    $("detail-ddi").hidden = !inter.length;
    $("detail-ddi").replaceChildren(...inter.map((w) => el("p", { text: "⚠ " + w.message })));
    $("rationale").textContent = d.rationale || (d.paths.length ? "" : "No rationale: the graph holds no path from this patient to this drug class (or the service runs without a graph store).");
    renderDrivers(d);
    $("detail").hidden = false; // shown before drawing: the label placement measures text
    drawGraph(d);
    if (announce) {
      // the explanation opens at its header, in view: the detail column scrolls on its own beside the list
      // (wide screens), or the page scrolls down to it (one column, narrow screens)
      // (the page, not the element, is scrolled: scrollIntoView would scroll the column itself first, and a
      // sticky column held up by the end of the page stays above the screen)
      // A sticky column held by the page's end settles only in the next frame, so measure again there
      // (three frames at most).
      $("detail").scrollTop = 0;
      let tries = 0;
      const settle = () => {
        const top = $("detail-h").getBoundingClientRect().top;
        if ((top < 0 || top > window.innerHeight - 48) && tries++ < 3) {
          window.scrollBy(0, top - 12);
          requestAnimationFrame(settle);
        }
      };
      settle();
      say(`Showing why ${d.name} (${d.drug}): ${state.graph.nodes.length} nodes, ${state.graph.edges.length} edges.`);
    }
  }

  // ------------------------------------------------------------------ attributions
  const KIND_NAMES = { diagnosis: "diagnosis", procedure: "procedure", earlier_drug: "earlier drug", profile: "profile", graph_prior: "graph prior" };

  // The codes that drove the score, ordered by weight (the API sends them so), as bars: positive
  // contributions raise the drug's score, negative ones lower it; codes that start a drawn path are marked.
  function renderDrivers(d) {
    const ol = $("drivers");
    ol.replaceChildren();
    const gap = $("evidence-gap");
    gap.hidden = !d.evidence_gap;
    gap.textContent = d.evidence_gap ? `⚠ ${d.evidence_gap.charAt(0).toUpperCase()}${d.evidence_gap.slice(1)}.` : "";
    const a = d.attribution;
    if (!a || !a.contributions.length) {
      ol.append(el("li", { class: "muted", text: a ? "The model reads no input of this visit." : "No attributions (the service was asked for none)." }));
      return;
    }
    const starts = new Set(d.paths.map((p) => (p.nodes.find((n) => n.label === "DiagnosisCode") || {}).id));
    const top = Math.max(...a.contributions.map((c) => Math.abs(c.weight)), 1e-9);
    for (const c of a.contributions) {
      const sign = c.weight > 0 ? "up" : c.weight < 0 ? "down" : "zero";
      const label = c.kind === "graph_prior" ? "graph prior" : displayCode(c.input);
      const pts = (100 * c.delta_probability).toFixed(1);
      const li = el("li", { class: `driver ${sign}` + (starts.has(c.input) ? " has-path" : ""), "data-input": c.input },
        el("span", { class: "dlabel" }, starts.has(c.input) ? el("span", { class: "mark", title: "a rationale path starts here", text: "◆ " }) : null,
          el("code", { text: label }), ` ${c.name || ""}`, el("span", { class: "muted", text: ` · ${KIND_NAMES[c.kind] || c.kind}` })),
        el("span", { class: "dbar", "aria-hidden": "true" }, el("span", { style: `width:${Math.max(1, (100 * Math.abs(c.weight)) / top).toFixed(1)}%` })),
        el("span", { class: "dval", text: `${c.weight >= 0 ? "+" : ""}${c.weight.toFixed(2)}` }),
        el("span", { class: "visually-hidden", text: ` logit; ${pts >= 0 ? "+" : ""}${pts} probability points` }));
      li.title = `${c.weight >= 0 ? "+" : ""}${c.weight.toFixed(3)} logit, ${pts >= 0 ? "+" : ""}${pts} probability points`
        + (c.parts ? ` (${Object.entries(c.parts).map(([k, v]) => `${k} ${v >= 0 ? "+" : ""}${v.toFixed(2)}`).join(", ")})` : "");
      ol.append(li);
    }
  }

  // ------------------------------------------------------------------ graph
  function nodeText(n) {
    if (n.label === "Visit") {
      const short = n.id.includes(":") ? n.id.split(":").slice(1).join(":") : n.id;
      return n.id === state.visitGraphId ? `this visit (${short})` : `visit ${short}`;
    }
    if (n.label === "DiagnosisCode" || n.label === "ProcedureCode") return `${displayCode(n.id)} ${n.name || ""}`.trim();
    if (n.label === "Drug") return `${n.id} ${n.name || ""}`.trim();
    return n.name || n.id;
  }

  function buildGraph(drug) {
    const nodes = new Map(), edges = new Map();
    const all = drug.paths.map((p) => [p, false]).concat(drug.cautions.map((p) => [p, true]));
    all.forEach(([p, caution], pi) => {
      p.nodes.forEach((n, i) => {
        let node = nodes.get(n.id);
        if (!node) {
          node = { id: n.id, label: n.label, name: n.name || "", depth: i, order: pi, paths: new Set(), edges: [] };
          nodes.set(n.id, node);
        }
        node.depth = Math.min(node.depth, i);
        node.paths.add(pi);
        if (!node.name && n.name) node.name = n.name;
      });
      p.steps.forEach((st, i) => {
        const a = p.nodes[i].id, b = p.nodes[i + 1].id;
        const [src, dst] = st.forward ? [a, b] : [b, a];
        const key = `${src}|${st.type}|${dst}`;
        let e = edges.get(key);
        if (!e) {
          e = { key, src, dst, type: st.type, evidence: [], caution, paths: new Set() };
          edges.set(key, e);
          nodes.get(src).edges.push(e);
          nodes.get(dst).edges.push(e);
        }
        if (!caution) e.caution = false; // shared with a supporting path: drawn as support
        e.paths.add(pi);
        const evs = st.evidence && st.evidence.length ? st.evidence : [{ source: st.source, licence: st.licence }];
        for (const ev of evs) {
          if (!e.evidence.some((x) => x.source === ev.source && x.licence === ev.licence)) e.evidence.push({ source: ev.source, licence: ev.licence });
        }
      });
    });
    const list = [...nodes.values()];
    const target = nodes.get(drug.drug);
    if (target) target.depth = Math.max(1, ...list.filter((n) => n !== target).map((n) => n.depth + 1));
    return { nodes: list, edges: [...edges.values()], byId: nodes, nPaths: all.length };
  }

  function layout(g) {
    const maxDepth = Math.max(0, ...g.nodes.map((n) => n.depth));
    const layers = [];
    for (const n of g.nodes) (layers[n.depth] = layers[n.depth] || []).push(n);
    const widest = Math.max(1, ...layers.map((l) => (l ? l.length : 0)));
    const gapY = 92;
    // one SVG unit is one CSS pixel when the columns fit the panel; scaled down when they do not
    const avail = Math.max(480, ($("graph").parentElement.clientWidth || 860) - 2);
    const W = Math.max(avail, maxDepth * 160 + 240), H = Math.max(300, widest * gapY + 90);
    g.shown = Math.min(1, avail / W);
    const xOf = (d) => 120 + (maxDepth ? (d * (W - 240)) / maxDepth : (W - 240) / 2);
    const place = (l) => l.forEach((n, k) => { n.x = xOf(n.depth); n.y = H / 2 + (k - (l.length - 1) / 2) * gapY; });
    layers.forEach((l) => l && l.sort((a, b) => a.order - b.order || a.id.localeCompare(b.id)));
    layers.forEach((l) => l && place(l));
    // two sweeps of barycentre ordering: a node sits near the nodes it is linked to
    for (let sweep = 0; sweep < 2; sweep++) {
      for (const l of layers) {
        if (!l || l.length < 2) continue;
        for (const n of l) {
          const ys = n.edges.map((e) => g.byId.get(e.src === n.id ? e.dst : e.src)).filter((m) => m.depth !== n.depth).map((m) => m.y);
          n.bary = ys.length ? ys.reduce((s, y) => s + y, 0) / ys.length : n.y;
        }
        l.sort((a, b) => a.bary - b.bary || a.order - b.order);
        place(l);
      }
    }
    // stagger labels of neighbouring columns so that long names overlap less
    g.nodes.forEach((n) => { n.labelDy = n.depth % 2 ? -30 : 34; });
    g.W = W;
    g.H = H;
  }

  function edgeGeometry(g, e) {
    const a = g.byId.get(e.src), b = g.byId.get(e.dst);
    const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
    const off = e.bend * 28;
    const cx = (a.x + b.x) / 2 - (dy / len) * off, cy = (a.y + b.y) / 2 + (dx / len) * off;
    // stop the arrow at the target's circle
    const tx = b.x - cx, ty = b.y - cy, tl = Math.hypot(tx, ty) || 1, r = b.r + 3;
    const ex = b.x - (tx / tl) * r, ey = b.y - (ty / tl) * r;
    const t = e.labelT === undefined ? 0.5 : e.labelT, u = 1 - t;
    const mx = u * u * a.x + 2 * u * t * cx + t * t * ex, my = u * u * a.y + 2 * u * t * cy + t * t * ey;
    return { d: `M${a.x.toFixed(1)},${a.y.toFixed(1)} Q${cx.toFixed(1)},${cy.toFixed(1)} ${ex.toFixed(1)},${ey.toFixed(1)}`, mx, my };
  }

  // Edge labels: each at the first point along its edge (middle first) where it covers no node,
  // node label or earlier edge label; else where it covers least.
  function placeLabels(g) {
    const boxes = [];
    const overlap = (p, q) => Math.max(0, Math.min(p.x2, q.x2) - Math.max(p.x1, q.x1)) * Math.max(0, Math.min(p.y2, q.y2) - Math.max(p.y1, q.y1));
    for (const n of g.nodes) {
      boxes.push({ x1: n.x - n.r - 2, x2: n.x + n.r + 2, y1: n.y - n.r - 2, y2: n.y + n.r + 2, w: 6 }); // covering a node costs most
      const b = n.el.querySelector(".nlabel").getBBox();
      boxes.push({ x1: n.x + b.x, x2: n.x + b.x + b.width, y1: n.y + b.y, y2: n.y + b.y + b.height });
    }
    for (const e of g.edges) {
      const b = e.el.label.querySelector("text").getBBox();
      let best = null;
      search: for (const t of [0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78]) {
        for (const dy of [0, -12, 12, -24, 24]) {
          e.labelT = t;
          const { mx, my } = edgeGeometry(g, e);
          const y0 = my - 4 + dy;
          const box = { x1: mx + b.x, x2: mx + b.x + b.width, y1: y0 + b.y, y2: y0 + b.y + b.height };
          const cost = boxes.reduce((s, q) => s + overlap(box, q) * (q.w || 1), 0);
          if (!best || cost < best.cost) best = { t, dy, cost, box };
          if (cost === 0) break search;
        }
      }
      e.labelT = best.t;
      e.labelDy = best.dy;
      boxes.push(best.box);
    }
  }

  const evidenceText = (e) => e.evidence.map((x) => `${x.source} · ${x.licence}`).join("; ");

  function nodeInfo(g, n) {
    const [, , typeName] = typeOf(n.label);
    const links = n.edges.map((e) => {
      const other = g.byId.get(e.src === n.id ? e.dst : e.src);
      const arrow = e.src === n.id ? `${relName(e.type)} →` : `← ${relName(e.type)}`;
      return `${arrow} ${clip(nodeText(other), 40)} [${evidenceText(e)}]`;
    });
    return `${typeName}: ${nodeText(n)} (id ${n.id}) · on ${n.paths.size} of the ${g.nPaths} paths drawn · ${links.join("; ")}`;
  }

  function drawGraph(drug) {
    const g = buildGraph(drug);
    state.graph = g;
    const root = $("graph");
    root.replaceChildren();
    $("node-info").textContent = "Hover or focus a node for its details.";
    renderLegend(g);
    renderPathList(drug);
    if (!g.nodes.length) {
      root.setAttribute("viewBox", "0 0 600 80");
      root.setAttribute("width", 600);
      root.setAttribute("height", 80);
      root.append(Object.assign(svg("text", { x: 300, y: 45, "text-anchor": "middle", class: "elabel" }), { textContent: "No rationale path to draw." }));
      return;
    }
    for (const n of g.nodes) n.r = n.label === "Drug" && n.id === drug.drug ? 22 : n.label === "Visit" && n.id === state.visitGraphId ? 20 : 16;
    // parallel edges between one pair of nodes bend apart
    const pairs = new Map();
    for (const e of g.edges) {
      const k = [e.src, e.dst].sort().join("|");
      pairs.set(k, (pairs.get(k) || 0) + 1);
      const nth = pairs.get(k) - 1;
      e.bend = nth === 0 ? 0 : (nth % 2 ? 1 : -1) * Math.ceil(nth / 2);
    }
    layout(g);
    // an edge that skips columns bows away from the middle row, off the nodes it would cross
    for (const e of g.edges) {
      const a = g.byId.get(e.src), b = g.byId.get(e.dst);
      if (e.bend === 0 && Math.abs(a.depth - b.depth) > 1) {
        const up = (a.y + b.y) / 2 <= g.H / 2;
        e.bend = (b.x >= a.x) === up ? -1.6 : 1.6;
      }
    }
    root.setAttribute("viewBox", `0 0 ${g.W} ${g.H}`);
    root.setAttribute("width", Math.round(g.W * g.shown));
    root.setAttribute("height", Math.round(g.H * g.shown));
    const defs = svg("defs");
    for (const [id, colour] of [["arrow", "#5b6170"], ["arrow-caution", "#b3261e"]]) {
      const m = svg("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
      m.append(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: colour }));
      defs.append(m);
    }
    root.append(defs);
    const edgeLayer = svg("g", { class: "edges" }), labelLayer = svg("g", { class: "elabels" }), nodeLayer = svg("g", { class: "nodes" });
    root.append(edgeLayer, nodeLayer, labelLayer);

    for (const e of g.edges) {
      const a = g.byId.get(e.src), b = g.byId.get(e.dst);
      const grp = svg("g", { class: "edge" + (e.caution ? " caution" : ""), "data-type": e.type });
      const title = svg("title");
      title.textContent = `${nodeText(a)} —${relName(e.type)}→ ${nodeText(b)}\nsource · licence: ${evidenceText(e)}`;
      const hit = svg("path", { class: "hit", fill: "none" });
      const line = svg("path", { fill: "none", "marker-end": `url(#${e.caution ? "arrow-caution" : "arrow"})` });
      line.classList.add("line");
      grp.append(title, hit, line);
      edgeLayer.append(grp);
      const label = svg("text", { class: "elabel", "text-anchor": "middle" });
      const t1 = svg("tspan", { x: 0, dy: 0 });
      t1.textContent = relName(e.type);
      const first = e.evidence[0] || { source: "", licence: "" };
      const t2 = svg("tspan", { x: 0, dy: 12, class: "src" });
      t2.textContent = clip(`${first.source} · ${first.licence}`, 27) + (e.evidence.length > 1 ? ` +${e.evidence.length - 1}` : "");
      label.append(t1, t2);
      const lg = svg("g", { class: "edge" + (e.caution ? " caution" : "") });
      lg.append(label);
      labelLayer.append(lg);
      e.el = { group: grp, line, hit, label: lg };
      const show = () => { $("node-info").textContent = `Edge: ${title.textContent.replace("\n", " · ")}`; };
      grp.addEventListener("pointerenter", show);
      lg.addEventListener("pointerenter", show);
    }

    for (const n of g.nodes) {
      const [fill, abbr, typeName] = typeOf(n.label);
      const w = weightOf(drug, n.id);
      const grp = svg("g", { class: "node" + (w > 0 ? " driver-node" : ""), tabindex: 0, role: "img",
        "aria-label": `${typeName}: ${nodeText(n)}` + (w !== null ? `, contribution ${w >= 0 ? "+" : ""}${w.toFixed(2)}` : ""), "data-label": n.label, "data-id": n.id });
      const title = svg("title");
      title.textContent = `${typeName}: ${nodeText(n)} (${n.id})` + (w !== null ? ` · contribution to the score ${w >= 0 ? "+" : ""}${w.toFixed(2)} logit` : "");
      const c = svg("circle", { r: n.r, fill });
      const t = svg("text", { class: "abbr", fill: inkFor(fill) });
      t.textContent = abbr;
      const lab = svg("text", { class: "nlabel", y: n.labelDy });
      lab.textContent = clip(nodeText(n), 28);
      grp.append(title, c, t, lab);
      nodeLayer.append(grp);
      n.el = grp;
      const show = () => {
        g.nodes.forEach((m) => m.el.classList.toggle("active", m === n));
        g.edges.forEach((e) => e.el.group.classList.toggle("lit", e.src === n.id || e.dst === n.id));
        $("node-info").textContent = nodeInfo(g, n);
      };
      grp.addEventListener("pointerenter", show);
      grp.addEventListener("focus", show);
      grp.addEventListener("keydown", (ev) => {
        const step = ev.shiftKey ? 40 : 10;
        const mv = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[ev.key];
        if (!mv) return;
        ev.preventDefault();
        moveNode(g, n, n.x + mv[0], n.y + mv[1]);
      });
      enableDrag(g, n, grp);
    }
    g.nodes.forEach((n) => positionNode(n));
    placeLabels(g);
    g.edges.forEach((e) => positionEdge(g, e));
  }

  function weightOf(drug, id) {
    const c = drug.attribution && drug.attribution.contributions.find((x) => x.input === id);
    return c ? c.weight : null;
  }

  function positionNode(n) { n.el.setAttribute("transform", `translate(${n.x.toFixed(1)},${n.y.toFixed(1)})`); }
  function positionEdge(g, e) {
    const geo = edgeGeometry(g, e);
    e.el.line.setAttribute("d", geo.d);
    e.el.hit.setAttribute("d", geo.d);
    e.el.label.setAttribute("transform", `translate(${geo.mx.toFixed(1)},${(geo.my - 4 + (e.labelDy || 0)).toFixed(1)})`);
  }
  function moveNode(g, n, x, y) {
    n.x = Math.min(Math.max(x, 10), g.W - 10);
    n.y = Math.min(Math.max(y, 10), g.H - 10);
    positionNode(n);
    n.edges.forEach((e) => positionEdge(g, e));
  }

  function enableDrag(g, n, grp) {
    let drag = null;
    grp.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0) return;
      const m = $("graph").getScreenCTM();
      if (!m) return;
      ev.preventDefault();
      grp.focus({ preventScroll: true });
      grp.setPointerCapture(ev.pointerId);
      const p = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(m.inverse());
      drag = { dx: n.x - p.x, dy: n.y - p.y, inv: m.inverse() };
      grp.classList.add("dragging");
    });
    grp.addEventListener("pointermove", (ev) => {
      if (!drag) return;
      const p = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(drag.inv);
      moveNode(g, n, p.x + drag.dx, p.y + drag.dy);
    });
    const end = () => { drag = null; grp.classList.remove("dragging"); };
    grp.addEventListener("pointerup", end);
    grp.addEventListener("pointercancel", end);
  }

  function renderLegend(g) {
    const seen = [...new Set(g.nodes.map((n) => n.label))];
    $("legend").replaceChildren(...seen.map((label) => {
      const [fill, abbr, name] = typeOf(label);
      return el("li", {}, el("span", { class: "sw", style: `background:${fill}`, "aria-hidden": "true" }), `${abbr}: ${name}`);
    }));
  }

  function renderPathList(drug) {
    const ol = $("path-list");
    ol.replaceChildren();
    const all = drug.paths.map((p) => [p, false]).concat(drug.cautions.map((p) => [p, true]));
    for (const [p, caution] of all) {
      const parts = [nodeText(p.nodes[0])];
      p.steps.forEach((st, i) => {
        const ev = `[${st.source} · ${st.licence}]`;
        parts.push(st.forward ? `—${relName(st.type)} ${ev}→` : `←${relName(st.type)} ${ev}—`, nodeText(p.nodes[i + 1]));
      });
      const extra = p.extra && Object.keys(p.extra).length ? ` (${Object.entries(p.extra).map(([k, v]) => `${k.replace(/_/g, " ")} ${v}`).join(", ")})` : "";
      ol.append(el("li", {}, el("strong", { text: `${caution ? "Caution, " : ""}${relName(p.kind)}` }),
        ` (score ${p.score}, support ${p.support})${extra}: `, parts.join(" ")));
    }
  }

  // ------------------------------------------------------------------ wiring
  function init() {
    document.querySelectorAll("input[name=mode]").forEach((r) => r.addEventListener("change", () => setMode(r.value)));
    setMode(document.querySelector("input[name=mode]:checked").value);
    $("visit-pick").addEventListener("change", () => { if ($("visit-pick").value) $("visit-id").value = $("visit-pick").value; });
    $("code-input").addEventListener("input", () => { clearTimeout(combo.timer); combo.timer = setTimeout(fetchCodes, 120); });
    $("code-input").addEventListener("keydown", onCodeKey);
    $("code-input").addEventListener("blur", () => setTimeout(closeList, 150));
    $("drugs").addEventListener("keydown", onDrugsKey);
    $("form").addEventListener("submit", onSubmit);
    renderChips();
    loadHealth();
    loadVisits();
  }
  init();
})();
