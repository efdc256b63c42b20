(function(){
"use strict";
const D = JSON.parse(document.getElementById("report-data").textContent);
const NS = "http://www.w3.org/2000/svg";
const tip = document.getElementById("tip");
const LABEL_W = 220, LANE_H = 36, BAND_H = 16, TOP = 12, AXIS_H = 22;
let page = 0, zoom = 1, filter = "";
function el(name, attrs, parent){
  const node = document.createElementNS(NS, name);
  for (const k in attrs) node.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(node);
  return node;
}
function secs(v){
  if (v == null) return "–";
  return v < 1 ? (v * 1000).toFixed(1) + " ms" : v.toFixed(3) + " s";
}
function when(t){
  if (D.origin == null) return "t=" + t.toFixed(3) + " s (loop time)";
  const d = new Date((D.origin + t) * 1000);
  return d.toISOString().replace("T", " ");
}
function lanes(){
  if (!filter) return D.lanes;
  return D.lanes.filter(l => l.label.toLowerCase().includes(filter));
}
function bandText(lane, b){
  const st = D.states[b.s];
  const lines = [lane.label + ": " + st + " for " + secs(b.b - b.a), "from " + when(b.a)];
  if (b.r){
    const r = b.r;
    lines.push("record: " + r.src + " → " + st + " on " + r.trigger + "  (seq " + r.seq + ")");
    if (r.source) lines.push("source: " + r.source + (r.code != null ? " (" + r.code + ")" : ""));
    if (r.detail) lines.push("detail: " + r.detail);
    if (r.ts) lines.push("ts: " + r.ts);
    if (r.at != null) lines.push("at: " + r.at);
    if (r.in_prev_ms != null) lines.push("in " + r.src + " before: " + secs(r.in_prev_ms / 1000));
    lines.push("line: " + r.where);
  }
  if (b.m){
    const total = b.m.reduce((x, y) => x + y, 0) || 1;
    lines.push("summary band of " + b.n + " record" + (b.n === 1 ? "" : "s") + ":");
    b.m.forEach((v, i) => {
      if (v > 0) lines.push("  " + D.states[i] + " " + (100 * v / total).toFixed(1) + "%");
    });
    if (b.d) lines.push("  disconnections: " + b.d);
  } else if (b.n > 1) lines.push("records in this band: " + b.n);
  if (b.p) lines.push("pongs: " + b.p);
  if (b.w) lines.push(retryText(b.w));
  return lines.join("\n");
}
function retryText(w){
  return "reconnect in " + secs(w[1]) + (w[2] != null ? " (attempt " + w[2] + ")" : "");
}
function hover(node, text){
  node.addEventListener("mousemove", ev => {
    tip.textContent = text();
    tip.style.display = "block";
    tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8) + "px";
    tip.style.top = (ev.clientY + 14) + "px";
  });
  node.addEventListener("mouseleave", () => { tip.style.display = "none"; });
}
function draw(){
  const all = lanes();
  const pages = Math.max(1, Math.ceil(all.length / D.per_page));
  page = Math.min(page, pages - 1);
  const shown = all.slice(page * D.per_page, (page + 1) * D.per_page);
  document.getElementById("page-label").textContent =
    "lanes " + (all.length ? page * D.per_page + 1 : 0) + "–" + (page * D.per_page + shown.length) +
    " of " + all.length + " (page " + (page + 1) + " of " + pages + ")";
  document.getElementById("prev").disabled = page === 0;
  document.getElementById("next").disabled = page >= pages - 1;
  const box = document.getElementById("scroller");
  box.textContent = "";
  const width = Math.max(600, (box.clientWidth - LABEL_W - 20) * zoom);
  const span = Math.max(D.end, 1e-3);
  const x = t => LABEL_W + (Math.max(0, t) / span) * width;
  const svg = el("svg", {class: "lanes", width: LABEL_W + width + 10,
    height: AXIS_H + shown.length * LANE_H + 10}, box);
  for (let i = 0; i < 8; i++){  // no label at the very end: it would not fit
    const t = span * i / 8, gx = x(t);
    el("line", {x1: gx, x2: gx, y1: AXIS_H - 4, y2: AXIS_H + shown.length * LANE_H,
      stroke: "#e5e7eb"}, svg);
    const label = el("text", {x: gx + 2, y: 12}, svg);
    label.textContent = D.origin == null ? t.toFixed(1) + " s" : when(t).slice(11, 23);
  }
  shown.forEach((lane, row) => {
    const y = AXIS_H + row * LANE_H + TOP;
    const g = el("g", {class: "lane", "data-lane": lane.label}, svg);
    const name = el("text", {x: 4, y: y + BAND_H - 3, class: "lane-label"}, g);
    const dis = Object.values(lane.sum.disconnections).reduce((a, b) => a + b, 0);
    name.textContent = lane.label.slice(0, 26) + (dis ? "  ✕" + dis : "");
    hover(name, () => lane.label + "\n" + JSON.stringify(lane.sum, null, 1));
    let lastLabel = -1e9;
    const tiny = [];
    lane.bands.forEach(b => {
      const x1 = x(b.a), w = Math.max(2, x(b.b) - x1);
      const rect = el("rect", {x: x1, y: y, width: w, height: BAND_H, fill: D.colours[b.s],
        class: "band" + (b.m ? " merged" : ""), "data-state": D.states[b.s]}, g);
      hover(rect, () => bandText(lane, b));
      if (w < 4) tiny.push([x1 + w / 2, b]);  // gets a wider hit area, above its neighbours
      if (b.w){
        const wx = x(b.w[0]), ww = Math.max(1, Math.min(x(b.w[0] + b.w[1]), x(b.b)) - wx);
        const hatch = el("rect", {x: wx, y: y + BAND_H / 2, width: ww, height: BAND_H / 2,
          fill: "url(#hatch)", class: "retry"}, g);
        hover(hatch, () => lane.label + ": " + retryText(b.w));
      }
      if (b.d){
        const source = b.r ? (b.r.source || "?") : "", code = b.r ? b.r.code : null;
        const m = el("path", {d: "M" + x1 + "," + (y - 1) + " l-4,-5 h8 z", fill: "#111827",
          class: "marker", "data-source": source, "data-code": code != null ? code : ""}, g);
        const text = b.r ? source + (code != null ? " " + code : "") : "×" + b.d;
        hover(m, () => lane.label + ": disconnection " + text + "\n" + bandText(lane, b));
        if (x1 - lastLabel > 70){
          const t = el("text", {x: x1 + 3, y: y - 1, class: "marker-label"}, g);
          t.textContent = text;
          lastLabel = x1;
        }
      }
    });
    tiny.forEach(([cx, b]) => {
      const hit = el("rect", {x: cx - 3, y: y, width: 6, height: BAND_H, fill: "transparent",
        class: "hit", "data-state": D.states[b.s]}, g);
      hover(hit, () => bandText(lane, b));
    });
    lane.outages.forEach(o => {
      const ox = x(o[0]), ow = Math.max(1, x(o[1]) - ox);
      const bar = el("rect", {x: ox, y: y + BAND_H + 2, width: ow, height: 3, fill: "#7f1d1d",
        class: "outage"}, g);
      hover(bar, () => lane.label + ": outage " + secs(o[1] - o[0]) + " (left connected " +
        when(o[0]) + ", back " + when(o[1]) + ")");
    });
  });
  const defs = el("defs", {}, svg);
  const pat = el("pattern", {id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse",
    patternTransform: "rotate(45)"}, defs);
  el("rect", {width: 6, height: 6, fill: "#fee2e2"}, pat);
  el("line", {x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#991b1b", "stroke-width": 2}, pat);
  const body = document.querySelector("#lane-table tbody");
  body.textContent = "";
  shown.forEach(lane => {
    const s = lane.sum, tr = document.createElement("tr");
    const dis = Object.entries(s.disconnections).map(e => e[0] + "=" + e[1]).join(", ") || "none";
    let last = s.state;
    if (s.final_source) {
      last += " (" + s.final_source + (s.final_code != null ? " " + s.final_code : "") + ")";
    }
    [lane.label, s.records, s.pongs, dis, s.reconnects, s.outages, secs(s.p50), secs(s.p95), last]
      .forEach(v => {
        const td = document.createElement("td");
        td.textContent = String(v);
        tr.appendChild(td);
      });
    body.appendChild(tr);
  });
}
function overview(){
  const O = D.overview, box = document.getElementById("overview");
  if (!O) { box.textContent = "(no time span to show)"; return; }
  const H = 120, W = Math.max(600, box.clientWidth - 20), cw = W / O.states.length;
  const most = Math.max(1, ...O.states.map(c => c.reduce((x, y) => x + y, 0)));
  const most_d = Math.max(1, ...O.disconnections);
  const svg = el("svg", {class: "overview", width: W, height: H + 40}, box);
  O.states.forEach((column, i) => {
    const g = el("g", {class: "col"}, svg);
    let y = H;
    column.forEach((v, s) => {
      if (v <= 0) return;
      const h = H * v / most;
      y -= h;
      el("rect", {x: i * cw, y: y, width: Math.max(1, cw - 0.5), height: h,
        fill: D.colours[s]}, g);
    });
    const d = O.disconnections[i];
    if (d) el("rect", {x: i * cw, y: H + 4, width: Math.max(1, cw - 0.5),
      height: 14 * d / most_d + 1, fill: "#111827", class: "disc"}, g);
    el("rect", {x: i * cw, y: 0, width: cw, height: H + 20, fill: "transparent"}, g);
    hover(g, () => {
      const t = i * O.width, lines = [when(t) + " to " + when(t + O.width)];
      column.forEach((v, s) => {
        if (v > 0) lines.push("  " + D.states[s] + ": " + v.toFixed(1) + " client runs");
      });
      lines.push("  disconnections: " + d);
      return lines.join("\n");
    });
  });
  const t0 = el("text", {x: 0, y: H + 34}, svg);
  t0.textContent = D.origin == null ? "0 s" : when(0);
  const t1 = el("text", {x: W, y: H + 34, "text-anchor": "end"}, svg);
  t1.textContent = D.origin == null ? D.end.toFixed(1) + " s" : when(D.end);
}
overview();
document.getElementById("prev").addEventListener("click", () => { page--; draw(); });
document.getElementById("next").addEventListener("click", () => { page++; draw(); });
document.getElementById("zoom").addEventListener("change", ev => {
  zoom = Number(ev.target.value); draw();
});
document.getElementById("filter").addEventListener("input", ev => {
  filter = ev.target.value.trim().toLowerCase(); page = 0; draw();
});
window.addEventListener("resize", draw);
draw();
document.body.setAttribute("data-ready", "1");
})();
