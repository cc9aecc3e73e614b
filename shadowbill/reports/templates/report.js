/* shadowbill report: the customer explorer (search, filters, sort, pages) and the
   customer detail (invoices side by side and the waterfall). Data comes from the
   embedded JSON block and is only ever written with textContent or setAttribute,
   never parsed as markup. Money is integer minor units, formatted by string operations. */
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("report-data").textContent);
  const F = Object.fromEntries(data.fields.map((f, i) => [f, i]));
  const LF = Object.fromEntries(data.line_fields.map((f, i) => [f, i]));
  const SF = Object.fromEntries(data.step_fields.map((f, i) => [f, i]));
  const D = data.dictionaries;
  const rows = data.customers;
  const EXP = data.exponents;
  const SVG = "http://www.w3.org/2000/svg";

  // ------------------------------------------------------------------ formatting --
  function str(v) { return v === null || v === undefined ? "" : String(v); }
  function dict(name, row) { return D[name][row[F[name]]] || ""; }
  function currencyOf(row) { return dict("currency", row); }
  function group(digits) { return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ","); }

  function money(minor, currency, signed) {
    if (minor === null || minor === undefined) return "\u2014";
    const e = Object.prototype.hasOwnProperty.call(EXP, currency) ? EXP[currency] : 2;
    let digits = String(Math.abs(minor));
    let body;
    if (e > 0) {
      digits = digits.padStart(e + 1, "0");
      body = group(digits.slice(0, -e)) + "." + digits.slice(-e);
    } else {
      body = group(digits);
    }
    const sign = minor < 0 ? "-" : signed && minor > 0 ? "+" : "";
    return sign + body + " " + currency;
  }

  function percent(bp) {
    if (bp === null || bp === undefined) return "\u2014";
    const digits = String(Math.abs(bp)).padStart(3, "0");
    const sign = bp < 0 ? "-" : bp > 0 ? "+" : "";
    return sign + group(digits.slice(0, -2)) + "." + digits.slice(-2) + "%";
  }

  function tone(v) { return v === null || v === undefined ? "" : v > 0 ? "up" : v < 0 ? "down" : "flat"; }
  function label(cause) { return data.cause_labels[cause] || str(cause).replace(/_/g, " "); }

  function el(tag, attrs, content) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    append(node, content);
    return node;
  }

  function append(node, content) {
    if (content === null || content === undefined) return node;
    if (Array.isArray(content)) content.forEach((c) => append(node, c));
    else if (content instanceof Node) node.appendChild(content);
    else node.appendChild(document.createTextNode(String(content)));
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Detail rows carry repeated strings as indices into one shared table.
  function decode(list, coded) {
    for (const row of list) for (const j of coded) row[j] = row[j] < 0 ? null : data.strings[row[j]];
  }
  decode(data.lines, data.line_coded);
  decode(data.steps, data.step_coded);

  // ------------------------------------------------------------------ indexes -----
  const byId = new Map();
  const haystack = new Array(rows.length);
  rows.forEach((r, i) => {
    byId.set(r[F.id], i);
    haystack[i] = [str(r[F.id]), str(r[F.name]), dict("legacy_plan", r), dict("new_plan", r), dict("rule", r)]
      .join("\u0001").toLowerCase();
  });

  function indexBy(list, col) {
    const map = new Map();
    for (const item of list) {
      const key = item[col];
      if (!map.has(key)) map.set(key, []);
      map.get(key).push(item);
    }
    return map;
  }
  const linesBy = indexBy(data.lines, LF.customer_id);
  const stepsBy = indexBy(data.steps, SF.customer_id);

  // ------------------------------------------------------------------ table state -
  const state = { query: "", currency: "", segment: "", change: "", sort: "id", dir: 1, page: 0, size: 50 };
  let view = [];

  const $ = (id) => document.getElementById(id);
  const tbody = $("customer-rows");

  function keep(i) {
    const r = rows[i];
    if (state.currency && dict("currency", r) !== state.currency) return false;
    if (state.segment && dict("segment", r) !== state.segment) return false;
    const delta = r[F.delta];
    const mapped = dict("status", r) === "mapped";
    switch (state.change) {
      case "up": if (!(mapped && delta > 0)) return false; break;
      case "down": if (!(mapped && delta < 0)) return false; break;
      case "unchanged": if (!(mapped && delta === 0)) return false; break;
      case "unexplained": if (!r[F.unexplained]) return false; break;
      case "drift": if (!r[F.drift]) return false; break;
      case "unmapped": if (mapped) return false; break;
      case "detail": if (!r[F.detail]) return false; break;
      default: break;
    }
    return !state.query || haystack[i].includes(state.query);
  }

  function flagScore(r) {
    return (r[F.unexplained] ? 8 : 0) + (r[F.drift] ? 4 : 0) + (dict("status", r) !== "mapped" ? 2 : 0) + (r[F.detail] ? 1 : 0);
  }

  function comparator() {
    const key = state.sort;
    const dir = state.dir;
    const byIdThen = (a, b) => (rows[a][F.id] < rows[b][F.id] ? -1 : rows[a][F.id] > rows[b][F.id] ? 1 : 0);
    const nullsLast = (x, y) => (x === null ? (y === null ? 0 : 1) : y === null ? -1 : null);
    if (key === "id") return (a, b) => dir * byIdThen(a, b);
    if (key === "name") {
      return (a, b) => dir * (str(rows[a][F.name]).localeCompare(str(rows[b][F.name]))) || byIdThen(a, b);
    }
    if (["segment", "currency", "legacy_plan", "new_plan"].includes(key)) {
      // Dictionary codes follow the sorted order of the values.
      return (a, b) => dir * (rows[a][F[key]] - rows[b][F[key]]) || byIdThen(a, b);
    }
    if (key === "flags") return (a, b) => dir * (flagScore(rows[a]) - flagScore(rows[b])) || byIdThen(a, b);
    const money = ["legacy", "new", "delta"].includes(key);
    return (a, b) => {
      // Amounts of different currencies are not comparable: sort by currency first.
      if (money && rows[a][F.currency] !== rows[b][F.currency]) return rows[a][F.currency] - rows[b][F.currency];
      const x = rows[a][F[key]];
      const y = rows[b][F[key]];
      const n = nullsLast(x, y);
      if (n !== null) return n || byIdThen(a, b);
      return dir * (x - y) || byIdThen(a, b);
    };
  }

  function refresh() {
    view = [];
    for (let i = 0; i < rows.length; i++) if (keep(i)) view.push(i);
    view.sort(comparator());
    state.page = 0;
    render();
  }

  function flags(r) {
    const out = [];
    if (r[F.unexplained]) out.push(el("span", { class: "flag bad", title: "change no cause explains" }, "unexplained"));
    if (r[F.drift]) out.push(el("span", { class: "flag", title: "legacy invoices differ from the legacy catalog" }, "drift"));
    if (dict("status", r) !== "mapped") out.push(el("span", { class: "flag bad" }, dict("status", r) || "unmapped"));
    if (r[F.detail]) out.push(el("span", { class: "flag", title: "invoice lines embedded" }, "invoices"));
    return out;
  }

  function render() {
    const pages = Math.max(1, Math.ceil(view.length / state.size));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    const start = state.page * state.size;
    const slice = view.slice(start, start + state.size);
    const trs = slice.map((i) => {
      const r = rows[i];
      const cur = currencyOf(r);
      return el("tr", { "data-index": String(i), tabindex: "0" }, [
        el("td", { class: "plan" }, [el("span", { class: "cust-name" }, str(r[F.name])), el("span", { class: "sub mono" }, str(r[F.id]))]),
        el("td", {}, dict("segment", r).replace("_", " ")),
        el("td", {}, cur),
        el("td", { class: "plan mono small" }, [dict("legacy_plan", r), el("span", { class: "sub" }, "\u2192 " + (dict("new_plan", r) || "unmapped"))]),
        el("td", { class: "num" }, money(r[F.legacy], cur)),
        el("td", { class: "num" }, money(r[F.new], cur)),
        el("td", { class: "num " + tone(r[F.delta]) }, money(r[F.delta], cur, true)),
        el("td", { class: "num " + tone(r[F.change_bp]) }, percent(r[F.change_bp])),
        el("td", {}, flags(r)),
      ]);
    });
    if (!trs.length) trs.push(el("tr", {}, el("td", { colspan: "9", class: "muted" }, "No customer matches.")));
    tbody.replaceChildren(...trs);
    const first = view.length ? start + 1 : 0;
    const last = Math.min(view.length, start + state.size);
    $("page-status").textContent =
      "Customers " + group(String(first)) + "\u2013" + group(String(last)) + " of " + group(String(view.length)) +
      " \u00b7 page " + group(String(state.page + 1)) + " of " + group(String(pages));
    $("page-first").disabled = $("page-prev").disabled = state.page === 0;
    $("page-next").disabled = $("page-last").disabled = state.page >= pages - 1;
    document.querySelectorAll("#customer-table th[data-sort]").forEach((th) => {
      if (th.dataset.sort === state.sort) th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    });
  }

  // ------------------------------------------------------------------ detail ------
  function fact(name, value, cls) {
    return el("div", {}, [el("dt", {}, name), el("dd", cls ? { class: cls } : {}, value)]);
  }

  function waterfallChart(steps, cur) {
    const W = 780, H = 250, top = 26, plot = 150, left = 8;
    const bars = [];
    let running = 0;
    for (const s of steps) {
      const cause = s[SF.cause];
      const amount = s[SF.amount] || 0;
      if (cause === "legacy_total" || cause === "new_total") {
        bars.push({ cause, amount, from: 0, to: amount, total: true });
        running = amount;
      } else {
        bars.push({ cause, amount, from: running, to: running + amount, total: false });
        running += amount;
      }
    }
    const ends = bars.flatMap((b) => [b.from, b.to]);
    const hi = Math.max(0, ...ends);
    let lo = Math.min(0, ...ends);
    // Small changes on large totals: start the axis near the lowest level so the steps
    // stay visible, and say so on the chart.
    const levels = bars.filter((b) => !b.total).flatMap((b) => [b.from, b.to]).concat(bars.filter((b) => b.total).map((b) => b.to));
    const floor = Math.min(...levels);
    const truncated = lo === 0 && floor > 0 && hi - floor < hi / 4;
    if (truncated) lo = Math.max(0, floor - (hi - floor));
    const base = truncated ? lo : 0;
    const span = hi - lo || 1;
    const y = (v) => top + ((hi - v) * plot) / span;
    const slot = Math.max(60, Math.floor((W - 2 * left) / Math.max(1, bars.length)));
    const width = Math.max(W, slot * bars.length + 2 * left);
    const root = svg("svg", { viewBox: "0 0 " + width + " " + H, class: "chart waterfall", role: "img", "aria-label": "Waterfall from the legacy total to the new total" });
    root.appendChild(svg("line", { x1: left, x2: width - left, y1: y(base), y2: y(base), class: "grid" }));
    bars.forEach((b, i) => {
      const x = left + i * slot + 8;
      const w = slot - 16;
      const from = b.total ? base : b.from;
      const y1 = y(Math.max(from, b.to));
      const h = Math.max(1, Math.abs(y(from) - y(b.to)));
      const fill = b.total ? (b.cause === "legacy_total" ? "#8da2b8" : "#1f6f8b") : b.amount >= 0 ? "#c2711b" : "#2f6db5";
      const rect = svg("rect", { x, y: y1, width: w, height: h, fill });
      rect.appendChild(svg("title", {}, label(b.cause) + ": " + money(b.amount, cur, !b.total)));
      root.appendChild(rect);
      if (i + 1 < bars.length) {
        root.appendChild(svg("line", { x1: x + w, x2: x + slot, y1: y(b.to), y2: y(b.to), stroke: "#9aa6b2", "stroke-dasharray": "3 2" }));
      }
      root.appendChild(svg("text", { x: x + w / 2, y: y1 - 5, "text-anchor": "middle", class: "value" }, money(b.amount, cur, !b.total).replace(" " + cur, "")));
      root.appendChild(svg("text", { x: x + w / 2, y: top + plot + 18, "text-anchor": "middle" }, label(b.cause)));
    });
    root.appendChild(svg("text", { x: left, y: H - 8 }, "amounts in " + cur +
      (truncated ? "; the axis starts at " + money(Math.round(lo), cur) + ", not at zero" : "")));
    return root;
  }

  function sideBlock(title, lines, cur) {
    if (!lines.length) return el("div", { class: "side" }, [el("h5", {}, title), el("p", { class: "empty" }, "no invoice")]);
    let total = 0;
    const trs = lines.map((l) => {
      total += l[LF.amount] || 0;
      const what = [el("div", {}, str(l[LF.description]) || str(l[LF.price_id]) || str(l[LF.kind]))];
      const meta = [str(l[LF.kind]), str(l[LF.price_id])].filter(Boolean).join(" \u00b7 ");
      what.push(el("div", { class: "muted small mono" }, meta));
      if (l[LF.explain]) what.push(el("div", { class: "muted small" }, str(l[LF.explain])));
      const qty = l[LF.quantity] === null ? "" : "\u00d7" + group(String(l[LF.quantity]));
      return el("tr", {}, [el("td", {}, what), el("td", { class: "num" }, qty), el("td", { class: "num" }, money(l[LF.amount], cur))]);
    });
    trs.push(el("tr", { class: "total" }, [el("td", {}, "Total"), el("td", {}, ""), el("td", { class: "num" }, money(total, cur))]));
    return el("div", { class: "side" }, [el("h5", {}, title), el("table", {}, el("tbody", {}, trs))]);
  }

  function invoices(lines, cur) {
    const byInvoice = indexBy(lines, LF.invoice_key);
    const sum = (xs) => xs.reduce((t, l) => t + (l[LF.amount] || 0), 0);
    const out = [];
    let opened = false;
    for (const [key, ls] of byInvoice) {
      const sides = { legacy: [], new: [], actual: [] };
      ls.forEach((l) => { (sides[l[LF.side]] || (sides[l[LF.side]] = [])).push(l); });
      const legacy = sum(sides.legacy);
      const change = sum(sides.new) - legacy;
      const drift = sides.actual.length ? sum(sides.actual) - legacy : 0;
      const head = [
        "Period from " + str(ls[0][LF.period]) + " ",
        el("span", { class: "muted mono" }, str(ls[0][LF.subscription_id])),
        " \u00b7 legacy " + money(legacy, cur) + " \u2192 new " + money(sum(sides.new), cur) + " ",
        el("strong", { class: tone(change) }, "(" + money(change, cur, true) + ")"),
      ];
      if (sides.actual.length) head.push(" \u00b7 issued " + money(sum(sides.actual), cur) + (drift ? " (drift " + money(drift, cur, true) + ")" : ""));
      // Open the first invoice, and any whose issued amount differs from the recomputed one.
      const open = !opened || drift !== 0;
      opened = true;
      const block = el("details", { class: "invoice", "data-invoice": str(key) }, [
        el("summary", {}, head),
        el("div", { class: "sides" }, [
          sideBlock("Legacy recomputed", sides.legacy, cur),
          sideBlock("New model", sides.new, cur),
          sideBlock("Actual legacy (issued)", sides.actual, cur),
        ]),
      ]);
      block.open = open;
      out.push(block);
    }
    return out;
  }

  function openDetail(i) {
    const r = rows[i];
    if (!r) return;
    const id = str(r[F.id]);
    const cur = currencyOf(r);
    $("detail-name").textContent = str(r[F.name]) || id;
    $("detail-id").textContent = id;
    $("detail-facts").replaceChildren(
      fact("Segment", dict("segment", r).replace("_", " ")),
      fact("Country", dict("country", r)),
      fact("Legacy plan", dict("legacy_plan", r)),
      fact("New plan", dict("new_plan", r) || "\u2014 (unmapped)"),
      fact("Rule", dict("rule", r) || "\u2014"),
      fact("Invoices compared", group(str(r[F.invoices]))),
      fact("Legacy recomputed", money(r[F.legacy], cur)),
      fact("New model", money(r[F.new], cur)),
      fact("Change", money(r[F.delta], cur, true) + " (" + percent(r[F.change_bp]) + ")", tone(r[F.delta])),
      fact("Unexplained", money(r[F.unexplained], cur, true), r[F.unexplained] ? "up" : ""),
      fact("Legacy drift (A)", money(r[F.drift], cur, true)),
      fact("Status", dict("status", r)),
    );
    const body = [];
    const steps = stepsBy.get(id) || [];
    const lines = linesBy.get(id) || [];
    if (steps.length) {
      body.push(el("h4", {}, "Waterfall: legacy total to new total"));
      body.push(waterfallChart(steps, cur));
      let running = 0;
      body.push(el("table", { class: "narrow waterfall-table" }, [
        el("thead", {}, el("tr", {}, [el("th", {}, "Step"), el("th", { class: "num" }, "Amount"), el("th", { class: "num" }, "Running total"), el("th", {}, "Explanation")])),
        el("tbody", {}, steps.map((s) => {
          const cause = s[SF.cause];
          const total = cause === "legacy_total" || cause === "new_total";
          running = total ? s[SF.amount] : running + s[SF.amount];
          return el("tr", {}, [
            el("td", {}, label(cause)),
            el("td", { class: "num " + (total ? "" : tone(s[SF.amount])) }, money(s[SF.amount], cur, !total)),
            el("td", { class: "num" }, money(running, cur)),
            el("td", { class: "wrap" }, str(s[SF.explanation])),
          ]);
        })),
      ]));
    }
    if (lines.length) {
      body.push(el("h4", {}, "Invoices side by side"));
      body.push(...invoices(lines, cur));
      const subs = [...new Set(lines.map((l) => l[LF.subscription_id]))].filter((s) => data.diffs[s]);
      subs.forEach((s) => {
        body.push(el("details", {}, [
          el("summary", {}, "Subscription changes, legacy \u2192 new: " + s),
          el("pre", { class: "diff" }, JSON.stringify(data.diffs[s], null, 2)),
        ]));
      });
    }
    if (!steps.length && !lines.length) {
      body.push(el("p", { class: "note" }, [
        "Invoice lines and the waterfall are embedded for " + group(String(data.detail_customers)) +
          " customers (top movers, exceptions and a sample) to keep this file small; this customer's findings are in ",
        el("a", { href: data.findings_href }, data.findings_href),
        ".",
      ]));
    }
    $("detail-body").replaceChildren(...body);
    document.querySelectorAll("#customer-rows tr.selected").forEach((tr) => tr.classList.remove("selected"));
    const tr = tbody.querySelector('tr[data-index="' + i + '"]');
    if (tr) tr.classList.add("selected");
    const panel = $("detail");
    panel.hidden = false;
    panel.dataset.customer = id;
    panel.focus({ preventScroll: true });
    panel.scrollIntoView({ block: "start" });
  }

  // ------------------------------------------------------------------ wiring ------
  function options(select, values) {
    values.filter(Boolean).forEach((v) => select.appendChild(el("option", { value: v }, v.replace("_", " "))));
  }
  options($("filter-currency"), D.currency);
  options($("filter-segment"), D.segment);

  let timer = 0;
  $("search").addEventListener("input", (e) => {
    clearTimeout(timer);
    const value = e.target.value.trim().toLowerCase();
    timer = setTimeout(() => { state.query = value; refresh(); }, 120);
  });
  [["filter-currency", "currency"], ["filter-segment", "segment"], ["filter-change", "change"]].forEach(([id, key]) => {
    $(id).addEventListener("change", (e) => { state[key] = e.target.value; refresh(); });
  });
  $("page-size").addEventListener("change", (e) => { state.size = parseInt(e.target.value, 10) || 50; state.page = 0; render(); });
  $("page-first").addEventListener("click", () => { state.page = 0; render(); });
  $("page-prev").addEventListener("click", () => { state.page -= 1; render(); });
  $("page-next").addEventListener("click", () => { state.page += 1; render(); });
  $("page-last").addEventListener("click", () => { state.page = Number.MAX_SAFE_INTEGER; render(); });
  document.querySelectorAll("#customer-table th[data-sort] button").forEach((button) => {
    button.addEventListener("click", () => {
      const key = button.parentElement.dataset.sort;
      state.dir = state.sort === key ? -state.dir : key === "id" || key === "segment" ? 1 : -1;
      state.sort = key;
      refresh();
    });
  });
  tbody.addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-index]");
    if (tr) openDetail(parseInt(tr.dataset.index, 10));
  });
  tbody.addEventListener("keydown", (e) => {
    const tr = e.target.closest("tr[data-index]");
    if (tr && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); openDetail(parseInt(tr.dataset.index, 10)); }
  });
  document.addEventListener("click", (e) => {
    const link = e.target.closest("a[data-customer]");
    if (!link) return;
    const i = byId.get(link.getAttribute("data-customer"));
    if (i !== undefined) { e.preventDefault(); openDetail(i); }
  });
  $("detail-close").addEventListener("click", () => { $("detail").hidden = true; });
  window.addEventListener("beforeprint", () => {
    document.querySelectorAll("details.print-open").forEach((d) => { d.open = true; });
  });

  refresh();
  document.documentElement.dataset.ready = "true";
})();
