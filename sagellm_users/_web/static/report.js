/* The HTML report: draws the reports embedded in the page, one run or several compared.
 *
 * The page holds {"labels": [...], "reports": [...]} in <script id="sagellm-data">; when
 * everything is drawn, <body data-ready="1"> tells tests (and print tools) it is done.
 */
"use strict";

(() => {
  const D = SageDash;
  const el = D.el;
  const main = document.getElementById("report");
  const BY_REQUEST_END = "A report older than schema version 3: its output tokens/s counts " +
    "each request's tokens in the second the request ended, not as they arrived.";

  function load() {
    try {
      const data = JSON.parse(document.getElementById("sagellm-data").textContent);
      return {reports: data.reports || [], labels: data.labels || []};
    } catch (error) {
      return null;  // a damaged file: said on the page below
    }
  }

  /* -- the load ----------------------------------------------------------------------- */
  /** [label, value] of the load a run applied (older reports have none). */
  function loadPairs(report) {
    const load = (report.run || {}).load;
    if (!load) return [];
    const pairs = [
      ["users", D.text(load.users) + (D.missing(load.peak_users) ? "" :
                                      " (peak " + D.num(load.peak_users, 0) + ")")],
      ["spawn rate", D.missing(load.spawn_rate) ? "-" : D.num(load.spawn_rate) + " users/s"],
      ["run time", D.missing(load.run_time_s) ? "until stopped" : D.num(load.run_time_s) + " s"],
      ["load shape", load.shape ? load.shape + (load.stages ? " " + JSON.stringify(load.stages)
                                                           : "") : "none"],
      ["open loop", D.missing(load.request_rate) ? "no (closed loop)" :
                    D.num(load.request_rate) + " req/s, " + D.text(load.arrival)],
      ["load-generating processes", D.num(load.processes, 0)],
    ];
    if (load.started) {
      pairs.push(["test", "run #" + load.run_number + ", " + D.when(load.started) + " to " +
                          (load.stopped ? D.when(load.stopped) : "now")]);
    }
    return pairs;
  }

  /** Options every run has that say nothing of the load (where files were written). */
  const NOT_LOAD = new Set(["llm_report", "llm_html", "llm_records", "reports", "engine_log"]);

  /** The load's fields and options whose values differ between ``reports``. */
  function loadDifferences(reports, labels) {
    const rows = [];
    const add = (name, values) => {
      if (new Set(values.map((v) => JSON.stringify(v === undefined ? null : v))).size > 1) {
        rows.push({name: name, values: values});
      }
    };
    const loads = reports.map((r) => (r.run || {}).load || {});
    for (const [name, key] of [["users", "users"], ["peak users", "peak_users"],
                               ["spawn rate", "spawn_rate"], ["run time (s)", "run_time_s"],
                               ["load shape", "shape"], ["shape's stages", "stages"],
                               ["request rate (req/s)", "request_rate"],
                               ["load-generating processes", "processes"]]) {
      add(name, loads.map((l) => l[key]));
    }
    add("host", reports.map((r) => (r.run || {}).host));
    add("models", reports.map((r) => ((r.total || {}).models || []).join(", ")));
    add("User classes", reports.map((r) => ((r.run || {}).user_classes || []).join(", ")));
    const options = reports.map((r) => (r.run || {}).options || {});
    const keys = [...new Set(options.flatMap((o) => Object.keys(o)))]
      .filter((k) => !NOT_LOAD.has(k));
    for (const key of keys) add("--" + key.replace(/_/g, "-"), options.map((o) => o[key]));
    const box = el("div", {className: "load-diff"}, [el("h3", {text: "What differs in the load"})]);
    if (!rows.length) {
      box.append(el("p", {className: "note", text: "The same load in every run: users, " +
        "spawn rate, run time, shape, rate, processes, host, models and options."}));
      return box;
    }
    box.append(D.table([{title: "", value: (r) => r.name}].concat(labels.map((label, i) => ({
      title: label, value: (r) => D.text(r.values[i])}))), rows, {className: "data load"}));
    return box;
  }

  /* -- one run ----------------------------------------------------------------------- */
  function config(report, suffix) {
    const box = D.section("config" + suffix, "Run");
    const total = report.total || {};
    const win = report.window || {};
    const tool = report.tool || {};
    const run = report.run || {};
    box.append(D.keyValues([
      ["host", run.host || "embedded mock server"],
      ["models", (total.models || []).join(", ") || "-"],
      ["backends", (total.backends || []).join(", ") || "-"],
      ["User classes", (run.user_classes || []).join(", ") || "-"],
      ...loadPairs(report),
      ["measured window", D.num(win.seconds) + " s" + (win.start ? ", " + D.when(win.start) +
                          " to " + D.when(win.end) : "")],
      ["warm-up", D.text(win.warmup || "none") + "; " + D.num(win.excluded_requests || 0, 0) +
                  " requests excluded" + (win.measure_after_spawn ? "; measured after spawn" : "")],
      ["report created", D.when(report.created)],
      ["tool", [tool.name, tool.version].filter(Boolean).join(" ") || "-"],
      ["Locust / Python", D.text(tool.locust) + " / " + D.text(tool.python)],
      ["platform", D.text(tool.platform)],
    ]));
    // Options left at nothing would only add noise.
    const options = Object.entries(run.options || {})
      .filter(([, v]) => v !== null && v !== "" && !(Array.isArray(v) && !v.length) &&
                         !(typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length));
    if (options.length) {
      box.append(el("h3", {text: "Options"}), D.keyValues(options));
    }
    return box;
  }

  function workload(report, suffix) {
    const parts = [];
    if (report.workload) {
      if (report.workload.token_source === "estimate") {
        parts.push(el("p", {className: "verdict fail", text: "Prompt lengths are estimated " +
          "(4 characters per token), not counted by a tokenizer."}));
      }
      parts.push(el("h3", {text: "Workload"}), D.keyValues(Object.entries(report.workload)));
    }
    if (report.arrivals) {
      parts.push(el("h3", {text: "Open-loop arrivals"}),
                 D.arrivalValues(report.arrivals, report.workload));
    }
    /* A turn's or a shared-prefix group's requests, prompts, cache hits and latencies. */
    const slices = (title, key, blocks) => {
      const cached = blocks.some((r) => r.cache_reported);
      parts.push(el("h3", {text: title}), D.table([
        {title: key, value: (r) => String(r[key])},
        {title: "requests", num: true, value: (r) => D.num(r.requests, 0)},
        {title: "input tokens (mean)", num: true,
         value: (r) => D.num(D.pick(r.input_tokens, "mean"))},
        ...(cached ? [{title: "prompt cache hits", num: true,
                       value: (r) => D.pct(r.cache_hit_share)}] : []),
        {title: "TTFT p50", num: true, value: (r) => D.num(D.pick(r.ttft_ms, "p50"))},
        {title: "TTFT p99", num: true, value: (r) => D.num(D.pick(r.ttft_ms, "p99"))},
        {title: "E2E p50", num: true, value: (r) => D.num(D.pick(r.e2el_ms, "p50"))},
      ], blocks, {className: "data"}));
    };
    if (report.turns && report.turns.length) slices("By conversation turn", "turn", report.turns);
    if (report.prefix_groups && report.prefix_groups.length) {
      slices("By shared-prefix group", "group", report.prefix_groups);
    }
    const sweep = report.sweep;
    if (sweep) {
      const unit = sweep.unit || "";
      const capacity = D.missing(sweep.capacity) ? "none: the first stage broke an objective" :
        D.num(sweep.capacity) + " " + unit + (D.missing(sweep.broke_at) ?
          " (at least: every stage met the objectives)" :
          "; " + D.num(sweep.broke_at) + " " + unit + " broke one");
      parts.push(el("h3", {text: "Sweep (" + (sweep.objectives || []).join(", ") + ")"}),
                 el("p", {text: "capacity: " + capacity}), D.table([
        {title: "load (" + unit + ")", num: true, value: (s) => D.num(s.load)},
        {title: "requests", num: true, value: (s) => D.num(s.requests, 0)},
        {title: "measured s", num: true, value: (s) => D.num(s.measured_s)},
        {title: "TTFT p99", num: true, value: (s) => D.num(s.ttft_p99_ms)},
        {title: "output tok/s", num: true, value: (s) => D.num(s.output_throughput)},
        {title: "req/s", num: true, value: (s) => D.num(s.request_throughput)},
        {title: "error rate", num: true, value: (s) => D.pct(s.error_rate)},
        {title: "verdict", value: (s) => s.passed ? D.badge(true) : el("span", {}, [D.badge(false),
          " " + (s.broken || []).join(", ")])},
      ], sweep.stages || [], {className: "data"}));
    }
    if (!parts.length) return null;
    const box = D.section("workload" + suffix, "Workload and load model");
    box.append(...parts);
    return box;
  }

  /** The User classes beside each other, when several backends ran in one test. */
  function backends(report, suffix) {
    const blocks = report.by_user || [];
    const users = new Set(blocks.map((b) => b.user));
    if (users.size < 2) return null;
    const box = D.section("backends" + suffix, "Backends side by side");
    box.append(D.metricsTable(blocks.map((b) => ({title: D.blockLabel(b), block: b})), false));
    return box;
  }

  function single(report, suffix) {
    const id = (name) => name + suffix;
    const parts = [config(report, suffix)];

    const summary = D.section(id("summary"), "Summary", "Times in milliseconds.");
    for (const lost of report.lost_workers || []) {
      summary.append(el("p", {className: "verdict fail", text: "PARTIAL: worker " + lost.worker +
        " was lost at " + D.when(lost.lost_at) + " (last report " +
        (lost.last_report_at ? D.when(lost.last_report_at) : "never") + "); what it " +
        "measured after its last report is not in this report"}));
    }
    if (report.records_lost) {
      summary.append(el("p", {className: "verdict fail", text: "LOST: " +
        D.num(report.records_lost, 0) + " record(s) could not be written to the records " +
        "file (" + report.records_error + "); they are counted here but missing from the file"}));
    }
    summary.append(D.summaryTable(report));
    const t = report.total || {};
    if (t.cancelled) {
      summary.append(el("p", {className: "note", text: D.num(t.cancelled, 0) + " request(s) " +
        "were in flight when the test stopped: recorded as cancelled, neither failed nor in " +
        "the error rate."}));
    }
    if (t.retried) {
      const how = Object.entries(t.retry_failures || {}).map(([k, v]) => k + " x" + v);
      summary.append(el("p", {className: "note", text: "Retried " + D.num(t.retried, 0) +
        " request(s), " + D.num(t.retries, 0) + " retries (" + how.join(", ") + "): each " +
        "request counts once, by its last attempt; the attempts that failed are only here."}));
    }
    const p = (report.total || {}).token_provenance;
    if (p && (p.output_estimated || p.input_estimated)) {
      summary.append(el("p", {className: "note", text: "Token counts estimated (no usage " +
        "from the server) for " + p.output_estimated + " outputs and " + p.input_estimated +
        " prompts."}));
    }
    summary.append(...D.answerWarnings(t));
    summary.append(...D.modelNotes(t));
    if (p && p.output_tokenized) {
      summary.append(el("p", {className: "note", text: "Output tokens of " +
        p.output_tokenized + " request(s) counted by the tokenizer in their text: the " +
        "server sent no usage."}));
    }
    parts.push(summary);
    const curve = report.curve;
    if (curve && (curve.points || []).length) {
      const box = D.section(id("curve"), "Serving curve",
        "Each point is one stage of the " + (curve.unit === "req/s" ? "rate sweep" : "stepped " +
        "load or sweep") + ", measured once its load settled: its p99 latencies against what the " +
        "server achieved. Dashed: the --slo bound; the green mark: the capacity, the highest " +
        "load that met every objective.");
      box.append(D.servingCurve(curve, id("curve")));
      parts.push(box);
    }

    if (report.slos && report.slos.length) {
      const slos = D.section(id("slos"), "Service-level objectives");
      slos.append(...D.sloTable(report));
      parts.push(slos);
    }

    const dists = D.section(id("distributions"), "Distributions",
                            "The whole measured window; CDFs per User class when several ran.");
    D.distributions(dists, report.distributions || [], suffix);
    parts.push(dists);

    const series = D.section(id("timeseries"), "Over time",
                             "Each point holds the requests that ended in it; output tokens/s " +
                             "counts each token in the second it arrived.");
    const timeline = report.timeline;
    if (timeline && timeline.points && timeline.points.length) {
      const grid = el("div", {className: "grid"});
      series.append(grid);
      D.timeSeries(grid, suffix).set(timeline.points, timeline.width_s || 1);
      if (timeline.output_by_arrival === false) {
        series.append(el("p", {className: "note", text: BY_REQUEST_END}));
      }
      if (timeline.merged_points) {
        series.append(el("p", {className: "note", text: "Long run: points were merged to " +
          D.num(timeline.width_s) + " s each; their percentiles are count-weighted means."}));
      }
    } else {
      series.append(D.noData("no timeline in this report"));
    }
    parts.push(series);

    const b = backends(report, suffix);
    if (b) parts.push(b);
    const phaseTable = D.phaseTable(report.total);
    if (phaseTable) {
      const box = D.section("phases" + suffix, "HTTP phases", D.PHASES_NOTE);
      box.append(phaseTable);
      parts.push(box);
    }

    const errors = D.section(id("errors"), "Failures");
    errors.append(D.errorTable(report.total));
    parts.push(errors);

    if (report.server && report.server.length) {
      const server = D.section(id("server"), "Server side (/metrics)",
        "The server's own view, from histogram buckets: coarser than the client's times, " +
        "so each percentile is shown as the bound its bucket and the sum prove.");
      server.append(...D.serverTables(report.server));
      parts.push(server);
    }
    const w = workload(report, suffix);
    if (w) parts.push(w);
    if (report.client) {
      const c = report.client;
      const client = D.section(id("client"), "Load generator");
      client.append(el("p", {className: c.trustworthy ? "verdict pass" : "verdict fail",
                             text: c.trustworthy ? "kept up: timings trustworthy" :
                                                   "TIMINGS NOT TRUSTWORTHY"}));
      for (const warning of c.warnings || []) {
        client.append(el("p", {className: "note", text: warning}));
      }
      const lag = (c.total || {}).loop_lag_ms;
      if (lag) {
        client.append(D.keyValues([
          ["event-loop lag (ms)", "p50 " + D.num(D.pick(lag, "p50")) + ", p99 " +
                                  D.num(D.pick(lag, "p99")) + ", max " + D.num(lag.max)],
          ["CPU (cores)", "mean " + D.num(c.total.cpu_mean) + ", peak " + D.num(c.total.cpu_peak)],
          ["processes", D.num(c.processes, 0) + " (" + D.num(c.processes_needed, 0) + " needed)"],
        ]));
      }
      parts.push(client);
    }
    return parts;
  }

  /* -- several runs ------------------------------------------------------------------ */
  function comparison(reports, labels) {
    const box = D.section("comparison", "Comparison",
      "Each run against the first (" + labels[0] + "): green is better, red worse; a change " +
      "under 1% counts as the same.");
    box.append(loadDifferences(reports, labels));
    box.append(D.metricsTable(reports.map((r, i) => ({title: labels[i], block: r.total || {}})),
                              true));

    if (reports.some((r) => r.slos && r.slos.length)) {
      const objectives = [...new Set(reports.flatMap((r) => (r.slos || []).map((s) => s.slo)))];
      box.append(el("h3", {text: "Service-level objectives"}), D.table(
        [{title: "objective", value: (o) => o}].concat(labels.map((label, i) => ({
          title: label, value: (o) => {
            const found = (reports[i].slos || []).find((s) => s.slo === o);
            return found ? el("span", {}, [D.badge(found.passed), " " + D.num(found.value, 3)])
                         : "-";
          }}))), objectives, {className: "data"}));
    }

    // The runs as points of one serving curve: what each achieved and its p99s.
    const runs = reports.map((r) => {
      const t = r.total || {};
      const load = (r.run || {}).load || {};
      return {load: D.missing(load.request_rate) ? load.users : load.request_rate,
              requests: t.requests, request_throughput: t.request_throughput,
              output_throughput: t.output_throughput, error_rate: t.error_rate,
              ttft_p99_ms: D.pick(t.ttft_ms, "p99"), itl_p99_ms: D.pick(t.itl_ms, "p99"),
              e2el_p99_ms: D.pick(t.e2el_ms, "p99"),
              passed: (r.slos || []).length ? r.slos.every((o) => o.passed) : null};
    });
    box.append(el("h3", {text: "Serving curve across the runs"}),
               el("p", {className: "note", text: "Each run is a point: its p99 latencies " +
                 "against the throughput it achieved."}),
               D.servingCurve({unit: "users", points: runs, thresholds: {}}, "cmp-curve", labels));

    const grid = el("div", {className: "grid"});
    for (const metric of ["ttft_ms", "itl_ms", "e2el_ms"]) {
      const entries = reports.map((r, i) => ({label: labels[i], plot: (r.distributions || [])
        .find((p) => p.metric === metric && p.scope === "all")}));
      grid.append(D.cdfChart("cmp-cdf-" + metric, D.METRICS[metric] + " CDF", entries).box);
    }
    // Runs started at different times: each is drawn from its own first point.
    for (const [id, key, title] of [["cmp-ts-output", "output_tok_s", "Output tokens/s"],
                                    ["cmp-ts-ttft", "ttft_p99_ms", "TTFT p99 (ms)"]]) {
      const drawn = reports.map((r, i) => ({label: labels[i],
        points: D.withGaps((r.timeline && r.timeline.points) || [],
                           (r.timeline && r.timeline.width_s) || 1),
      })).filter((run) => run.points.length);
      const c = D.chart(id, {title: title + " since each run's start", xLabel: "seconds",
                             series: drawn.map((run) => ({label: run.label})),
                             empty: "no timeline in these reports"});
      if (drawn.length) {
        c.set(uPlot.join(drawn.map((run) => {
          const t0 = run.points[0].t;
          return [run.points.map((p) => p.t - t0),
                  run.points.map((p) => D.missing(p[key]) ? null : p[key])];
        })));
      }
      grid.append(c.box);
    }
    box.append(grid);
    const byEnd = labels.filter((_label, i) =>
      (reports[i].timeline || {}).output_by_arrival === false);
    if (byEnd.length) {
      box.append(el("p", {className: "note", text: byEnd.join(", ") + ": " + BY_REQUEST_END}));
    }
    return box;
  }

  /* -- page -------------------------------------------------------------------------- */
  function render() {
    const data = load();
    if (data === null) {
      main.append(D.noData("this file's report data could not be read"));
    } else if (data.reports.length === 1) {
      main.append(...single(data.reports[0], ""));
    } else if (data.reports.length > 1) {
      const labels = data.reports.map((r, i) => String(data.labels[i] || "run " + (i + 1)));
      main.append(comparison(data.reports, labels));
      data.reports.forEach((report, i) => {
        const run = el("section", {className: "run", id: "run-" + (i + 1)},
                       [el("h2", {className: "run-title", text: (i + 1) + ". " + labels[i]})]);
        run.append(...single(report, "-" + (i + 1)));
        main.append(run);
      });
    } else {
      main.append(D.noData("no report in this file"));
    }
    D.resizeAll();  // charts were drawn before they were in the page: fit them to their boxes
  }

  try {
    render();
  } catch (error) {
    // Say so on the page, and still let the error reach the console (tests look there).
    main.append(D.noData("this report could not be drawn completely: " + error));
    throw error;
  } finally {
    document.body.dataset.ready = "1";
  }
})();
