// The side panels of a site's page: the write token, alerts and their lifecycle, the
// assessment, collateral reports and notes, and the brief.
//
// Every string that comes from the server is data: it goes into the page through
// textContent only (h() below never parses markup), so a report or part label holding
// markup shows as text.  The page's CSP forbids inline styles and scripts: nothing here
// writes a style attribute; state shows through classes and the `hidden` attribute.

const STATUS_OPEN = new Set(["new", "seen"]);
const EVENTS = [["launch", "Launch"], ["engine_test", "Engine test"]];

/** An element: `attrs` sets properties (className, type, value, hidden...), `data-*` and
 * `aria-*` attributes, and `on*` listeners; children are nodes or strings (as text). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key.startsWith("data-") || key.startsWith("aria-") || key === "for"
               || key === "role") {
      node.setAttribute(key, String(value));
    } else {
      node[key] = value;
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** The day of an ISO time ("2024-03-10T02:08:35Z" -> "2024-03-10"), or "" for none. */
export function day(time) {
  return time ? String(time).slice(0, 10) : "";
}

/** A failed request's message: the server's error message when it gave one. */
export function messageOf(err) {
  if (!err) return "failed";
  const status = err.status ? ` (${err.status})` : "";
  return `${err.message || String(err)}${status}`;
}

function percent(x) {
  return x === null || x === undefined ? "?" : `${Math.round(Number(x) * 100)}%`;
}

function siteUrl(ctx, tail = "") {
  return `/api/sites/${encodeURIComponent(ctx.siteId)}${tail}`;
}

function container(id) {
  const node = document.getElementById(id);
  if (node) node.replaceChildren();
  return node;
}

/** Builds every panel; returns a small handle (for the page and tests). */
export function initPanels(ctx) {
  const shared = { readOnly: false, ctx };
  const token = tokenPanel(ctx, shared);
  const alerts = alertsPanel(ctx, shared);
  const assessment = assessmentPanel(ctx);
  const collateral = collateralPanel(ctx, shared);
  const brief = briefPanel(ctx, shared);
  ctx.api.getJSON("/api/health").then((health) => {
    shared.readOnly = Boolean(health && health.read_only);
    document.body.classList.toggle("read-only", shared.readOnly);
    token.refresh();
  }).catch(() => { /* the page still works read-first */ });
  return { token, alerts, assessment, collateral, brief };
}

// -- the token ----------------------------------------------------------------------------

function tokenPanel(ctx, shared) {
  // A compact widget (the page puts it in the top bar): a summary saying whether writes are
  // possible from this tab, opening onto the form.
  const root = container("panel-token");
  const summary = h("summary", { className: "token-state" });
  const input = h("input", { type: "password", id: "token-input", autocomplete: "off",
                             placeholder: "paste the write token", "aria-label": "write token" });
  const message = h("p", { className: "token-message", role: "status" });
  const explain = h("p", { className: "hint" });
  const use = h("button", { type: "submit", id: "token-use" }, "use token");
  const forget = h("button", { type: "button", id: "token-forget" }, "forget");
  const form = h("form", { className: "token-form write" }, input, use, forget);
  const box = h("details", { className: "token-box" }, summary,
    h("div", { className: "token-pop" }, explain, form, message,
      h("p", { className: "hint" }, "sitewatch serve printed the token when it first "
        + "started; it is kept in ", h("code", {}, "<home>/web-token"), ". Here it stays "
        + "in this tab only (session storage) and is sent to this server only.")));
  const refresh = () => {
    const have = Boolean(ctx.api.getToken());
    box.classList.toggle("token-set", have && !shared.readOnly);
    box.classList.toggle("token-readonly", shared.readOnly);
    if (shared.readOnly) {
      summary.textContent = "read-only";
      explain.textContent = "This server is read-only (sitewatch serve --read-only): "
        + "writes are off.";
      form.hidden = true;
      return;
    }
    form.hidden = false;
    forget.hidden = !have;
    summary.textContent = have ? "write token set" : "no write token";
    explain.textContent = have
      ? "A write token is set in this tab: you can act on alerts, add notes and reports, "
        + "write a brief and edit parts."
      : "Without the write token you can look but not change anything.";
  };
  forget.addEventListener("click", () => {
    ctx.api.setToken(null);
    message.textContent = "token forgotten";
    refresh();
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = input.value.trim();
    if (!value) { message.textContent = "paste the token first"; return; }
    ctx.api.setToken(value);
    input.value = "";
    message.textContent = "token set for this tab";
    refresh();
    box.open = false;
  });
  if (root) root.append(box);
  refresh();
  return { refresh };
}

