// The parts editor: a site's parts edited on the map with leaflet-geoman (`map.pm`).
//
// "edit parts" copies the site's parts into editable polygons (the page's own parts layer is
// hidden meanwhile).  A click selects a part: reshape its vertices or move it, rename it,
// change its kind or label, or remove it.  "draw a new part" (or "place" next to an unplaced
// part) draws a polygon.  "save" sends the WHOLE layout (PUT /api/sites/{site}/parts), each
// part with the name it had ("was") so a rename keeps its history; "cancel" throws the edits
// away.  Names, labels and messages go into the page as text only.

import { h, messageOf } from "./panels.js";

// Editable parts: light and dashed (orange is the change objects' colour); the selected one
// solid yellow.
const STYLE = { color: "#e8ecff", weight: 2, dashArray: "5 4", fillColor: "#e8ecff",
                fillOpacity: 0.12, className: "sw-edit-part" };
const SELECTED = { color: "#ffe066", weight: 3, dashArray: null, fillColor: "#ffe066",
                   fillOpacity: 0.25 };
const NAME_RULE = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export function initEditor(ctx) {
  const root = document.getElementById("editor-tools");
  if (!root) return null;
  root.replaceChildren();
  const L = window.L;
  const map = ctx.map;
  const ed = {
    on: false,
    parts: [], // {key, name, kind, label, was, layer (L.Polygon or null)}
    selected: null,
    placing: null, // the unplaced part a drawing is for
    group: null,
    nextKey: 1,
  };

  // -- the controls --------------------------------------------------------------------
  const status = h("p", { id: "edit-status", role: "status" });
  const toggle = h("button", { type: "button", id: "edit-toggle", className: "write",
                               "aria-pressed": "false" }, "edit parts");
  const draw = h("button", { type: "button", id: "edit-draw" }, "draw a new part");
  const save = h("button", { type: "button", id: "edit-save", className: "primary" }, "save");
  const cancel = h("button", { type: "button", id: "edit-cancel" }, "cancel");
  const reshape = h("button", { type: "button", id: "edit-reshape" }, "reshape");
  const move = h("button", { type: "button", id: "edit-move" }, "move");
  const remove = h("button", { type: "button", id: "edit-remove", className: "danger" },
                   "remove part");
  const name = h("input", { type: "text", id: "part-name", maxLength: 64, required: true,
                            placeholder: "name_like_this", "aria-label": "part name" });
  const rawKinds = (ctx.site && ctx.site.part_kinds) || [];
  const kinds = Array.isArray(rawKinds) ? rawKinds : Object.keys(rawKinds);
  const kind = h("select", { id: "part-kind", "aria-label": "part kind" },
    kinds.map((k) => h("option", { value: k }, k.replace(/_/g, " "))));
  const label = h("input", { type: "text", id: "part-label", maxLength: 200,
                             placeholder: "label (optional)", "aria-label": "part label" });
  const apply = h("button", { type: "submit", id: "part-apply" }, "apply");
  const selectedTitle = h("h4", { className: "part-title" });
  const partForm = h("form", { className: "part-form", hidden: true },
    selectedTitle,
    h("label", { for: "part-name" }, "name"), name,
    h("label", { for: "part-kind" }, "kind"), kind,
    h("label", { for: "part-label" }, "label"), label,
    h("div", { className: "row" }, apply, reshape, move, remove));
  const unplaced = h("div", { className: "unplaced" });
  const body = h("div", { className: "editor-body leaflet-bar", hidden: true },
    h("p", { className: "hint" }, "Click a part to select it; drag its vertices to reshape "
      + "it (right-click a vertex removes it) or choose move. New parts must lie inside the "
      + "site."),
    h("div", { className: "row" }, draw, save, cancel),
    unplaced, partForm);
  root.append(toggle, status);
  // The tools float over the map as a Leaflet control (clicks in it never reach the map, so
  // they cannot add a vertex); the status line sits in it while editing, by the toggle after.
  const Tools = L.Control.extend({
    options: { position: "topleft" },
    onAdd() {
      L.DomEvent.disableClickPropagation(body);
      L.DomEvent.disableScrollPropagation(body);
      return body;
    },
  });
  const tools = new Tools();

  // -- state -----------------------------------------------------------------------------
  const partOf = (key) => ed.parts.find((p) => p.key === key) || null;
  const say = (text, cls = "") => {
    status.textContent = text;
    status.className = cls;
  };

  const load = () => {
    ed.parts = [];
    ed.selected = null;
    ed.placing = null;
    ed.group = L.featureGroup().addTo(map);
    const features = (ctx.site && ctx.site.parts && ctx.site.parts.features) || [];
    for (const f of features) {
      const p = f.properties || {};
      const part = { key: ed.nextKey++, name: p.name, kind: p.kind,
                     label: p.label && p.label !== p.name ? p.label : null,
                     was: p.name, layer: null };
      if (f.geometry) part.layer = polygonOf(f.geometry, part);
      ed.parts.push(part);
    }
    for (const item of (ctx.site && ctx.site.unplaced) || []) {
      const u = typeof item === "string" ? { name: item } : item;
      if (u.name && !ed.parts.some((p) => p.name === u.name)) {
        ed.parts.push({ key: ed.nextKey++, name: u.name, kind: u.kind || kinds[0] || null,
                        label: u.label && u.label !== u.name ? u.label : null,
                        was: u.name, layer: null });
      }
    }
  };

  const polygonOf = (geometry, part) => {
    const layer = L.geoJSON(geometry, { style: () => STYLE }).getLayers()[0];
    if (!layer) return null;
    attach(layer, part);
    return layer;
  };

  const attach = (layer, part) => {
    layer.setStyle(STYLE);
    layer.addTo(ed.group);
    layer.on("click", (ev) => {
      // While drawing, a click on a part is a vertex of the new one: let the map have it.
      if (map.pm.globalDrawModeEnabled()) return;
      L.DomEvent.stopPropagation(ev);
      select(part.key);
    });
    // An element, not a string: Leaflet parses string content as HTML.
    layer.bindTooltip(() => h('span', null, part.name || '(new part)'), { sticky: true });
  };

  const stopEditing = (part) => {
    if (part && part.layer && part.layer.pm) {
      part.layer.pm.disable();
      part.layer.pm.disableLayerDrag();
    }
  };

  const select = (key, how = "reshape") => {
    const before = partOf(ed.selected);
    if (before) {
      stopEditing(before);
      if (before.layer) before.layer.setStyle(STYLE);
    }
    ed.selected = key;
    const part = partOf(key);
    partForm.hidden = !part;
    if (!part) return;
    selectedTitle.textContent = part.was ? `part ${part.was}` : "new part";
    name.value = part.name || "";
    if (part.kind) kind.value = part.kind;
    label.value = part.label || "";
    if (part.layer) {
      part.layer.setStyle(SELECTED);
      part.layer.bringToFront();
      if (how === "move") part.layer.pm.enableLayerDrag();
      else part.layer.pm.enable({ allowSelfIntersection: false, draggable: true });
    }
    reshape.hidden = move.hidden = !part.layer;
  };

  const renderUnplaced = () => {
    const missing = ed.parts.filter((p) => !p.layer && p.was);
    unplaced.replaceChildren();
    if (!missing.length) return;
    unplaced.append(h("p", {}, "Not placed yet (draw them on the map):"),
      h("ul", {}, missing.map((p) => h("li", { "data-part": p.name },
        h("span", { className: "part-name" }, p.name),
        h("button", { type: "button", className: "place", "data-place": p.name,
                      onclick: () => startDraw(p) }, "place")))));
  };

  const startDraw = (forPart = null) => {
    const cur = partOf(ed.selected);
    if (cur) select(null);
    ed.placing = forPart ? forPart.key : null;
    map.pm.enableDraw("Polygon", { snappable: true, allowSelfIntersection: false,
                                   templineStyle: STYLE, hintlineStyle: STYLE,
                                   pathOptions: STYLE });
    say(forPart ? `Draw ${forPart.name}: click its corners, then click the first one again.`
      : "Click the new part's corners on the map, then click the first one again.");
  };

  const onCreate = (ev) => {
    if (!ed.on || ev.shape !== "Polygon") return;
    const layer = ev.layer;
    map.removeLayer(layer);
    let part = ed.placing !== null ? partOf(ed.placing) : null;
    ed.placing = null;
    if (!part) {
      part = { key: ed.nextKey++, name: "", kind: kinds.includes("other") ? "other" : kinds[0],
               label: null,
               was: null, layer: null };
      ed.parts.push(part);
    }
    const poly = L.polygon(layer.getLatLngs(), STYLE);
    part.layer = poly;
    attach(poly, part);
    renderUnplaced();
    select(part.key);
    if (!part.name) {
      say("Name the new part and choose its kind, then apply and save.");
      name.focus();
    } else {
      say(`${part.name} placed: save to keep it.`);
    }
  };

  // -- actions ---------------------------------------------------------------------------
  partForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const part = partOf(ed.selected);
    if (!part) return;
    const n = name.value.trim();
    if (!NAME_RULE.test(n)) {
      say(`the name "${n}" is not allowed: use 1-64 lower-case letters, digits, `
        + "'_' or '-', starting with a letter or digit", "error");
      return;
    }
    if (ed.parts.some((p) => p !== part && p.name === n)) {
      say(`another part is already called ${n}`, "error");
      return;
    }
    part.name = n;
    part.kind = kind.value;
    part.label = label.value.trim() || null;
    selectedTitle.textContent = part.was && part.was !== n ? `part ${part.was} → ${n}` : `part ${n}`;
    say(`${n}: changed here; save to keep it.`);
  });
  reshape.addEventListener("click", () => select(ed.selected, "reshape"));
  move.addEventListener("click", () => {
    select(ed.selected, "move");
    say("Drag the part to its place.");
  });
  remove.addEventListener("click", () => {
    const part = partOf(ed.selected);
    if (!part) return;
    stopEditing(part);
    if (part.layer) ed.group.removeLayer(part.layer);
    ed.parts = ed.parts.filter((p) => p !== part);
    select(null);
    renderUnplaced();
    say(part.was ? `${part.was} removed: save to keep this.` : "new part dropped.");
  });
  draw.addEventListener("click", () => startDraw());

  const layout = () => ed.parts.map((p) => {
    const item = { name: p.name, kind: p.kind, geometry: p.layer ? p.layer.toGeoJSON().geometry : null,
                   was: p.was || null, label: p.label || "" }; // "": no label
    return item;
  });

  save.addEventListener("click", async () => {
    const unnamed = ed.parts.find((p) => !p.name);
    if (unnamed) {
      select(unnamed.key);
      say("name the new part (and apply) before saving", "error");
      return;
    }
    const cur = partOf(ed.selected);
    if (cur) stopEditing(cur);
    save.disabled = true;
    say("saving…");
    try {
      const res = await ctx.api.send("PUT", `/api/sites/${encodeURIComponent(ctx.siteId)}/parts`,
                                     { parts: layout(), note: "edited in the web view" });
      const warnings = (res && res.warnings) || [];
      const result = (res && res.result) || "saved";
      if (res && res.site) ctx.site = res.site;
      leave();
      const removed = (res && res.removed) || [];
      say(`${result}${removed.length ? `; removed ${removed.join(", ")}` : ""}`
        + `${warnings.length ? `; ${warnings.join("; ")}` : ""}`,
          warnings.length ? "warning" : "ok");
      if (ctx.reload) await ctx.reload();
    } catch (err) {
      say(messageOf(err), "error");
      if (cur) select(cur.key);
    } finally {
      save.disabled = false;
    }
  });

  const enter = () => {
    ed.on = true;
    if (ctx.partsLayer && map.hasLayer(ctx.partsLayer)) map.removeLayer(ctx.partsLayer);
    load();
    renderUnplaced();
    body.hidden = false;
    tools.addTo(map);
    body.append(status);
    toggle.textContent = "stop editing";
    toggle.setAttribute("aria-pressed", "true");
    document.body.classList.add("editing-parts");
    say(`${ed.parts.filter((p) => p.layer).length} parts on the map.`);
    map.on("pm:create", onCreate);
  };

  const leave = () => {
    ed.on = false;
    map.off("pm:create", onCreate);
    if (map.pm.globalDrawModeEnabled()) map.pm.disableDraw();
    for (const p of ed.parts) stopEditing(p);
    if (ed.group) map.removeLayer(ed.group);
    ed.group = null;
    ed.parts = [];
    ed.selected = null;
    partForm.hidden = true;
    body.hidden = true;
    tools.remove();
    root.append(status);
    toggle.textContent = "edit parts";
    toggle.setAttribute("aria-pressed", "false");
    document.body.classList.remove("editing-parts");
    if (ctx.partsLayer && !map.hasLayer(ctx.partsLayer)) map.addLayer(ctx.partsLayer);
  };

  cancel.addEventListener("click", () => {
    leave();
    say("edits thrown away.");
  });
  toggle.addEventListener("click", () => {
    if (ed.on) {
      leave();
      say("editing stopped; unsaved edits thrown away.");
    } else {
      enter();
    }
  });

  return { enter, leave, layout, state: ed };
}
