// The review page's logic: plain JS, no network (data arrive as <script> files, so file:// works).
// data/run.js calls CXLSEG_REVIEW.run(info); data/<shard>.<flag>/<n>.js calls CXLSEG_REVIEW.page(view, n, records).
(function () {
  "use strict";
  const F = {};
  let RUN = null;
  const pages = new Map();
  const waiting = new Map();
  const applied = new Map();
  let local = {};
  let runIds = null; // every dicom_id of the run, from data/ids.js when a CSV is first imported
  let storage = null;
  let storageKey = "";
  const view = { shard: "all", flag: "all", page: 1 };
  let shown = [];
  const $ = (id) => document.getElementById(id);
  // low_/high_<feature> flags follow low_predicted_dice: they say why QC expects a poor mask
  const isReason = (flag) => /^(low|high)_/.test(flag) && flag !== "low_predicted_dice";
  const label = (flag) => flag.replace(/_/g, " ");

  window.CXLSEG_REVIEW = {
    run(info) {
      RUN = info;
      info.fields.forEach((name, i) => { F[name] = i; });
      start();
    },
    page(key, number, records) {
      const id = key + "/" + number;
      pages.set(id, records);
      const w = waiting.get(id);
      if (w) { waiting.delete(id); w.resolve(records); }
    },
    ids(list) { runIds = new Set(list); },
  };

  function problem(text) {
    const box = $("problem");
    box.textContent = text;
    box.hidden = !text;
  }

  function loadPage(key, number) {
    const id = key + "/" + number;
    if (pages.has(id)) return Promise.resolve(pages.get(id));
    return new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      const tag = document.createElement("script");
      tag.src = "data/" + key + "/" + number + ".js";
      tag.onload = () => {
        tag.remove();
        if (waiting.has(id)) { waiting.delete(id); reject(new Error(tag.src + " holds no page")); }
      };
      tag.onerror = () => { tag.remove(); waiting.delete(id); reject(new Error("cannot load " + tag.src)); };
      document.head.appendChild(tag);
    });
  }

  // ---- decisions: the run's applied review file, overridden by what this browser decided since
  function openStorage() {
    storageKey = "cxlseg-review:" + RUN.run_id;
    try {
      storage = window.localStorage;
      local = JSON.parse(storage.getItem(storageKey) || "{}");
    } catch (err) {
      storage = null;
      problem("This browser keeps no local storage for this page: export your decisions before closing it.");
    }
  }

  function save() {
    if (!storage) return;
    try { storage.setItem(storageKey, JSON.stringify(local)); } catch (err) {
      problem("Could not save decisions in this browser (" + err.message + "): export them now.");
    }
  }

  function decisionOf(id) {
    return local[id] || applied.get(id) || { d: "", n: "" };
  }

  function decide(id, decision, note) {
    const before = decisionOf(id);
    local[id] = { d: decision, n: note === undefined ? before.n : note };
    save();
    updateDecided();
  }

  function allDecisions() {
    const ids = new Set([...applied.keys(), ...Object.keys(local)]);
    return [...ids].sort().map((id) => [id, decisionOf(id)]).filter(([, v]) => v.d);
  }

  function csvField(text) {
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  function exportCsv() {
    const lines = ["dicom_id,decision,note"];
    for (const [id, v] of allDecisions()) lines.push([id, v.d, v.n || ""].map(csvField).join(","));
    const blob = new Blob([lines.join("\n") + "\n"], { type: "text/csv" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "review-decisions.csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  // rows of a CSV text, each with the line it starts on (a quoted note may span lines)
  function parseCsv(text) {
    const rows = [];
    let row = [], field = "", quoted = false, line = 1, start = 1;
    const end = () => { row.push(field); row.line = start; rows.push(row); row = []; field = ""; };
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c === "\n" || (c === "\r" && text[i + 1] !== "\n")) line++;
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
      } else if (c === '"') quoted = true;
      else if (c === ",") { row.push(field); field = ""; }
      else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") { i++; line++; }
        end();
        start = line;
      } else field += c;
    }
    if (field || row.length) end();
    return rows;
  }

  function loadIds() {
    if (runIds) return Promise.resolve(runIds);
    return new Promise((resolve, reject) => {
      const tag = document.createElement("script");
      tag.src = "data/ids.js";
      tag.onload = () => { tag.remove(); runIds ? resolve(runIds) : reject(new Error(tag.src + " holds no ids")); };
      tag.onerror = () => { tag.remove(); reject(new Error("cannot load " + tag.src)); };
      document.head.appendChild(tag);
    });
  }

  // A decisions file read as cxlseg.tables.review reads it for the quality table: every decision applies as
  // written or the file is refused with its line, so no decision is dropped or silently overridden.
  const quote = (text) => "'" + text + "'";
  function readDecisions(name, text, known) {
    const rows = parseCsv(text.replace(/^\ufeff/, ""));
    const first = rows.shift();
    if (!first) throw new Error(name + ": empty review file (expected a header: dicom_id,decision,note)");
    const header = first.map((h) => h.trim().toLowerCase());
    const missing = ["dicom_id", "decision"].filter((c) => !header.includes(c));
    if (missing.length) throw new Error(name + ":1: header lacks " + missing.join(", ") + " (found: " + header.join(", ") + ")");
    const extra = header.filter((h) => !["dicom_id", "decision", "note"].includes(h));
    if (extra.length) throw new Error(name + ":1: unknown column(s) " + extra.join(", ") + " (allowed: dicom_id, decision, note)");
    const at = { id: header.indexOf("dicom_id"), d: header.indexOf("decision"), n: header.indexOf("note") };
    const seen = new Map(), out = [];
    for (const r of rows) {
      if (!r.some((f) => f.trim())) continue; // a blank line holds no decision
      const where = name + ":" + r.line;
      if (r.length !== header.length) throw new Error(where + ": " + r.length + " fields, the header has " + header.length);
      const id = r[at.id].trim(), d = r[at.d].trim().toLowerCase();
      if (d !== "accepted" && d !== "rejected") throw new Error(where + ": unknown decision " + quote(d) + " for " + quote(id) + " (allowed: accepted, rejected)");
      if (!known.has(id)) throw new Error(where + ": unknown dicom_id " + quote(id) + " (not in this run)");
      if (seen.has(id)) throw new Error(where + ": dicom_id " + quote(id) + " already decided on line " + seen.get(id));
      seen.set(id, r.line);
      out.push([id, { d, n: at.n >= 0 ? r[at.n].trim() : "" }]);
    }
    return out;
  }

  function importCsv(file) {
    Promise.all([file.text(), loadIds()]).then(([text, known]) => {
      const decisions = readDecisions(file.name, text, known); // all or nothing: refused before any is kept
      decisions.forEach(([id, decision]) => { local[id] = decision; });
      save();
      problem("");
      render();
    }).catch((err) => problem(err.message));
  }

  // ---- filters and pages
  function viewKey() { return view.shard + "." + view.flag; }
  function viewSize() { return RUN.views[viewKey()] || 0; }
  function pageCount() { return Math.max(1, Math.ceil(viewSize() / RUN.page_size)); }

  function fillFilters() {
    const flag = $("flag"), shard = $("shard");
    flag.innerHTML = "";
    const option = (name, text) => new Option(text + " (" + (RUN.views[view.shard + "." + name] || 0) + ")", name, false, name === view.flag);
    flag.add(option("all", "All masks"));
    flag.add(option("flagged", "Any flag"));
    const names = Object.keys(RUN.flags).filter((f) => f !== "all" && f !== "flagged").sort();
    for (const [title, group] of [["QC flags", names.filter((f) => !isReason(f))], ["Why the predicted Dice is low", names.filter(isReason)]]) {
      if (!group.length) continue;
      const element = document.createElement("optgroup");
      element.label = title;
      for (const name of group) element.appendChild(option(name, label(name)));
      flag.appendChild(element);
    }
    shard.innerHTML = "";
    shard.add(new Option("All shards (" + RUN.masks + ")", "all", false, view.shard === "all"));
    for (const [name, n] of Object.entries(RUN.shards)) shard.add(new Option(name + " (" + n + ")", name, false, name === view.shard));
  }

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    view.shard = RUN.shards[params.get("shard")] ? params.get("shard") : "all";
    view.flag = RUN.flags[params.get("flag")] ? params.get("flag") : "all";
    view.page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
  }

  function go(changes) {
    Object.assign(view, changes);
    view.page = Math.min(Math.max(1, view.page), pageCount());
    const hash = "#shard=" + view.shard + "&flag=" + view.flag + "&page=" + view.page;
    if (location.hash !== hash) history.replaceState(null, "", hash);
    render();
  }

  function fmt(x) { return x === null || x === undefined ? "–" : x.toFixed(2); }

  function card(rec) {
    const id = rec[F.dicom_id], d = decisionOf(id);
    const flags = rec[F.qc_flags] ? rec[F.qc_flags].split(";") : [];
    const el = document.createElement("article");
    el.className = "card" + (flags.length ? " flagged" : "") + (d.d ? " " + d.d : "");
    el.tabIndex = 0;
    el.dataset.id = id;
    const thumb = document.createElement("div");
    thumb.className = "thumb";
    if (rec[F.thumb]) {
      const img = document.createElement("img");
      img.src = RUN.thumb_url.replace("{shard}", rec[F.shard]).replace("{dicom_id}", id);
      img.alt = "film " + id + " with its mask outlined";
      img.loading = "lazy";
      thumb.appendChild(img);
    } else {
      thumb.innerHTML = '<span class="none">no thumbnail (inference ran before thumbnails)</span>';
    }
    el.appendChild(thumb);
    const dice = rec[F.qc_predicted_dice];
    const bad = dice === null || dice < RUN.min_predicted_dice;
    const line1 = document.createElement("div");
    line1.className = "line";
    line1.innerHTML = '<span title="Dice predicted by the QC model">pred. Dice <b class="dice' + (bad ? " bad" : "") + '">' + fmt(dice) +
      "</b></span><span>" + (rec[F.split] || "not in tables") + "</span>";
    el.appendChild(line1);
    const line2 = document.createElement("div");
    line2.className = "line";
    line2.innerHTML = '<span title="view check: probability that the film is not a frontal chest film">p(not frontal) ' +
      fmt(rec[F.p_not_frontal]) + '</span><span title="inference shard">' + rec[F.shard] + "</span>";
    el.appendChild(line2);
    const chips = document.createElement("div");
    chips.className = "flags";
    for (const f of flags.filter((f) => !isReason(f))) {
      const chip = document.createElement("span");
      chip.className = "flag" + (f === "not_frontal" ? " view" : "");
      chip.textContent = label(f);
      chips.appendChild(chip);
    }
    el.appendChild(chips);
    const reasons = flags.filter(isReason).map(label);
    if (reasons.length) {
      const why = document.createElement("div");
      why.className = "why";
      why.textContent = "why: " + reasons.join(", ");
      why.title = why.textContent;
      el.appendChild(why);
    }
    const idline = document.createElement("div");
    idline.className = "id";
    idline.textContent = id;
    idline.title = id + " (subject " + rec[F.subject_id] + ", study " + rec[F.study_id] + ")";
    el.appendChild(idline);
    const actions = document.createElement("div");
    actions.className = "actions";
    for (const [cls, decision, text] of [["accept", "accepted", "Accept"], ["reject", "rejected", "Reject"]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = cls;
      b.textContent = text;
      b.setAttribute("aria-pressed", String(d.d === decision));
      b.addEventListener("click", () => setCard(el, decisionOf(id).d === decision ? "" : decision));
      actions.appendChild(b);
    }
    el.appendChild(actions);
    const note = document.createElement("input");
    note.className = "note";
    note.placeholder = "note (optional)";
    note.value = d.n || "";
    note.addEventListener("change", () => decide(id, decisionOf(id).d, note.value));
    el.appendChild(note);
    return el;
  }

  function setCard(el, decision) {
    const id = el.dataset.id;
    decide(id, decision);
    el.classList.remove("accepted", "rejected");
    if (decision) el.classList.add(decision);
    el.querySelector(".accept").setAttribute("aria-pressed", String(decision === "accepted"));
    el.querySelector(".reject").setAttribute("aria-pressed", String(decision === "rejected"));
  }

  function render() {
    fillFilters();
    const n = viewSize(), count = pageCount();
    $("pageno").value = view.page;
    $("pageno").max = count;
    $("pages").textContent = count;
    for (const b of [$("prev"), $("prev2")]) b.disabled = view.page <= 1;
    for (const b of [$("next"), $("next2")]) b.disabled = view.page >= count;
    const first = n ? (view.page - 1) * RUN.page_size + 1 : 0, last = Math.min(n, view.page * RUN.page_size);
    $("range").textContent = n ? "masks " + first + "–" + last + " of " + n : "";
    $("where").textContent = "page " + view.page + " of " + count;
    updateDecided();
    const grid = $("grid");
    const want = viewKey() + "/" + view.page;
    if (!n) {
      grid.innerHTML = '<p class="empty">No mask matches these filters.</p>';
      grid.dataset.view = want;
      return;
    }
    grid.setAttribute("aria-busy", "true");
    loadPage(viewKey(), view.page).then((records) => {
      if (viewKey() + "/" + view.page !== want) return;
      shown = records;
      grid.replaceChildren(...records.map(card));
      grid.dataset.view = want;
      grid.removeAttribute("aria-busy");
    }).catch((err) => { problem(err.message); grid.removeAttribute("aria-busy"); });
  }

  function updateDecided() {
    const all = allDecisions();
    const rejected = all.filter(([, v]) => v.d === "rejected").length;
    $("decided").textContent = all.length ? all.length + " decided: " + (all.length - rejected) + " accepted, " + rejected + " rejected" : "no decisions yet";
  }

  function start() {
    for (const [id, d, n] of RUN.applied) applied.set(id, { d: d, n: n || "" });
    openStorage();
    $("banner").hidden = !RUN.demo;
    $("bar").textContent = "predicted Dice " + RUN.min_predicted_dice;
    const status = Object.entries(RUN.status).map(([k, v]) => v + " " + k).join(", ");
    $("counts").textContent = RUN.masks + " masks (" + status + "), worst first" +
      (RUN.missing_thumbnails ? "; " + RUN.missing_thumbnails + " without thumbnail" : "");
    $("flag").addEventListener("change", (e) => go({ flag: e.target.value, page: 1 }));
    $("shard").addEventListener("change", (e) => go({ shard: e.target.value, page: 1 }));
    $("pageno").addEventListener("change", (e) => go({ page: parseInt(e.target.value, 10) || 1 }));
    for (const id of ["prev", "prev2"]) $(id).addEventListener("click", () => go({ page: view.page - 1 }));
    for (const id of ["next", "next2"]) $(id).addEventListener("click", () => go({ page: view.page + 1 }));
    $("export").addEventListener("click", exportCsv);
    $("import").addEventListener("change", (e) => { if (e.target.files[0]) importCsv(e.target.files[0]); e.target.value = ""; });
    document.addEventListener("keydown", (e) => {
      if (e.target.matches("input, select, textarea") || e.altKey || e.ctrlKey || e.metaKey) return;
      const el = e.target.closest && e.target.closest(".card");
      if (el && (e.key === "a" || e.key === "r" || e.key === "u")) {
        setCard(el, { a: "accepted", r: "rejected", u: "" }[e.key]);
        const next = el.nextElementSibling;
        if (next && e.key !== "u") next.focus();
      } else if (e.key === "ArrowRight" && view.page < pageCount()) go({ page: view.page + 1 });
      else if (e.key === "ArrowLeft" && view.page > 1) go({ page: view.page - 1 });
    });
    window.addEventListener("hashchange", () => { readHash(); go({}); });
    readHash();
    go({});
  }
})();