// -- alerts -------------------------------------------------------------------------------

function alertsPanel(ctx, shared) {
  const root = container("panel-alerts");
  let alerts = sortAlerts(ctx.alerts || []);
  let filter = "open";
  const keep = new Set(); // acted on here: stays listed whatever the filter
  let selected = null;
  const list = h("ul", { className: "alert-list" });
  const count = h("span", { className: "alert-count" });
  const filterSelect = h("select", {
    id: "alert-filter", "aria-label": "which alerts",
    onchange: () => { filter = filterSelect.value; render(); },
  }, h("option", { value: "open" }, "open (new and seen)"), h("option", { value: "all" }, "all"));

  const render = () => {
    const shown = alerts.filter((a) => filter === "all" || STATUS_OPEN.has(a.status)
                                       || keep.has(a.id));
    count.textContent = `${shown.length} of ${alerts.length}`;
    list.replaceChildren(...shown.map((a) => alertItem(ctx, a, actions)));
    if (!shown.length) {
      list.append(h("li", { className: "empty" },
        filter === "open" ? "No open alerts." : "No alerts."));
    }
    if (selected) mark(selected, false);
  };

  const mark = (id, scroll) => {
    selected = id;
    for (const li of list.querySelectorAll("li.alert")) {
      li.classList.toggle("selected", li.dataset.alert === id);
    }
    const li = list.querySelector(`li.alert[data-alert="${CSS.escape(id)}"]`);
    if (li && scroll) li.scrollIntoView({ block: "nearest", behavior: "smooth" });
    return li;
  };

  const actions = {
    async act(alert, action, reason, li) {
      const msg = li.querySelector(".alert-message");
      msg.textContent = "";
      li.classList.add("busy");
      try {
        const updated = await ctx.api.send("POST", siteUrl(ctx, `/alerts/${encodeURIComponent(alert.id)}`),
                                           { action, reason: reason || "" });
        const fresh = updated && updated.id ? updated : { ...alert, status: statusAfter(action) };
        if (!fresh.label) fresh.label = alert.label;
        alerts = alerts.map((a) => (a.id === alert.id ? fresh : a));
        keep.add(alert.id);
        li.replaceWith(alertItem(ctx, fresh, actions));
        mark(alert.id, false);
        const now = list.querySelector(`li.alert[data-alert="${CSS.escape(alert.id)}"]`);
        if (now) now.querySelector(".alert-message").textContent = `${action}: done`;
        await reloadAfter();
      } catch (err) {
        li.classList.remove("busy");
        msg.textContent = messageOf(err);
        msg.classList.add("error");
      }
    },
    select(alert) {
      mark(alert.id, false);
      if (ctx.selectAlert) ctx.selectAlert(alert.id);
    },
  };

  const reloadAfter = async () => {
    if (!ctx.reload) return;
    try {
      await ctx.reload();
    } catch (err) {
      return; // the page says why; our list already shows the change
    }
    if (ctx.alerts && ctx.alerts !== alerts) {
      alerts = sortAlerts(ctx.alerts);
      render();
    }
  };

  if (ctx.on) {
    ctx.on("alert-selected", (alert) => {
      const id = alert && typeof alert === "object" ? alert.id : alert;
      if (!id) return;
      if (!alerts.some((a) => a.id === id) && alert && typeof alert === "object") {
        alerts = sortAlerts([...alerts, alert]);
      }
      if (!list.querySelector(`li.alert[data-alert="${CSS.escape(id)}"]`)) {
        keep.add(id);
        render();
      }
      mark(id, true);
    });
  }

  if (root) {
    root.append(h("div", { className: "panel-head" }, h("h2", {}, "Alerts "), count,
                  h("label", { className: "filter" }, "show ", filterSelect)), list);
  }
  render();
  return {
    render,
    setAlerts(next) { alerts = sortAlerts(next || []); render(); },
  };
}

