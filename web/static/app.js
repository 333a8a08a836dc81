// designsearch web page: plain JavaScript, no framework, no CDN. Every call goes to this page's
// server (/api/...), which calls the gateway's gRPC API with the user's API key.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_MB = parseFloat(document.body.dataset.maxUploadMb || "20");
const SVG = "http://www.w3.org/2000/svg";

// ---- API key ---------------------------------------------------------------------------------
const keyInput = $("api-key");
keyInput.value = localStorage.getItem("designsearch.apiKey") || "";
$("key-form").addEventListener("submit", (e) => e.preventDefault());
keyInput.addEventListener("change", () => { localStorage.setItem("designsearch.apiKey", keyInput.value.trim()); loadStats(); });

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const key = keyInput.value.trim();
  if (key) h["X-API-Key"] = key;
  return h;
}

async function call(url, body, json) {
  const init = { method: "POST", headers: headers(json ? { "Content-Type": "application/json" } : {}),
                 body: json ? JSON.stringify(body) : body };
  const res = await fetch(url, init);
  if (!res.ok) {
    let err = { error: "HTTP_" + res.status, message: res.statusText };
    try { err = await res.json(); } catch (_) { /* not JSON */ }
    throw new Error(`${err.message || err.error} (${err.error}${err.reason ? ", " + err.reason : ""})`);
  }
  return res;
}

function showError(id, err) {
  const el = $(id);
  el.textContent = err ? String(err.message || err) : "";
  el.hidden = !err;
}

function checkSize(file) {
  if (file && file.size > MAX_MB * 1048576) throw new Error(`${file.name} is larger than ${MAX_MB} MiB`);
}

async function loadStats() {
  try {
    const res = await fetch("api/stats", { headers: headers() });
    const s = await res.json();
    $("catalogue").textContent = res.ok
      ? `catalogue: ${s.designs} designs, ${s.images} images · embedder ${s.embedder_version}`
      : `catalogue unavailable: ${s.message || s.error}`;
  } catch (err) { $("catalogue").textContent = "catalogue unavailable"; }
}

// ---- tabs (arrow keys move between them, as in the WAI-ARIA tabs pattern) --------------------
const tabs = Array.from(document.querySelectorAll('[role="tab"]'));
function selectTab(tab) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  tab.focus();
}
tabs.forEach((tab, i) => {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", (e) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
    if (step) { e.preventDefault(); selectTab(tabs[(i + step + tabs.length) % tabs.length]); }
  });
});

// ---- result cards ------------------------------------------------------------------------------
function card(m, opts) {
  const li = document.createElement("li");
  li.className = "card";
  li.tabIndex = 0;
  li.dataset.designId = m.design_id;
  const label = `${m.brand} ${m.model} ${m.year || ""}`.trim();
  li.setAttribute("aria-label", `${label}, similarity ${m.score.toFixed(3)}`);
  const img = document.createElement("img");
  img.src = m.thumbnail; img.alt = `matched catalogue crop: ${label}`;
  const title = document.createElement("div");
  title.className = "label"; title.textContent = label;
  const meta = document.createElement("div");
  meta.className = "muted small"; meta.textContent = `design ${m.design_id} · image ${m.image_id.slice(0, 12)}`;
  const bar = document.createElement("div");
  bar.className = "bar"; bar.setAttribute("role", "meter"); bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "1"); bar.setAttribute("aria-valuenow", m.score.toFixed(3));
  bar.setAttribute("aria-label", "similarity");
  const fill = document.createElement("span");
  fill.style.width = `${Math.max(0, Math.min(1, m.score)) * 100}%`;
  bar.appendChild(fill);
  const score = document.createElement("div");
  score.className = "score"; score.textContent = m.score.toFixed(3);
  li.append(img, title, meta, bar, score);
  if (opts && opts.onDislike) {
    const b = document.createElement("button");
    b.type = "button"; b.className = "dislike"; b.textContent = "Not similar";
    b.setAttribute("aria-label", `Not similar: ${label}`);
    b.addEventListener("click", () => opts.onDislike(m, li));
    li.appendChild(b);
  }
  if (opts && opts.onFocus) {
    li.addEventListener("mouseenter", () => opts.onFocus(m));
    li.addEventListener("focus", () => opts.onFocus(m));
  }
  return li;
}

