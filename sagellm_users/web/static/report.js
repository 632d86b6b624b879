/* The HTML report: draws the reports embedded in the page (one, or several compared). */
"use strict";

(() => {
  const D = SageDash;
  const el = D.el;
  const data = JSON.parse(document.getElementById("sagellm-data").textContent);
  const main = document.getElementById("report");

  /* -- one run ----------------------------------------------------------------------- */
  function config(report, suffix) {
    const box = D.section("config" + suffix, "Run");
    const total = report.total || {};
    const window_ = report.window || {};
    const tool = report.tool || {};
    box.append(D.keyValues([
      ["host", report.run.host || "embedded mock server"],
      ["models", (total.models || []).join(", ") || "-"],
      ["backends", (total.backends || []).join(", ") || "-"],
      ["User classes", (report.run.user_classes || []).join(", ") || "-"],
      ["window", D.num(window_.seconds) + " s, " + (window_.start || "-") + " to " +
                 (window_.end || "-")],
      ["warm-up", (window_.warmup || "0") + ", " + D.num(window_.excluded_requests || 0, 0) +
                  " requests excluded"],
      ["report created", report.created],
      ["tool", tool.name + " " + tool.version + ", Locust " + tool.locust + ", Python " +
               tool.python + ", " + tool.platform],
    ]));
    const options = Object.entries(report.run.options || {})
      .filter(([, v]) => v !== null && v !== "" && !(Array.isArray(v) && !v.length));
    if (options.length) {
      const details = el("details", {}, [el("summary", {text: "options (" + options.length + ")"})]);
      details.open = true;
      details.append(D.keyValues(options.map(([k, v]) =>
        [k, typeof v === "object" ? JSON.stringify(v) : String(v)])));
      box.append(details);
    }
    return box;
  }

  function workload(report, suffix) {
    const parts = [];
    if (report.workload) {
      parts.push(el("h3", {text: "Workload"}), D.keyValues(Object.entries(report.workload)
        .map(([k, v]) => [k, typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)])));
    }
    const a = report.arrivals;
    if (a) {
      parts.push(el("h3", {text: "Open-loop arrivals"}), D.keyValues(Object.entries(a)
        .filter(([, v]) => typeof v !== "object" || v === null)
        .map(([k, v]) => [k, typeof v === "number" ? D.num(v, 3) : String(v)])));
    }
    if (report.turns && report.turns.length) {
      parts.push(el("h3", {text: "By conversation turn"}), D.table([
        {title: "turn", value: (r) => String(r.turn)},
        {title: "requests", num: true, value: (r) => D.num(r.requests, 0)},
        {title: "TTFT p50", num: true, value: (r) => D.num(D.pick(r.ttft_ms, "p50"))},
        {title: "input tokens (mean)", num: true, value: (r) => D.num(r.input_tokens.mean)},
        {title: "E2E p50", num: true, value: (r) => D.num(D.pick(r.e2el_ms, "p50"))},
      ], report.turns, {className: "data"}));
    }
    const sweep = report.sweep;
    if (sweep && sweep.stages) {
      parts.push(el("h3", {text: "Sweep (capacity " + (sweep.capacity ?? "none") + ")"}),
                 D.table(Object.keys(sweep.stages[0] || {})
                   .filter((k) => typeof sweep.stages[0][k] !== "object")
                   .map((k) => ({title: k, value: (r) => typeof r[k] === "number" ?
                                                         D.num(r[k]) : String(r[k])})),
                 sweep.stages, {className: "data"}));
    }
    if (!parts.length) return null;
    const box = D.section("workload" + suffix, "Workload and load model");
    box.append(...parts);
    return box;
  }

  function backends(report, suffix) {
    const users = new Map();
    for (const b of report.by_user || []) {
      if (!users.has(b.user)) users.set(b.user, []);
      users.get(b.user).push(b);
    }
    if (users.size < 2) return null;
    const box = D.section("backends" + suffix, "Backends side by side");
    box.append(D.summaryTable(report, (report.by_user || []).map((b) =>
      Object.assign({_label: D.blockLabel(b)}, b))));
    return box;
  }

  function single(report, suffix) {
    suffix = suffix || "";
    const id = (name) => name + suffix;
    const parts = [config(report, suffix)];
    const summary = D.section(id("summary"), "Summary");
    summary.append(D.summaryTable(report));
    const p = (report.total || {}).token_provenance;
    if (p) {
      summary.append(el("p", {className: "note", text:
        "Output tokens from server usage for " + p.output_from_usage + " requests, estimated for " +
        p.output_estimated + "; input from usage for " + p.input_from_usage + ", estimated for " +
        p.input_estimated + "."}));
    }
    parts.push(summary);
    if (report.slos && report.slos.length) {
      const slos = D.section(id("slos"), "Service-level objectives");
      slos.append(...D.sloTable(report));
      parts.push(slos);
    }
    const dists = D.section(id("distributions"), "Distributions",
                            "Histograms of the whole run; CDFs per User class when several ran.");
    D.distributions(dists, report.distributions || [], suffix ? "r" + suffix + "-" : "");
    parts.push(dists);
    const series = D.section(id("timeseries"), "Over time",
                             "Each point holds the requests that ended in it.");
    const timeline = report.timeline;
    if (timeline && timeline.points && timeline.points.length) {
      const grid = el("div", {className: "grid"});
      series.append(grid);
      D.timeSeries(grid).set(timeline.points, timeline.width_s || 1);
      if (timeline.merged_points) {
        series.append(el("p", {className: "note", text: "Points were merged in pairs to " +
          "bound memory (" + timeline.width_s + " s each); their percentiles are " +
          "count-weighted means."}));
      }
    } else {
      series.append(D.noData("no timeline in this report"));
    }
    parts.push(series);
    const b = backends(report, suffix);
    if (b) parts.push(b);
    const errors = D.section(id("errors"), "Failures");
    errors.append(D.errorTable(report.total));
    parts.push(errors);
    if (report.server && report.server.length) {
      const server = D.section(id("server"), "Server side (/metrics)");
      server.append(...D.serverTables(report.server));
      parts.push(server);
    }
    const w = workload(report, suffix);
    if (w) parts.push(w);
    if (report.client) {
      const c = report.client;
      const client = D.section(id("client"), "Load generator");
      client.append(el("p", {className: c.trustworthy ? "verdict pass" : "verdict fail",
                             text: c.trustworthy ? "timings trustworthy" :
                                                   "TIMINGS NOT TRUSTWORTHY"}));
      for (const w1 of c.warnings || []) client.append(el("p", {className: "note", text: w1}));
      parts.push(client);
    }
    return parts;
  }

  /* -- several runs ------------------------------------------------------------------ */
  const LOWER = "lower", HIGHER = "higher";
  const COMPARED = [
    ["requests", (r) => r.total.requests, null, 0],
    ["error rate", (r) => r.total.error_rate, LOWER, "pct"],
    ["requests/s", (r) => r.total.request_throughput, HIGHER],
    ["output tokens/s", (r) => r.total.output_throughput, HIGHER],
    ["total tokens/s", (r) => r.total.total_token_throughput, HIGHER],
    ["TTFT mean (ms)", (r) => D.pick(r.total.ttft_ms, "mean"), LOWER],
    ["TTFT p50 (ms)", (r) => D.pick(r.total.ttft_ms, "p50"), LOWER],
    ["TTFT p90 (ms)", (r) => D.pick(r.total.ttft_ms, "p90"), LOWER],
    ["TTFT p99 (ms)", (r) => D.pick(r.total.ttft_ms, "p99"), LOWER],
    ["ITL p50 (ms)", (r) => D.pick(r.total.itl_ms, "p50"), LOWER],
    ["ITL p99 (ms)", (r) => D.pick(r.total.itl_ms, "p99"), LOWER],
    ["TPOT p50 (ms)", (r) => D.pick(r.total.tpot_ms, "p50"), LOWER],
    ["TPOT p99 (ms)", (r) => D.pick(r.total.tpot_ms, "p99"), LOWER],
    ["E2E p50 (ms)", (r) => D.pick(r.total.e2el_ms, "p50"), LOWER],
    ["E2E p99 (ms)", (r) => D.pick(r.total.e2el_ms, "p99"), LOWER],
  ];

  function deltaCell(value, base, direction, format) {
    const shown = format === "pct" ? D.pct(value) : D.num(value, format);
    const cell = el("span", {className: "value", text: shown});
    if (base === null || base === undefined || value === null || value === undefined) return cell;
    let change;
    if (base === 0) change = value === 0 ? 0 : Infinity;
    else change = (value - base) / Math.abs(base);
    let verdict = "same";
    if (Math.abs(change) >= 0.01 && direction) {
      const up = change > 0;
      verdict = (direction === HIGHER) === up ? "better" : "worse";
    }
    const text = Number.isFinite(change) ? (change >= 0 ? "+" : "") + D.num(change * 100, 1) + "%"
                                         : "new";
    return el("span", {className: "cmp " + verdict}, [cell, el("span", {className: "delta",
                                                                      text: " " + text})]);
  }

  function comparison(reports, labels) {
    const box = D.section("comparison", "Comparison",
      "Every run against the first (" + labels[0] + "); green is better, red worse " +
      "(a change under 1% is the same).");
    const columns = [{title: "metric", value: (row) => row[0]}].concat(labels.map((label, i) => ({
      title: label, num: true,
      value: (row) => {
        const value = row[1](reports[i]);
        if (i === 0) return row[3] === "pct" ? D.pct(value) : D.num(value, row[3]);
        return deltaCell(value, row[1](reports[0]), row[2], row[3]);
      },
    })));
    box.append(D.table(columns, COMPARED, {className: "data compare"}));
    const withSlos = reports.some((r) => r.slos && r.slos.length);
    if (withSlos) {
      const objectives = [...new Set(reports.flatMap((r) => (r.slos || []).map((s) => s.slo)))];
      box.append(el("h3", {text: "SLO verdicts"}), D.table(
        [{title: "objective", value: (o) => o}].concat(labels.map((label, i) => ({
          title: label, value: (o) => {
            const found = (reports[i].slos || []).find((s) => s.slo === o);
            return found ? D.badge(found.passed) : "-";
          }}))), objectives, {className: "data"}));
    }
    const grid = el("div", {className: "grid"});
    for (const metric of ["ttft_ms", "itl_ms", "e2el_ms"]) {
      const entries = reports.map((r, i) => ({label: labels[i], plot: (r.distributions || [])
        .find((p) => p.metric === metric && p.scope === "all")})).filter((e) => e.plot);
      grid.append(D.cdfChart("cmp-cdf-" + metric, D.METRICS[metric] + " CDF", entries));
    }
    for (const [id, key, title] of [["cmp-ts-output", "output_tok_s", "Output tokens/s"],
                                    ["cmp-ts-ttft", "ttft_p99_ms", "TTFT p99 (ms)"]]) {
      const c = D.chart(id, {title: title + " from each run's start", spanGaps: true,
                             xLabel: "seconds", series: labels.map((l) => ({label: l}))});
      const tables = reports.map((r) => {
        const points = (r.timeline && r.timeline.points) || [];
        const t0 = points.length ? points[0].t : 0;
        return [points.map((p) => p.t - t0), points.map((p) => p[key])];
      }).filter((t) => t[0].length);
      if (tables.length === reports.length) c.set(uPlot.join(tables));
      grid.append(c.box);
    }
    box.append(grid);
    return box;
  }

  /* -- page -------------------------------------------------------------------------- */
  const reports = data.reports || [];
  const labels = data.labels || [];
  if (reports.length === 1) {
    main.append(...single(reports[0]));
  } else if (reports.length > 1) {
    main.append(comparison(reports, labels));
    reports.forEach((report, i) => {
      const run = el("section", {className: "run", id: "run-" + (i + 1)},
                     [el("h2", {className: "run-title", text: labels[i]})]);
      run.append(...single(report, "-" + (i + 1)));
      main.append(run);
    });
  } else {
    main.append(D.noData("no report in this file"));
  }
  document.body.dataset.ready = "1";
})();