function sortAlerts(alerts) {
  return [...alerts].sort((a, b) => String(b.time || "").localeCompare(String(a.time || ""))
                                    || String(a.id).localeCompare(String(b.id)));
}

function statusAfter(action) {
  return { seen: "seen", dismiss: "dismissed", confirm: "confirmed", reopen: "new" }[action]
    || action;
}

function alertItem(ctx, a, actions) {
  const status = a.status || "new";
  const open = STATUS_OPEN.has(status);
  const stop = (fn) => (ev) => { ev.stopPropagation(); fn(ev); };
  const li = h("li", {
    className: `alert tier-${safeClass(a.tier)} status-${safeClass(status)}`,
    "data-alert": a.id, tabIndex: 0,
    onclick: () => ctx.openCompare(a.before_scene, a.after_scene, a.id),
    onkeydown: (ev) => {
      if (ev.key === "Enter" && ev.target === li) {
        ctx.openCompare(a.before_scene, a.after_scene, a.id);
      }
    },
  });
  const reason = h("input", { type: "text", className: "dismiss-reason", maxLength: 500,
                              placeholder: "why is it a false alarm? (required)",
                              "aria-label": "reason for dismissing" });
  const message = h("p", { className: "alert-message", role: "status" });
  const dismissForm = h("form", {
    className: "alert-dismiss write", hidden: true,
    onclick: (ev) => ev.stopPropagation(),
    onsubmit: (ev) => {
      ev.preventDefault();
      const text = reason.value.trim();
      if (!text) {
        message.textContent = "a reason is required to dismiss an alert";
        message.classList.add("error");
        reason.focus();
        return;
      }
      actions.act(a, "dismiss", text, li);
    },
  }, reason, h("button", { type: "submit", className: "dismiss-send" }, "dismiss"),
     h("button", { type: "button", className: "dismiss-cancel",
                   onclick: stop(() => { dismissForm.hidden = true; }) }, "cancel"));
  const button = (action, text, show, fn, write = true) => h("button", {
    type: "button", "data-action": action, hidden: !show,
    className: write ? "write" : "", onclick: stop(fn),
  }, text);
  const parts = [
    h("div", { className: "alert-head" },
      h("span", { className: "alert-date" }, day(a.time)),
      h("span", { className: "alert-part" }, a.label || a.part || ""),
      h("span", { className: `tier-badge tier-${safeClass(a.tier)}` }, a.tier || ""),
      a.season ? h("span", {
        className: "season-badge",
        title: "low confidence: the comparison spans seasons and the same season of "
               + "earlier years does not show this change",
      }, "season?") : null,
      h("span", { className: "alert-status" }, status)),
    h("p", { className: "alert-text" }, a.text || ""),
    a.status_reason ? h("p", { className: "alert-reason" }, `reason: ${a.status_reason}`) : null,
    h("div", { className: "alert-actions" },
      button("show", "show", true, () => actions.select(a), false),
      button("compare", "compare", true,
             () => ctx.openCompare(a.before_scene, a.after_scene, a.id), false),
      button("timeline", "timeline", Boolean(a.part), () => ctx.showTimeline(a.part), false),
      button("seen", "seen", status === "new", () => actions.act(a, "seen", "", li)),
      button("dismiss", "dismiss…", open, () => {
        dismissForm.hidden = false;
        reason.focus();
      }),
      button("confirm", "confirm", open, () => actions.act(a, "confirm", "", li)),
      button("reopen", "reopen", !open, () => actions.act(a, "reopen", "", li))),
    dismissForm, message];
  li.append(...parts.filter(Boolean));
  return li;
}

