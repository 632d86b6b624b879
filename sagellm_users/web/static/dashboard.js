/* Drawing shared by the live page (live.js) and the HTML report (report.js).
 *
 * Plain browser JavaScript, no build step: the HTML report inlines this file, so it must
 * work from a file:// page with nothing else loaded but uPlot. Data from the run (model
 * names, error messages, options) is only ever set as text, never parsed as HTML.
 */
"use strict";

const SageDash = (() => {
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2",
                  "#ca8a04", "#db2777", "#4b5563", "#65a30d"];
  const PRINT_WIDTH = 680;
  const charts = [];  // every live chart, for resizing

  /* -- DOM --------------------------------------------------------------------------- */
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children || []) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function section(id, title, note) {
    const box = el("section", {id: id, className: "panel"}, [el("h2", {text: title})]);
    if (note) box.append(el("p", {className: "note", text: note}));
    return box;
  }

  function noData(text) {
    return el("p", {className: "no-data", text: text || "no data yet"});
  }

  /* -- numbers ----------------------------------------------------------------------- */
  function num(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "-";
    const d = digits === undefined ? (Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2)
                                   : digits;
    return Number(value).toLocaleString("en-US", {minimumFractionDigits: d,
                                                   maximumFractionDigits: d});
  }
  function pct(value) {
    return value === null || value === undefined ? "-" : num(value * 100, 2) + "%";
  }
  function pick(summary, label) {
    if (!summary) return null;
    if (label === "mean") return summary.mean;
    const value = summary.percentiles ? summary.percentiles[label] : undefined;
    if (value !== undefined) return value;
    return label === "p50" ? summary.median : null;
  }

  /* -- tables ------------------------------------------------------------------------ */
  function table(columns, rows, attrs) {
    const head = el("tr", {}, columns.map((c) => el("th", {className: c.num ? "num" : null,
                                                          text: c.title})));
    const body = rows.map((row) => el("tr", {className: row._className || null},
      columns.map((c) => {
        const value = c.value(row);
        const cell = el("td", {className: c.num ? "num" : null});
        if (value instanceof Node) cell.append(value); else cell.textContent = value;
        return cell;
      })));
    return el("table", attrs || {}, [el("thead", {}, [head]), el("tbody", {}, body)]);
  }

  function keyValues(pairs) {
    return el("table", {className: "kv"}, [el("tbody", {}, pairs.map(([k, v]) =>
      el("tr", {}, [el("th", {text: k}), el("td", {text: v})])))]);
  }

  function blockLabel(block) {
    if (block.user && block.name) return block.user + " " + block.name;
    return block.name || "all";
  }

  /** The summary table: total, each request name, each User class and name. */
  function summaryTable(report, blocks) {
    const rows = blocks || [
      Object.assign({_label: "all", _className: "total"}, report.total),
      ...(report.by_name || []).map((b) => Object.assign({_label: b.name}, b)),
      ...(report.by_user || []).map((b) => Object.assign({_label: blockLabel(b)}, b)),
    ];
    return table([
      {title: "scope", value: (r) => r._label || blockLabel(r)},
      {title: "requests", num: true, value: (r) => num(r.requests, 0)},
      {title: "completed", num: true, value: (r) => num(r.completed, 0)},
      {title: "failed", num: true, value: (r) => num(r.failed, 0)},
      {title: "error rate", num: true, value: (r) => pct(r.error_rate)},
      {title: "req/s", num: true, value: (r) => num(r.request_throughput)},
      {title: "output tok/s", num: true, value: (r) => num(r.output_throughput)},
      {title: "TTFT p50", num: true, value: (r) => num(pick(r.ttft_ms, "p50"))},
      {title: "TTFT p99", num: true, value: (r) => num(pick(r.ttft_ms, "p99"))},
      {title: "ITL p50", num: true, value: (r) => num(pick(r.itl_ms, "p50"))},
      {title: "ITL p99", num: true, value: (r) => num(pick(r.itl_ms, "p99"))},
      {title: "TPOT p50", num: true, value: (r) => num(pick(r.tpot_ms, "p50"))},
      {title: "E2E p50", num: true, value: (r) => num(pick(r.e2el_ms, "p50"))},
      {title: "E2E p99", num: true, value: (r) => num(pick(r.e2el_ms, "p99"))},
    ], rows, {className: "data"});
  }

  function badge(passed) {
    return el("span", {className: passed ? "badge pass" : "badge fail",
                       text: passed ? "PASS" : "FAIL"});
  }

  function sloTable(report) {
    const box = table([
      {title: "objective", value: (r) => r.slo},
      {title: "measured", num: true, value: (r) => num(r.value, 3)},
      {title: "verdict", value: (r) => badge(r.passed)},
      {title: "note", value: (r) => r.lost_early ? "stopped early: " + r.lost_early : ""},
    ], report.slos || [], {className: "data"});
    const all = (report.slos || []).every((s) => s.passed);
    const summary = el("p", {className: all ? "verdict pass" : "verdict fail",
                             text: all ? "all objectives met" : "SLO FAILED"});
    const parts = [summary, box];
    if (report.early_stop) {
      parts.push(el("p", {className: "note",
                          text: "stopped early at " + report.early_stop.at + " (--slo-early-stop)"}));
    }
    return parts;
  }

  function errorTable(block) {
    const failures = (block && block.failures) || [];
    if (!failures.length) return noData("no failures");
    return table([
      {title: "failure class", value: (r) => r.error_class},
      {title: "count", num: true, value: (r) => num(r.count, 0)},
      {title: "example", value: (r) => r.example},
    ], failures, {className: "data errors"});
  }

  function serverTables(servers) {
    return servers.map((s) => {
      const hist = (name) => s[name] || null;
      const rows = ["ttft_ms", "itl_ms", "tpot_ms", "e2el_ms", "queue_ms"]
        .filter((m) => hist(m))
        .map((m) => ({metric: m, h: hist(m)}));
      const gauge = (g) => g ? num(g.last) + " now, peak " + num(g.peak) : "-";
      return el("div", {className: "server"}, [
        el("h3", {text: s.host + (s.version ? " (vLLM " + s.version + ")" : "")}),
        keyValues([
          ["requests", num(s.requests, 0)],
          ["prompt / generation tokens", num(s.prompt_tokens, 0) + " / " +
                                          num(s.generation_tokens, 0)],
          ["preemptions", num(s.preemptions, 0)],
          ["running", gauge(s.running)],
          ["waiting", gauge(s.waiting)],
          ["KV cache usage", s.kv_cache_usage ? pct(s.kv_cache_usage.last) + " now, peak " +
                                                pct(s.kv_cache_usage.peak) : "-"],
          ["scrapes", num(s.scrapes, 0) + " (" + num(s.failed_scrapes, 0) + " failed)"],
        ]),
        rows.length ? table([
          {title: "server-side (ms)", value: (r) => r.metric.replace("_ms", "").toUpperCase()},
          {title: "count", num: true, value: (r) => num(r.h.count, 0)},
          {title: "mean", num: true, value: (r) => num(r.h.mean)},
          ...["p50", "p90", "p99"].map((p) => ({title: p, num: true,
                                                value: (r) => num(r.h.percentiles[p])})),
        ], rows, {className: "data"}) : noData("no histograms scraped"),
      ]);
    });
  }

  /* -- charts ------------------------------------------------------------------------ */
  function chartWidth(box) {
    if (window.matchMedia && window.matchMedia("print").matches) return PRINT_WIDTH;
    return Math.max(320, Math.floor((box.clientWidth || 640) - 8));
  }

  function countPoints(data) {
    let n = 0;
    for (let i = 0; i < data[0].length; i++) {
      for (let s = 1; s < data.length; s++) {
        const v = data[s][i];
        if (v !== null && v !== undefined && !Number.isNaN(v)) { n++; break; }
      }
    }
    return n;
  }

  /** A chart in a box of its own: ``spec`` = {title, series: [{label, scale?}], time,
   *  bars, axes: {y: label, y2: label}, xLabel}. Returns {box, set(data)}. */
  function chart(id, spec) {
    const box = el("div", {className: "chart", "data-chart": id, "data-points": "0"}, [
      el("h3", {text: spec.title}),
    ]);
    const holder = el("div", {className: "plot"});
    const empty = noData(spec.empty || "no data yet");
    box.append(holder, empty);
    let plot = null;
    const series = [{label: spec.xLabel || (spec.time ? "time" : "")}].concat(
      spec.series.map((s, i) => {
        const color = s.color || COLORS[i % COLORS.length];
        const out = {label: s.label, stroke: color, width: 1.5, scale: s.scale || "y",
                     spanGaps: !!spec.spanGaps, points: {show: false}};
        if (spec.bars) {
          out.fill = color + "99";
          out.paths = uPlot.paths.bars({size: [0.92, Infinity]});
        }
        return out;
      }));
    const axes = [{label: spec.xLabel || null}, {scale: "y", label: spec.axes && spec.axes.y}];
    const scales = {x: {time: !!spec.time}, y: {range: (u, lo, hi) => [0, hi > 0 ? hi * 1.08 : 1]}};
    if (spec.series.some((s) => s.scale === "y2")) {
      axes.push({scale: "y2", side: 1, grid: {show: false}, label: spec.axes && spec.axes.y2});
      scales.y2 = {range: (u, lo, hi) => [0, hi > 0 ? hi * 1.08 : 1]};
    }
    if (spec.xRange) scales.x.range = spec.xRange;
    function make(data) {
      plot = new uPlot({
        width: chartWidth(box), height: spec.height || 220, series: series, axes: axes,
        scales: scales, legend: {live: false}, cursor: {drag: {x: true, y: false}},
      }, data, holder);
      charts.push({plot: plot, box: box});
    }
    function set(data) {
      const points = countPoints(data);
      box.dataset.points = String(points);
      empty.style.display = points ? "none" : "";
      holder.style.display = points ? "" : "none";
      if (!points) return;
      if (plot === null) make(data); else plot.setData(data);
    }
    return {box: box, set: set};
  }

  /** Destroy the charts no longer in the page (the live page redraws some panels). */
  function prune() {
    for (let i = charts.length - 1; i >= 0; i--) {
      if (!document.body.contains(charts[i].box)) {
        charts[i].plot.destroy();
        charts.splice(i, 1);
      }
    }
  }

  function resizeAll() {
    for (const c of charts) {
      const width = chartWidth(c.box);
      if (Math.abs(width - c.plot.width) > 2) c.plot.setSize({width: width, height: c.plot.height});
    }
  }
  window.addEventListener("resize", resizeAll);
  if (window.matchMedia) {
    const media = window.matchMedia("print");
    if (media.addEventListener) media.addEventListener("change", resizeAll);
  }
  window.addEventListener("beforeprint", resizeAll);
  window.addEventListener("afterprint", resizeAll);

  /* -- time series ------------------------------------------------------------------- */
  const TIME_SERIES = [
    {id: "ts-throughput", title: "Throughput", axes: {y: "output tokens/s", y2: "requests/s"},
     series: [{label: "output tok/s", key: "output_tok_s"},
              {label: "req/s", key: "req_s", scale: "y2"}]},
    {id: "ts-ttft", title: "Time to first token (ms)", axes: {y: "ms"},
     series: [{label: "p50", key: "ttft_p50_ms"}, {label: "p90", key: "ttft_p90_ms"},
              {label: "p99", key: "ttft_p99_ms"}]},
    {id: "ts-itl", title: "Inter-token latency and TPOT (ms)", axes: {y: "ms"},
     series: [{label: "ITL p50", key: "itl_p50_ms"}, {label: "ITL p99", key: "itl_p99_ms"},
              {label: "TPOT p50", key: "tpot_p50_ms"}]},
    {id: "ts-e2el", title: "End-to-end latency (ms)", axes: {y: "ms"},
     series: [{label: "p50", key: "e2el_p50_ms"}, {label: "p99", key: "e2el_p99_ms"}]},
    {id: "ts-users", title: "Users and requests in flight", axes: {y: "count"},
     series: [{label: "users", key: "users"}, {label: "in flight", key: "in_flight"}]},
    {id: "ts-errors", title: "Errors per second, by class", axes: {y: "errors/s"},
     errors: true, series: []},
    {id: "ts-lag", title: "Load generator's event-loop lag p99 (ms)", axes: {y: "ms"},
     series: [{label: "lag p99", key: "lag_p99_ms"}]},
  ];

  function errorClasses(points) {
    const classes = new Set();
    for (const p of points) for (const k of Object.keys(p.errors || {})) classes.add(k);
    return [...classes].sort();
  }

  /** Time charts over ``points``; ``set(points, width)`` redraws them. Errors get one
   *  series per class seen (the chart is rebuilt when a new class appears). */
  function timeSeries(container) {
    const made = {};
    let classes = [];
    function build(spec) {
      const series = spec.errors
        ? (classes.length ? classes : ["errors"]).map((c) => ({label: c, key: c}))
        : spec.series;
      const made1 = chart(spec.id, {title: spec.title, series: series, axes: spec.axes,
                                    time: true, empty: spec.errors ? "no errors" : null});
      made1.spec = Object.assign({}, spec, {series: series});
      return made1;
    }
    for (const spec of TIME_SERIES) {
      made[spec.id] = build(spec);
      container.append(made[spec.id].box);
    }
    function set(points, width) {
      const xs = points.map((p) => p.t);
      const seen = errorClasses(points);
      if (seen.join("\u0000") !== classes.join("\u0000") && seen.length) {
        classes = seen;
        const old = made["ts-errors"];
        made["ts-errors"] = build(TIME_SERIES.find((s) => s.id === "ts-errors"));
        old.box.replaceWith(made["ts-errors"].box);
      }
      for (const spec of TIME_SERIES) {
        const c = made[spec.id];
        const ys = c.spec.series.map((s) => points.map((p) => {
          if (spec.errors) {
            const n = (p.errors || {})[s.key];
            return n === undefined ? (p.requests || p.users !== null ? 0 : null) : n / width;
          }
          const v = p[s.key];
          return v === undefined ? null : v;
        }));
        c.set([xs, ...ys]);
      }
    }
    return {set: set};
  }

  /* -- distributions ----------------------------------------------------------------- */
  const METRICS = {ttft_ms: "TTFT", itl_ms: "ITL", tpot_ms: "TPOT", e2el_ms: "E2E"};

  function histogram(id, plot, title) {
    const c = chart(id, {title: title, bars: true, series: [{label: "requests"}],
                         axes: {y: "count"}, xLabel: "ms"});
    const centers = plot.bins.map((b) => (b[0] + b[1]) / 2);
    c.set([centers, plot.bins.map((b) => b[2])]);
    return c.box;
  }

  /** CDFs of several distributions on one chart (x values joined, gaps spanned). */
  function cdfChart(id, title, entries) {
    // A far tail (one stalled request) would squeeze every curve to the left edge: past 3x
    // the p99.9 the axis stops at the p99.9, and the title says so.
    const at = (plot, q) => (plot.cdf.find((p) => p[1] >= q) || plot.cdf[plot.cdf.length - 1])[0];
    const p999 = Math.max(0, ...entries.map((e) => at(e.plot, 0.999)));
    const top = Math.max(0, ...entries.map((e) => e.plot.cdf[e.plot.cdf.length - 1][0]));
    const cut = entries.length && top > 3 * p999 && p999 > 0;
    const c = chart(id, {title: title + (cut ? " (to p99.9)" : ""), spanGaps: true, xLabel: "ms",
                         axes: {y: "fraction"}, series: entries.map((e) => ({label: e.label})),
                         xRange: cut ? (u, lo) => [lo, p999 * 1.05] : null});
    if (entries.length) {
      const joined = uPlot.join(entries.map((e) => [e.plot.cdf.map((p) => p[0]),
                                                    e.plot.cdf.map((p) => p[1])]));
      c.set(joined);
    }
    return c.box;
  }

  function distributions(container, plots, prefix) {
    const grid = el("div", {className: "grid"});
    for (const metric of Object.keys(METRICS)) {
      const mine = plots.filter((p) => p.metric === metric);
      const all = mine.find((p) => p.scope === "all");
      if (!all) continue;
      grid.append(histogram((prefix || "") + "hist-" + metric, all,
                            METRICS[metric] + " histogram (" + num(all.count, 0) + " samples" +
                            (all.above ? ", " + all.above + " beyond the last bin" : "") + ")"));
      const scopes = mine.length > 1 ? mine.filter((p) => p.scope !== "all") : mine;
      grid.append(cdfChart((prefix || "") + "cdf-" + metric, METRICS[metric] + " CDF",
                           scopes.map((p) => ({label: p.scope, plot: p}))));
    }
    if (!grid.children.length) container.append(noData("no completed requests"));
    else container.append(grid);
  }

  return {el, section, noData, num, pct, pick, table, keyValues, summaryTable, sloTable,
          errorTable, serverTables, chart, timeSeries, distributions, cdfChart, METRICS,
          COLORS, blockLabel, badge, prune};
})();