function renderGrid(listId, matches, opts) {
  const ol = $(listId);
  ol.replaceChildren(...matches.map((m) => card(m, opts)));
}

// ---- search --------------------------------------------------------------------------------------
const search = { file: null, result: null };

function drawOverlay(highlight) {
  const img = $("search-draft-img"), svg = $("search-overlay");
  svg.replaceChildren();
  if (!search.result || !img.naturalWidth) return;
  svg.setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
  const boxes = search.result.query_crops.map((c) => ({ box: c.box, cls: c.kind }));
  if (highlight) boxes.push({ box: highlight, cls: "matched" });
  for (const { box, cls } of boxes) {
    const [x1, y1, x2, y2] = box;
    const r = document.createElementNS(SVG, "rect");
    r.setAttribute("x", x1); r.setAttribute("y", y1);
    r.setAttribute("width", Math.max(1, x2 - x1)); r.setAttribute("height", Math.max(1, y2 - y1));
    r.setAttribute("class", cls);
    r.setAttribute("vector-effect", "non-scaling-stroke");
    svg.appendChild(r);
  }
}

function setDraft(file) {
  if (!file) return;
  search.file = file;
  search.result = null;
  const img = $("search-draft-img");
  img.onload = () => drawOverlay(null);
  img.src = URL.createObjectURL(file);
  $("search-draft").hidden = false;
  runSearch();
}

function searchForm() {
  const fd = new FormData($("search-form"));
  fd.set("image", search.file, search.file.name || "pasted.png");
  return fd;
}

async function runSearch() {
  showError("search-error", null);
  if (!search.file) { showError("search-error", "Choose, drop or paste a picture first."); return; }
  try {
    checkSize(search.file);
    $("search-status").textContent = "searching …";
    const r = await (await call("api/search", searchForm())).json();
    search.result = r;
    const best = r.matches[0];
    drawOverlay(best ? best.query_box : null);
    renderGrid("search-results", r.matches, { onDislike: dislike, onFocus: (m) => drawOverlay(m.query_box) });
    const detected = $("search-domain").value === "auto" ? " (detected)" : "";
    $("search-status").textContent = `${r.matches.length} designs · domain: ${r.domain}${detected} · ` +
      `${r.query_crops.length} query regions`;
    const t = r.timings_ms;
    const order = ["answer_cache", "cache", "decode", "segment", "embed", "feedback", "search", "merge", "total"];
    const stages = Object.keys(t).sort((a, b) => (order.indexOf(a) + 99) % 99 - (order.indexOf(b) + 99) % 99);
    $("search-footer").textContent = stages.map((k) => `${k} ${t[k]} ms`).join(" · ") +
      ` · cache ${r.cache_hit ? "hit" : "miss"} · embedder ${r.embedder_version} · query id ${r.query_id.slice(0, 16)}…`;
    $("search-record").disabled = false;
  } catch (err) {
    $("search-status").textContent = "";
    $("search-results").replaceChildren();
    $("search-footer").textContent = "";
    $("search-record").disabled = true;
    showError("search-error", err);
  }
}

async function dislike(m, li) {
  try {
    await call("api/dislike", { query_id: search.result.query_id, design_id: m.design_id }, true);
    const next = li.nextElementSibling || li.previousElementSibling;
    li.remove();
    search.result.matches = search.result.matches.filter((x) => x.design_id !== m.design_id);
    $("search-status").textContent = `${m.brand} ${m.model} removed; it will not come back in your next queries`;
    if (next) next.focus();
  } catch (err) { showError("search-error", err); }
}