/** A value made safe as part of a class name (tiers and statuses are words anyway). */
function safeClass(value) {
  return String(value || "none").toLowerCase().replace(/[^a-z0-9_-]/g, "_");
}

// -- the assessment -----------------------------------------------------------------------

function assessmentPanel(ctx) {
  const root = container("panel-assessment");
  const at = h("input", { type: "date", id: "assess-at", "aria-label": "as of" });
  const body = h("div", { className: "assessment-body" }, "loading the assessment…");
  const load = async () => {
    body.replaceChildren("loading the assessment…");
    const q = at.value ? `?at=${encodeURIComponent(at.value)}` : "";
    try {
      const a = await ctx.api.getJSON(siteUrl(ctx, `/assessment${q}`));
      body.replaceChildren(...renderAssessment(ctx, a));
    } catch (err) {
      body.replaceChildren(h("p", { className: "error" }, messageOf(err)));
    }
  };
  const form = h("form", {
    className: "assess-form",
    onsubmit: (ev) => { ev.preventDefault(); load(); },
  }, h("label", { for: "assess-at" }, "as of "), at,
     h("button", { type: "submit", id: "assess-go" }, "assess"),
     h("button", { type: "button", onclick: () => { at.value = ""; load(); } }, "latest"));
  if (root) root.append(h("h2", {}, "Assessment"), form, body);
  load();
  return { load };
}

function renderAssessment(ctx, a) {
  const out = [h("p", { className: "assess-at" }, `As of ${a.at || "?"}`,
                 a.evidence_items !== undefined ? ` · ${a.evidence_items} evidence items` : "")];
  for (const [key, name] of EVENTS) {
    const e = a[key];
    if (!e) continue;
    out.push(renderEvent(name, e));
  }
  const seen = a.imagery && a.imagery.seen;
  if (seen && seen.length) {
    out.push(h("details", { className: "coverage" },
      h("summary", {}, `Coverage: last clear look per part (${seen.length})`),
      h("table", { className: "coverage-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "part"), h("th", {}, "sensor"),
                                h("th", {}, "last seen"), h("th", {}, "dates"))),
        h("tbody", {}, seen.map((s) => h("tr", {},
          h("td", {}, s.part || ""), h("td", {}, s.sensor || ""), h("td", {}, s.last || "never"),
          h("td", {}, s.dates ?? "")))))));
  }
  if (a.imagery && a.imagery.last_image) {
    out.push(h("p", { className: "hint" }, `Last image ${day(a.imagery.last_image)}`,
      a.imagery.best_resolution_m ? `, best resolution ${a.imagery.best_resolution_m} m` : ""));
  }
  return out;
}

function renderEvent(name, e) {
  const level = String(e.level || "unknown");
  const range = Array.isArray(e.likelihood_range)
    ? ` (range ${percent(e.likelihood_range[0])}–${percent(e.likelihood_range[1])})` : "";
  const horizon = e.horizon_days ? ` within ${Math.round(e.horizon_days)} days` : "";
  const w = e.window;
  const windowText = w ? `window ${w.start || "?"} – ${w.end || "?"}${w.basis ? ` (${w.basis})` : ""}`
    : "no window";
  const reasons = (title, items, cls) => (items && items.length
    ? h("details", { className: `reasons ${cls}`, open: cls === "for" },
        h("summary", {}, `${title} (${items.length})`),
        h("ul", {}, items.map((r) => h("li", {}, r.text || r.indicator || ""))))
    : h("p", { className: `reasons ${cls} none` }, `${title}: none`));
  const unobserved = e.unobserved || [];
  return h("section", { className: `event event-${safeClass(level)}` },
    h("h3", {}, name, " ", h("span", { className: `level level-${safeClass(level)}` },
                            level.replace(/_/g, " "))),
    h("p", { className: "likelihood" },
      h("strong", {}, percent(e.likelihood)), `${horizon}${range}`,
      e.prior !== undefined ? `; usual rate ${percent(e.prior)}` : ""),
    h("p", { className: "window" }, windowText),
    reasons("For", e.reasons, "for"),
    reasons("Against", e.against, "against"),
    unobserved.length
      ? h("details", { className: "unobserved" },
          h("summary", {}, `Could not be observed (${unobserved.length})`),
          h("ul", {}, unobserved.map((u) => h("li", {},
            h("span", { className: "ind" }, u.name || u.indicator || ""),
            u.why ? `: ${u.why}` : ""))))
      : null);
}

// -- collateral ---------------------------------------------------------------------------

function collateralPanel(ctx, shared) {
  const root = container("panel-collateral");
  const reports = h("ul", { className: "reports" });
  const notes = h("ul", { className: "notes" });
  const load = async () => {
    try {
      const c = await ctx.api.getJSON(siteUrl(ctx, "/collateral"));
      reports.replaceChildren(...(c.reports || []).map(reportItem));
      if (!(c.reports || []).length) reports.append(h("li", { className: "empty" }, "No reports."));
      notes.replaceChildren(...(c.notes || []).map(noteItem));
      if (!(c.notes || []).length) notes.append(h("li", { className: "empty" }, "No notes."));
    } catch (err) {
      reports.replaceChildren(h("li", { className: "error" }, messageOf(err)));
    }
  };
  const after = async () => {
    await load();
    if (ctx.reload) { try { await ctx.reload(); } catch (err) { /* the page says */ } }
  };
  if (root) {
    root.append(h("h2", {}, "Reports and notes"),
      h("h3", {}, "Reports"), reports, reportForm(ctx, after),
      h("h3", {}, "Notes"), notes, noteForm(ctx, after));
  }
  load();
  return { load };
}

function reportItem(r) {
  const source = r.source || baseName(r.name) || "";
  return h("li", { className: "report", "data-report": r.id || "" },
    h("span", { className: "report-date" }, r.published ? day(r.published) : "undated"),
    h("span", { className: "report-title" }, r.title || "(untitled)"),
    source ? h("span", { className: "report-source" }, source) : null,
    r.stated ? h("span", { className: "report-stated" },
      `says: launch ${r.stated.launch || "?"}, engine test ${r.stated.engine_test || "?"}`)
      : null);
}

function noteItem(n) {
  return h("li", { className: "note", "data-note": n.id || "" },
    h("span", { className: "note-date" }, day(n.date || n.when)),
    n.part ? h("span", { className: "note-part" }, n.part) : null,
    n.author ? h("span", { className: "note-author" }, n.author) : null,
    h("span", { className: "note-text" }, n.text || ""));
}

function baseName(path) {
  return path ? String(path).split(/[\\/]/).pop() : "";
}

function today() {
  return new Date().toISOString().slice(0, 10);
}

function noteForm(ctx, after) {
  const text = h("textarea", { id: "note-text", rows: 2, maxLength: 5000,
                               placeholder: "what you saw or know", "aria-label": "note" });
  const when = h("input", { type: "date", id: "note-when", value: today(), "aria-label": "date" });
  const partNames = partsOf(ctx.site).map((p) => p.name);
  const part = h("select", { id: "note-part", "aria-label": "part" },
    h("option", { value: "" }, "(whole site)"),
    partNames.map((name) => h("option", { value: name }, name)));
  const message = h("p", { className: "form-message", role: "status" });
  return h("form", {
    className: "note-form write",
    onsubmit: async (ev) => {
      ev.preventDefault();
      message.classList.remove("error");
      if (!text.value.trim()) { fail(message, "write the note first"); return; }
      const body = { text: text.value.trim(), when: when.value || today() };
      if (part.value) body.part = part.value;
      message.textContent = "adding…";
      try {
        await ctx.api.send("POST", siteUrl(ctx, "/notes"), body);
        text.value = "";
        message.textContent = "note added";
        await after();
      } catch (err) {
        fail(message, messageOf(err));
      }
    },
  }, h("h4", {}, "Add a note"), text, h("div", { className: "row" }, when, part,
     h("button", { type: "submit", id: "note-add" }, "add note")), message);
}