async function downloadRecord() {
  try {
    const res = await call("api/report", searchForm());
    const name = (res.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(await res.blob());
    a.download = name ? name[1] : "designsearch-record.html";
    document.body.appendChild(a); a.click(); a.remove();
  } catch (err) { showError("search-error", err); }
}

const drop = $("search-drop");
drop.addEventListener("click", () => $("search-file").click());  // the zone and its button (keyboard: Enter/Space)
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files.length) setDraft(e.dataTransfer.files[0]);
});
$("search-file").addEventListener("change", (e) => setDraft(e.target.files[0]));
document.addEventListener("paste", (e) => {
  const item = Array.from(e.clipboardData.items).find((i) => i.kind === "file");
  if (!item) return;
  selectTab($("tab-search"));
  setDraft(item.getAsFile());
});
$("search-form").addEventListener("submit", (e) => { e.preventDefault(); runSearch(); });
$("search-record").addEventListener("click", downloadRecord);

// ---- verify, identify, novelty --------------------------------------------------------------------
function preview(inputId, imgId) {
  $(inputId).addEventListener("change", (e) => {
    const f = e.target.files[0];
    if (f) $(imgId).src = URL.createObjectURL(f);
  });
}
preview("verify-first", "verify-first-img");
preview("verify-second", "verify-second-img");
preview("identify-file", "identify-img");
preview("novelty-file", "novelty-img");

function tool(formId, url, errorId, render) {
  $(formId).addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(errorId, null);
    try {
      const fd = new FormData($(formId));
      for (const [, v] of fd.entries()) if (v instanceof File) checkSize(v);
      render(await (await call(url, fd)).json());
    } catch (err) { showError(errorId, err); }
  });
}

function pct(x) { return `${(x * 100).toFixed(1)} %`; }

tool("verify-form", "api/verify", "verify-error", (r) => {
  const el = $("verify-result");
  el.innerHTML = "";
  const h = document.createElement("p");
  h.className = r.same_design ? "verdict same" : "verdict different";
  h.textContent = r.same_design ? "Same design" : "Different designs";
  const p = document.createElement("p");
  p.textContent = `similarity ${r.similarity.toFixed(3)} (threshold ${r.threshold.toFixed(3)}, ${r.domain}) · ` +
    `on held-out pairs: false accepts ${pct(r.false_accept_rate)}, false rejects ${pct(r.false_reject_rate)}, ` +
    `equal error rate ${pct(r.equal_error_rate)} · embedder ${r.embedder_version}`;
  el.append(h, p);
});

tool("identify-form", "api/identify", "identify-error", (r) => {
  const table = document.createElement("table");
  table.innerHTML = "<caption>Candidates by vote share</caption><thead><tr><th scope=col>Brand</th><th scope=col>Model</th>" +
    "<th scope=col>Year</th><th scope=col>Vote share</th><th scope=col>Best score</th></tr></thead>";
  const body = document.createElement("tbody");
  for (const c of r.candidates) {
    const tr = document.createElement("tr");
    for (const v of [c.brand, c.model, String(c.year)]) { const td = document.createElement("td"); td.textContent = v; tr.appendChild(td); }
    const share = document.createElement("td");
    share.innerHTML = `<div class="bar" role="meter" aria-valuemin="0" aria-valuemax="1" aria-valuenow="${c.vote_share}" ` +
      `aria-label="vote share"><span style="width:${c.vote_share * 100}%"></span></div> ${pct(c.vote_share)}`;
    const best = document.createElement("td"); best.textContent = c.best_score.toFixed(3);
    tr.append(share, best);
    body.appendChild(tr);
  }
  table.appendChild(body);
  $("identify-result").replaceChildren(table);
});

tool("novelty-form", "api/novelty", "novelty-error", (r) => {
  const p = document.createElement("p");
  p.className = "verdict";
  p.textContent = `novelty ${r.novelty.toFixed(3)}`;
  const q = document.createElement("p");
  q.className = "muted";
  q.textContent = "0 = a copy of a catalogue design. On the demo catalogue, new photos of catalogued designs " +
    "average 0.28 and designs that are not in the catalogue 0.44.";
  $("novelty-result").replaceChildren(p, q);
  renderGrid("novelty-results", r.nearest, null);
});

loadStats();