function reportForm(ctx, after) {
  const title = h("input", { type: "text", id: "report-title", maxLength: 300,
                             placeholder: "title (optional)", "aria-label": "report title" });
  const published = h("input", { type: "date", id: "report-published",
                                 "aria-label": "published" });
  const text = h("textarea", { id: "report-text", rows: 4,
                               placeholder: "paste the article or report text",
                               "aria-label": "report text" });
  const message = h("p", { className: "form-message", role: "status" });
  return h("details", { className: "report-add write" },
    h("summary", {}, "Add a report"),
    h("form", {
      className: "report-form",
      onsubmit: async (ev) => {
        ev.preventDefault();
        message.classList.remove("error");
        if (!text.value.trim()) { fail(message, "paste the report's text first"); return; }
        const body = { text: text.value };
        if (title.value.trim()) body.title = title.value.trim();
        if (published.value) body.published = published.value;
        message.textContent = "reading the report…";
        try {
          await ctx.api.send("POST", siteUrl(ctx, "/reports"), body);
          text.value = ""; title.value = ""; published.value = "";
          message.textContent = "report added";
          await after();
        } catch (err) {
          fail(message, messageOf(err));
        }
      },
    }, title, h("div", { className: "row" }, h("label", { for: "report-published" }, "published "),
                published), text,
       h("button", { type: "submit", id: "report-add" }, "add report"), message));
}

function fail(node, text) {
  node.textContent = text;
  node.classList.add("error");
}

function partsOf(site) {
  const features = (site && site.parts && site.parts.features) || [];
  const names = features.map((f) => ({ name: f.properties && f.properties.name }))
    .filter((p) => p.name);
  for (const item of (site && site.unplaced) || []) {
    const name = typeof item === "string" ? item : item && item.name;
    if (name && !names.some((p) => p.name === name)) names.push({ name });
  }
  return names;
}

// -- the brief ----------------------------------------------------------------------------

function briefPanel(ctx, shared) {
  const root = container("panel-brief");
  const link = h("p", { className: "brief-link" });
  const message = h("p", { className: "form-message", role: "status" });
  const show = (b) => {
    if (b && b.url && String(b.url).startsWith("/") && !String(b.url).startsWith("//")) {
      link.replaceChildren(h("a", { href: b.url, target: "_blank", rel: "noopener",
                                    id: "brief-open" }, "open the latest brief"),
        b.written ? ` (written ${String(b.written).replace("T", " ").slice(0, 16)})` : "");
    } else {
      link.replaceChildren("No brief written from this view yet.");
    }
  };
  const write = h("button", {
    type: "button", id: "brief-write", className: "write",
    onclick: async () => {
      write.disabled = true;
      message.classList.remove("error");
      message.textContent = "writing the brief (maps, tables, assessment): this can take a "
        + "minute…";
      try {
        const b = await ctx.api.send("POST", siteUrl(ctx, "/brief"), {});
        show(b);
        message.textContent = "brief written";
      } catch (err) {
        fail(message, messageOf(err));
      } finally {
        write.disabled = false;
      }
    },
  }, "write a new brief");
  if (root) root.append(h("h2", {}, "Brief"), link, write, message);
  ctx.api.getJSON(siteUrl(ctx, "/brief")).then(show)
    .catch((err) => fail(message, messageOf(err)));
  return { show };
}
