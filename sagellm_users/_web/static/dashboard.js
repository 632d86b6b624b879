/* Drawing shared by the live page (live.js) and the HTML report (report.js).
 *
 * Plain browser JavaScript (ES2020), no modules and no build step: the HTML report inlines
 * this file, so it must work from a file:// page with nothing loaded but uPlot. Data from a
 * run (model names, error messages, options) is only ever set as text, never as HTML.
 *
 * Every chart sits in a box with data-chart="<id>" and data-points="<n>" (the x values with
 * at least one measured y), so tests and people can tell an empty chart from a broken one.
 */
"use strict";

const SageDash = (() => {
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2",
                  "#ca8a04", "#db2777", "#4b5563", "#65a30d"];
  const PRINT_WIDTH = 680;  // fits A4 portrait with the browser's default margins
  const charts = [];        // every drawn chart {plot, box}, for resizing and pruning
  let printing = false;

  /* -- DOM --------------------------------------------------------------------------- */
  /** An element; ``attrs.text`` becomes its text, other attrs attributes (null: skipped). */
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
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

  /* -- numbers and text -------------------------------------------------------------- */
  const missing = (v) => v === null || v === undefined || (typeof v === "number" && isNaN(v));

  /** A number for people: "-" when not measured; digits by magnitude unless given. */
  function num(value, digits) {
    if (missing(value) || typeof value !== "number") return missing(value) ? "-" : String(value);
    const size = Math.abs(value);
    const d = digits !== undefined ? digits : size >= 100 ? 0 : size >= 10 ? 1 : 2;
    return value.toLocaleString("en-US", {minimumFractionDigits: d, maximumFractionDigits: d});
  }
  function pct(value) {
    return missing(value) ? "-" : num(value * 100, 2) + "%";
  }
  /** An ISO time from the report as "YYYY-MM-DD HH:MM:SS UTC" ("-" when unknown). */
  function when(iso) {
    if (!iso) return "-";
    const date = new Date(iso);
    if (isNaN(date.getTime())) return String(iso);
    return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }
  /** A value of any JSON type as text (options and workload fields). */
  function text(value) {
    if (missing(value)) return "-";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }
  /** One statistic of a DistributionSummary: "mean", "median" or a percentile label. */
  function pick(summary, label) {
    if (!summary) return null;
    if (label === "mean" || label === "median" || label === "max" || label === "min") {
      return missing(summary[label]) ? null : summary[label];
    }
    const value = summary.percentiles ? summary.percentiles[label] : undefined;
    if (value !== undefined) return value;
    return label === "p50" && !missing(summary.median) ? summary.median : null;
  }

  /* -- tables ------------------------------------------------------------------------ */
  /** A table: ``columns`` [{title, value(row) -> text|Node, num?, group?, cls?(row)}];
   *  columns with a ``group`` get a header row above them naming the group. */
  function table(columns, rows, attrs) {
    const head = [];
    if (columns.some((c) => c.group)) {
      const top = el("tr");
      for (let i = 0; i < columns.length;) {
        let span = 1;
        while (i + span < columns.length && columns[i + span].group === columns[i].group) span++;
        top.append(el("th", {colspan: span > 1 ? String(span) : null,
                             className: columns[i].group ? "group" : null,
                             text: columns[i].group || ""}));
        i += span;
      }
      head.push(top);
    }
    head.push(el("tr", {}, columns.map((c) => el("th", {className: c.num ? "num" : null,
                                                        text: c.title}))));
    const body = rows.map((row) => el("tr", {className: row._className || null},
      columns.map((c) => {
        const value = c.value(row);
        const classes = [c.num ? "num" : "", c.cls ? c.cls(row) || "" : ""].join(" ").trim();
        const cell = el("td", {className: classes || null});
        if (value instanceof Node) cell.append(value); else cell.textContent = text(value);
        return cell;
      })));
    return el("table", attrs || {}, [el("thead", {}, head), el("tbody", {}, body)]);
  }

  /** A two-column table of [name, value] pairs. */
  function keyValues(pairs) {
    return el("table", {className: "kv"}, [el("tbody", {}, pairs.map(([k, v]) =>
      el("tr", {}, [el("th", {text: k}), el("td", {}, [v instanceof Node ? v : text(v)])])))]);
  }

  /** "User name", or just the name where it starts with the user's (compare runs). */
  function blockLabel(block) {
    if (block.user && block.name && !block.name.startsWith(block.user + " ")) {
      return block.user + " " + block.name;
    }
    return block.name || block.user || "all";
  }

  /** The summary table: total, each request name, each User class and name. */
  function summaryTable(report) {
    const rows = [
      Object.assign({_label: "all", _className: "total"}, report.total || {}),
      ...(report.by_name || []).map((b) => Object.assign({_label: b.name}, b)),
      ...(report.by_user || []).map((b) => Object.assign({_label: blockLabel(b)}, b)),
    ];
    const ms = (metric, p) => ({title: metric.title + " " + p, num: true,
                                value: (r) => num(pick(r[metric.key], p))});
    const TTFT = {key: "ttft_ms", title: "TTFT"}, ITL = {key: "itl_ms", title: "ITL"};
    const TPOT = {key: "tpot_ms", title: "TPOT"}, E2E = {key: "e2el_ms", title: "E2E"};
    const TTST = {key: "ttst_ms", title: "TTST"}, TTFO = {key: "ttfo_ms", title: "TTFO"};
    const reasoned = rows.some((r) => r.reasoning_requests);
    return table([
      {title: "scope", value: (r) => r._label},
      {title: "requests", num: true, value: (r) => num(r.requests, 0)},
      {title: "completed", num: true, value: (r) => num(r.completed, 0)},
      {title: "failed", num: true, value: (r) => num(r.failed, 0)},
      {title: "cancelled", num: true, value: (r) => num(r.cancelled, 0)},
      {title: "error rate", num: true, value: (r) => pct(r.error_rate)},
      {title: "retried", num: true, value: (r) => num(r.retried, 0)},
      {title: "req/s", num: true, value: (r) => num(r.request_throughput)},
      {title: "output tok/s", num: true, value: (r) => num(r.output_throughput)},
      ms(TTFT, "p50"), ms(TTFT, "p99"), ms(TTST, "p50"),
      ...(reasoned ? [ms(TTFO, "p50"), ms(TTFO, "p99")] : []),
      ms(ITL, "p50"), ms(ITL, "p99"), ms(TPOT, "p50"), ms(E2E, "p50"), ms(E2E, "p99"),
    ], rows, {className: "data"});
  }

  /* The key metrics, one per row, with which way is better (null: neither). */
  const LOWER = "lower", HIGHER = "higher";
  const timing = (key, word, p) => [word + " " + p + " (ms)", (b) => pick(b[key], p), LOWER];
  const KEY_METRICS = [
    ["requests", (b) => b.requests, null, 0],
    ["error rate", (b) => b.error_rate, LOWER, "pct"],
    ["requests/s", (b) => b.request_throughput, HIGHER],
    ["output tokens/s", (b) => b.output_throughput, HIGHER],
    ["total tokens/s", (b) => b.total_token_throughput, HIGHER],
    timing("ttft_ms", "TTFT", "mean"), timing("ttft_ms", "TTFT", "p50"),
    timing("ttft_ms", "TTFT", "p90"), timing("ttft_ms", "TTFT", "p99"),
    timing("ttst_ms", "TTST", "p50"), timing("ttst_ms", "TTST", "p99"),
    timing("ttfo_ms", "TTFO", "p50"), timing("ttfo_ms", "TTFO", "p99"),
    timing("itl_ms", "ITL", "p50"), timing("itl_ms", "ITL", "p99"),
    timing("tpot_ms", "TPOT", "p50"), timing("tpot_ms", "TPOT", "p99"),
    timing("e2el_ms", "E2E", "p50"), timing("e2el_ms", "E2E", "p99"),
  ];
  const formatted = (value, format) => format === "pct" ? pct(value) : num(value, format);

  /** How ``value`` compares with ``base``: {text: "+12.3%", verdict: better|worse|same|
   *  changed} (changed: a metric with no better direction), or null when either is missing. */
  function delta(value, base, direction) {
    if (missing(value) || missing(base)) return null;
    let change;
    if (base !== 0) change = (value - base) / Math.abs(base);
    else change = value === 0 ? 0 : value > 0 ? Infinity : -Infinity;  // shown as "new"
    let verdict = "same";
    if (Math.abs(change) >= 0.01) {
      const up = change > 0;
      verdict = !direction ? "changed" : (direction === HIGHER) === up ? "better" : "worse";
    }
    const shown = Number.isFinite(change) ? (change >= 0 ? "+" : "") + num(change * 100, 1) + "%"
                                          : "new";
    return {text: shown, verdict: verdict};
  }

  /** Key metrics side by side: one row per metric, one column per {title, block}; with
   *  ``deltas`` every column after the first also shows its change against the first. */
  function metricsTable(columns, deltas) {
    const cols = [{title: "metric", value: (row) => row[0]}];
    columns.forEach((column, i) => {
      const compared = (row) => deltas && i > 0 ?
        delta(row[1](column.block), row[1](columns[0].block), row[2]) : null;
      cols.push({
        title: column.title, num: true,
        cls: (row) => { const d = compared(row); return d ? "cmp " + d.verdict : null; },
        value: (row) => {
          const shown = formatted(row[1](column.block), row[3]);
          const d = compared(row);
          if (!d) return shown;
          return el("span", {}, [el("span", {className: "value", text: shown}),
                                 el("span", {className: "delta", text: " " + d.text})]);
        },
      });
    });
    return table(cols, KEY_METRICS, {className: "data compare"});
  }

  function badge(passed) {
    return el("span", {className: passed ? "badge pass" : "badge fail",
                       text: passed ? "PASS" : "FAIL"});
  }

  /** The objectives' verdicts (a list of nodes), with why and when an early stop ended it. */
  function sloTable(report) {
    const slos = report.slos || [];
    const all = slos.every((s) => s.passed);
    const parts = [
      el("p", {className: all ? "verdict pass" : "verdict fail",
               text: all ? "all objectives met" : "SLO FAILED"}),
      table([
        {title: "objective", value: (r) => r.slo},
        {title: "measured", num: true, value: (r) => num(r.value, 3)},
        {title: "verdict", value: (r) => badge(r.passed)},
        {title: "note", value: (r) => r.lost_early ? "lost early: " + r.lost_early :
                                      missing(r.value) ? "not measured" : ""},
      ], slos, {className: "data"}),
    ];
    const stop = report.early_stop;
    if (stop) {
      parts.push(el("p", {className: "note", text: "--slo-early-stop ended the test at " +
                                                   when(stop.at) + ":"}));
      parts.push(keyValues(Object.entries(stop.objectives || {})));
    }
    return parts;
  }

  /** What the answers themselves say is wrong (the summary's warnings), as notes: answers
   *  of another length than asked, answers with no output, and a server that says "stop"
   *  where the length limit ended an answer. */
  function answerWarnings(t) {
    const notes = [];
    const done = t ? t.completed : 0;
    if (!done) return notes;
    const note = (text) => notes.push(el("p", {className: "note warning", text: text}));
    if (t.length_mismatches) {
      note("Warning: " + num(t.length_mismatches, 0) + " of " + num(done, 0) + " successful " +
        "requests were not the length they asked for (ignore_eos / min_tokens): " +
        (t.length_mismatch_examples || []).join("; ") + ". The server, or a proxy in front " +
        "of it, does not honour those fields.");
    }
    if (t.empty_answers) {
      note("Warning: " + num(t.empty_answers, 0) + " of " + num(done, 0) + " successful " +
        "requests had no output at all (0 tokens): a gateway that turns its engine's failure " +
        "into an empty answer does this (sageLLM's does); look in the server's log.");
    }
    if ((t.stopped_at_limit || 0) * 2 >= done) {
      note(num(t.stopped_at_limit, 0) + " of " + num(done, 0) + " requests said " +
        "finish_reason 'stop' with exactly max_tokens out: this server reports 'stop' where " +
        "the length limit ended an answer (sageLLM's gateway streams so), so its finish " +
        "reasons do not tell the limit from an end of sequence.");
    }
    return notes;
  }

  /** What the model and the server did beyond timings: reasoning, steps of several
   *  tokens, prompt-cache hits (the summary's lines), as notes. */
  function modelNotes(t) {
    const notes = [];
    if (!t) return notes;
    const note = (text) => notes.push(el("p", {className: "note", text: text}));
    if (t.reasoning_requests) {
      note("Reasoning: " + num(t.reasoning_requests, 0) + " of " + num(t.completed, 0) +
        " requests reasoned, " + num(t.total_reasoning_tokens, 0) + " of " +
        num(t.total_output_tokens, 0) + " output tokens" + (t.reasoning_usage_zero ?
        "; the server's usage said 0 reasoning tokens for " + num(t.reasoning_usage_zero, 0) +
        " of them, which streamed reasoning: counted from the stream instead (vLLM counts " +
        "only the tokens between a <think> and a </think> the model generates itself)" : "") +
        (t.reasoning_tokens_estimated ? " (" + num(t.reasoning_tokens_estimated, 0) +
        " counted as reasoning steps: no reasoning_tokens in the server's usage)" : "") +
        "; TTFO is when their answers began.");
    }
    const sizes = Object.entries(t.step_sizes || {});
    if (!missing(t.tokens_per_step) && (t.tokens_per_step >= 1.05 || sizes.length > 1)) {
      const total = sizes.reduce((sum, [, n]) => sum + n, 0);
      const spread = sizes.map(([k, n]) => k + " token" + (k === "1" ? "" : "s") + " " +
                                           pct(n / total));
      note("Decode steps carried " + num(t.tokens_per_step) + " tokens each on average" +
        (total ? " (" + spread.join(", ") + " of " + num(total, 0) + " steps)" : "") +
        ": speculative decoding, or a stream that fell behind its engine.");
    }
    if (t.cache_reported) {
      note("Prompt cache: " + num(t.total_cached_tokens, 0) + " prompt tokens served from " +
        "the server's cache, " + pct(t.cache_hit_share) + " of the prompts of the " +
        num(t.cache_reported, 0) + " requests whose usage said.");
    }
    return notes;
  }

  const PHASE_TITLES = {connect: "connect (new connections)", tls: "TLS handshake",
                        send: "send request", wait: "wait for headers",
                        first_byte: "headers to first byte"};
  const PHASES_NOTE = "Milliseconds before each successful answer's first byte: a new " +
    "connection's TCP connect and TLS handshake, writing the request, waiting for the " +
    "response's headers, and from the headers to the body. A server that sends its headers " +
    "at once (vLLM) spends its queue and prefill in the last.";

  /** Where successful requests' time went before their answers' first bytes; null with
   *  no HTTP (in-process engines) or no request yet. */
  function phaseTable(block) {
    const phases = (block || {}).http_phases_ms || {};
    const names = [...Object.keys(PHASE_TITLES), ...Object.keys(phases)];
    const rows = [...new Set(names)].filter((name) => phases[name] && phases[name].count)
      .map((name) => [name, phases[name]]);
    if (!rows.length) return null;
    const at = (label) => ([, s]) => num(pick(s, label));
    return table([
      {title: "phase", value: ([name]) => PHASE_TITLES[name] || name},
      {title: "count", num: true, value: ([, s]) => num(s.count, 0)},
      {title: "mean", num: true, value: at("mean")},
      {title: "p50", num: true, value: at("p50")},
      {title: "p99", num: true, value: at("p99")},
      {title: "max", num: true, value: at("max")},
    ], rows, {className: "data"});
  }

  /** An open loop's arrivals: the rate asked, drawn and achieved, and the start lag; a
   *  trace replay's progress through its lines. */
  function arrivalValues(a, workload) {
    const lag = a.lag_ms || {};
    const trace = workload && workload.trace_requests;
    return keyValues([
      ["arrival process", a.kind + (a.kind === "gamma" ? ", burstiness " +
                                    num(a.burstiness) : "")],
      ...(trace ? [["trace", workload.trace + " (" + num(trace, 0) + " lines over " +
                   num(workload.trace_seconds) + " s, at " + num(workload.trace_speed) + "x)"],
                  ["lines started", num(a.requests, 0) + " of " + num(trace, 0)]] : []),
      ["target rate", num(a.target_rate) + " req/s"],
      ["schedule's rate", num(a.intended_rate) + " req/s"],
      ["achieved rate", num(a.achieved_rate) + " req/s"],
      ["requests", num(a.requests, 0)],
      ["started late", num(a.late, 0) + " (more than " + num(a.late_after_ms, 0) + " ms)"],
      ["start lag (ms)", "mean " + num(lag.mean) + ", p99 " + num(pick(lag, "p99")) +
                         ", max " + num(lag.max)],
    ]);
  }

  function errorTable(block) {
    const failures = (block && block.failures) || [];
    if (!failures.length) return noData("no failures");
    return table([
      {title: "failure class", value: (r) => r.error_class},
      {title: "count", num: true, value: (r) => num(r.count, 0)},
      {title: "example", value: (r) => r.example || ""},
    ], failures, {className: "data errors"});
  }

  const SERVER_LEGEND = "Percentiles from vLLM's histogram buckets and sum, in ms: a number " +
    "only where they pin it; ≤ at most, A-B between, ≈ within 10%, > above the top bucket, " +
    "~ interpolated (older reports). Hover for the bucket.";

  /** A number to three significant figures, as the report prints server timings:
   *  "0.006", "9.80", "33.9", "80,000" ("-" when not measured). ``direction`` "up" or
   *  "down" rounds that way, so an upper or lower bound printed still holds. */
  function figure(value, direction) {
    if (missing(value) || typeof value !== "number") return missing(value) ? "-" : String(value);
    if (value === 0 || !isFinite(value)) return String(value);
    const step = Math.pow(10, Math.floor(Math.log10(Math.abs(value))) - 2);
    const scaled = value / step;
    const rounded = step * (direction === "up" ? Math.ceil(scaled - 1e-6)
      : direction === "down" ? Math.floor(scaled + 1e-6) : Math.floor(scaled + 0.5));
    if (rounded === 0) return "0";
    const d = Math.max(0, 2 - Math.floor(Math.log10(Math.abs(rounded)) + 1e-9));
    const shown = rounded.toLocaleString("en-US", {minimumFractionDigits: d,
                                                   maximumFractionDigits: d});
    return Math.abs(rounded) < 1 ? shown.replace(/0+$/, "").replace(/\.$/, "") : shown;
  }

  /** One server-side percentile: the report's printed form ("≤ 300", "250-500", "10.0"),
   *  with its histogram bucket and Prometheus' own interpolation on hover. */
  function serverPercentile(p) {
    if (missing(p)) return "-";
    if (typeof p !== "object") return num(p);
    const bucket = p.bucket ? "bucket (" + figure(p.bucket.lower) + ", " +
      (missing(p.bucket.upper) ? "+Inf" : figure(p.bucket.upper)) + "] ms"
      : "bucket not recorded (an older report)";
    const title = bucket + "; at least " + figure(p.lower, "down") + ", at most " +
      (missing(p.upper) ? "unbounded" : figure(p.upper, "up")) + "; histogram_quantile " +
      figure(p.histogram_quantile);
    return el("span", {title: title, "data-kind": p.kind}, [p.display]);
  }

  /** What each server's /metrics said: counters, gauges, and its timing histograms. */
  function serverTables(servers) {
    const NAMES = {ttft_ms: "TTFT", itl_ms: "ITL", tpot_ms: "TPOT", e2el_ms: "E2E",
                   queue_ms: "queue"};
    return servers.map((s) => {
      const rows = Object.keys(NAMES).filter((m) => s[m]).map((m) => ({metric: m, h: s[m]}));
      const labels = rows.length ? Object.keys(rows[0].h.percentiles || {}) : [];
      const gauge = (g, f) => g ? "last " + f(g.last) + ", peak " + f(g.peak) + ", mean " +
                                  f(g.mean) : "-";
      const count = (v) => num(v, 0);
      return el("div", {className: "server"}, [
        el("h3", {text: s.host + (s.version ? " (" + s.version + ")" : "")}),
        keyValues([
          ["requests", count(s.requests)],
          ["prompt / generation tokens", count(s.prompt_tokens) + " / " +
                                         count(s.generation_tokens)],
          ["preemptions", count(s.preemptions)],
          ...(s.prefix_cache_queries ? [["prefix cache hits (tokens)",
            count(s.prefix_cache_hits) + " of " + count(s.prefix_cache_queries) + " (" +
            pct(s.prefix_cache_hits / s.prefix_cache_queries) + ")"]] : []),
          ...(s.spec_decode_draft_tokens ? [["speculative decoding: accepted draft tokens",
            count(s.spec_decode_accepted_tokens) + " of " + count(s.spec_decode_draft_tokens) +
            " (" + pct(s.spec_decode_accepted_tokens / s.spec_decode_draft_tokens) + "), " +
            num(1 + s.spec_decode_accepted_tokens / Math.max(1, s.spec_decode_drafts), 2) +
            " tokens per draft step"]] : []),
          ["running requests", gauge(s.running, (v) => num(v, 1))],
          ["waiting requests", gauge(s.waiting, (v) => num(v, 1))],
          ["KV cache usage", gauge(s.kv_cache_usage, pct)],
          ["scrapes", count(s.scrapes) + " (" + count(s.failed_scrapes) + " failed)"],
          ...(s.last_error ? [["last scrape error", s.last_error]] : []),
        ]),
        rows.length ? table([
          {title: "server-side", value: (r) => NAMES[r.metric] + " (ms)"},
          {title: "count", num: true, value: (r) => num(r.h.count, 0)},
          {title: "mean", num: true, value: (r) => figure(r.h.mean)},
          ...labels.map((p) => ({title: p, num: true,
                                 value: (r) => serverPercentile((r.h.percentiles || {})[p])})),
        ], rows, {className: "data"}) : noData("no timing histograms scraped"),
        rows.length ? el("p", {className: "note", text: SERVER_LEGEND}) : null,
      ]);
    });
  }

  /* -- charts ------------------------------------------------------------------------ */
  function chartWidth(box) {
    if (printing) return PRINT_WIDTH;
    const width = box.isConnected ? box.clientWidth : 0;
    return Math.max(300, Math.floor((width || 600) - 4));
  }

  function countPoints(data) {
    let n = 0;
    for (let i = 0; i < data[0].length; i++) {
      for (let s = 1; s < data.length; s++) {
        if (!missing(data[s][i])) { n++; break; }
      }
    }
    return n;
  }

  // Lines are drawn without dots, so a value with no neighbour to join (one point, or one
  // between two gaps) would not show: those get a dot. Undefined values are uPlot.join's
  // alignment fillers, always skipped; nulls are gaps unless the series spans them.
  function isolated(u, si, show) {
    if (show) return null;
    const ys = u.data[si];
    const spans = u.series[si].spanGaps;
    const kept = [];
    for (let i = 0; i < ys.length; i++) {
      if (ys[i] !== undefined && !(spans && ys[i] === null)) kept.push(i);
    }
    const out = [];
    for (let k = 0; k < kept.length; k++) {
      const gapBefore = k === 0 || ys[kept[k - 1]] === null;
      const gapAfter = k === kept.length - 1 || ys[kept[k + 1]] === null;
      if (ys[kept[k]] !== null && gapBefore && gapAfter) out.push(kept[k]);
    }
    return out.length ? out : null;
  }

  const fromZero = (u, lo, hi) => [0, hi > 0 ? hi * 1.08 : 1];

  /** A chart in a box of its own. ``spec``: {title, series: [{label, scale?}], time?,
   *  bars?, spanGaps?, axes: {y, y2}, xLabel?, xRange?: (u, lo, hi) => [lo, hi], yMax?,
   *  empty?}.
   *  Returns {box, set(data), setSeries(labels)}; the plot is made on the first data. */
  function chart(id, spec) {
    const box = el("div", {className: "chart", "data-chart": id, "data-points": "0"},
                   [el("h3", {text: spec.title})]);
    const holder = el("div", {className: "plot"});
    const empty = noData(spec.empty || "no data");
    box.append(holder, empty);
    holder.style.display = "none";
    let plot = null;
    let labels = spec.series.map((s) => s.label);

    function seriesOptions(s, i) {
      const color = COLORS[i % COLORS.length];
      const out = {label: s.label, stroke: color, width: 1.5, scale: s.scale || "y",
                   spanGaps: !!spec.spanGaps,
                   points: {show: false, size: 7, fill: color, filter: isolated}};
      if (s.scale === "y2") out.dash = [6, 4];  // the right-hand axis's series: dashed
      if (s.dash) out.dash = s.dash;
      if (s.dots) out.points = {show: true, size: 6, fill: color};
      if (s.marker) {  // points only: a mark on the chart, no line
        out.width = 0;
        out.paths = () => null;
        out.points = {show: true, size: 14, fill: "#16a34a", stroke: "#14532d", width: 2};
      }
      if (spec.bars) {
        out.fill = color + "99";
        out.paths = uPlot.paths.bars({size: [0.92, Infinity]});
        out.points = {show: false};
      }
      return out;
    }
    function options() {
      const axes = [{label: spec.xLabel || null},
                    {scale: "y", label: (spec.axes && spec.axes.y) || null}];
      const scales = {x: {time: !!spec.time},
                      y: {range: spec.yMax ? () => [0, spec.yMax] : fromZero}};
      if (spec.series.some((s) => s.scale === "y2")) {
        axes.push({scale: "y2", side: 1, grid: {show: false}, label: spec.axes.y2 || null});
        scales.y2 = {range: fromZero};
      }
      if (spec.xRange) scales.x.range = spec.xRange;
      return {
        width: chartWidth(box), height: spec.height || 220, axes: axes, scales: scales,
        series: [{label: spec.xLabel || (spec.time ? "time" : "x")}]
          .concat(spec.series.map(seriesOptions)),
        legend: {live: false}, cursor: {drag: {x: true, y: false}},
      };
    }
    /** ``data`` = [xs, ys1, ...] in the order of the current series. */
    function set(data) {
      const points = countPoints(data);
      box.dataset.points = String(points);
      empty.style.display = points ? "none" : "";
      holder.style.display = points ? "" : "none";
      if (!points) return;
      if (plot === null) {
        plot = new uPlot(options(), data, holder);
        charts.push({plot: plot, box: box});
      } else {
        plot.setData(data);
      }
    }
    /** Change the series (an error class appeared, a User class joined) without a new plot. */
    function setSeries(next) {
      if (next.join("\u0000") === labels.join("\u0000")) return;
      spec.series = next.map((label) => ({label: label}));
      if (plot !== null) {
        for (let i = plot.series.length - 1; i >= 1; i--) plot.delSeries(i);
        spec.series.forEach((s, i) => plot.addSeries(seriesOptions(s, i)));
      }
      labels = next.slice();
    }
    return {box: box, set: set, setSeries: setSeries, labels: () => labels};
  }

  /* -- the serving curve ------------------------------------------------------------- */
  const CURVE_METRICS = [["ttft_p99_ms", "TTFT p99 (ms)"], ["itl_p99_ms", "ITL p99 (ms)"],
                         ["e2el_p99_ms", "E2E p99 (ms)"]];
  const CURVE_X = [["request_throughput", "achieved requests/s"],
                   ["output_throughput", "achieved output tokens/s"]];

  /** The serving curve: each metric's p99 against achieved requests/s and output tokens/s,
   *  one point per stage (or run), the objective's bound dashed, the capacity marked.
   *  ``curve`` as in the report: {unit, points, thresholds, capacity}; ``names`` labels
   *  the points (runs of a comparison) instead of their loads. */
  function servingCurve(curve, id, names) {
    const points = (curve && curve.points) || [];
    const unit = curve.unit || "users";
    const grid = el("div", {className: "grid"});
    const capacity = points.find((p) => !missing(curve.capacity) && p.load === curve.capacity);
    const load = (v) => missing(v) ? "-" : num(v, v % 1 ? 2 : 0);
    for (const [metric, title] of CURVE_METRICS) {
      const bound = (curve.thresholds || {})[metric];
      for (const [xKey, xLabel] of CURVE_X) {
        const sorted = points.filter((p) => !missing(p[xKey]) && !missing(p[metric]))
          .slice().sort((a, b) => a[xKey] - b[xKey]);
        const series = [{label: "p99", dots: true}];
        if (!missing(bound)) series.push({label: "objective " + num(bound) + " ms", dash: [6, 4]});
        if (capacity) series.push({label: "capacity " + load(curve.capacity) + " " + unit,
                                   marker: true});
        const c = chart(id + "-" + metric + "-" + xKey, {
          title: title + " vs " + xLabel, xLabel: xLabel, series: series,
          xRange: (u, lo, hi) => [0, hi > 0 ? hi * 1.08 : 1],
          empty: "no stage measured yet"});
        const data = [sorted.map((p) => p[xKey]), sorted.map((p) => p[metric])];
        if (!missing(bound)) data.push(sorted.map(() => bound));
        if (capacity) data.push(sorted.map((p) => (p === capacity ? p[metric] : null)));
        c.set(data);
        grid.append(c.box);
      }
    }
    const verdict = (p) => missing(p.passed) ? "-" : el("span", {}, [badge(p.passed)]);
    const rows = points.map((p, i) => Object.assign({}, p, {
      _className: capacity === p ? "capacity" : null, _name: names ? names[i] : null}));
    const columns = [
      names ? {title: "run", value: (p) => p._name}
            : {title: unit === "req/s" ? "rate (req/s)" : "users", num: true,
               value: (p) => load(p.load)},
      {title: "requests", num: true, value: (p) => num(p.requests, 0)},
      {title: "req/s", num: true, value: (p) => num(p.request_throughput)},
      {title: "output tok/s", num: true, value: (p) => num(p.output_throughput)},
      {title: "TTFT p99", num: true, value: (p) => num(p.ttft_p99_ms)},
      {title: "ITL p99", num: true, value: (p) => num(p.itl_p99_ms)},
      {title: "E2E p99", num: true, value: (p) => num(p.e2el_p99_ms)},
      {title: "error rate", num: true, value: (p) => pct(p.error_rate)},
      {title: "objectives", value: verdict},
    ];
    return el("div", {className: "serving-curve", "data-points": String(points.length)},
              [grid, table(columns, rows, {className: "data curve"})]);
  }

  /** Destroy the plots whose boxes left the page (a panel redrawn on the live page). */
  function prune() {
    for (let i = charts.length - 1; i >= 0; i--) {
      if (!charts[i].box.isConnected) {
        charts[i].plot.destroy();
        charts.splice(i, 1);
      }
    }
  }

  /** Fit every plot to its box (or to the print width while printing). */
  function resizeAll() {
    for (const c of charts) {
      const width = chartWidth(c.box);
      if (Math.abs(width - c.plot.width) > 2) c.plot.setSize({width: width, height: c.plot.height});
    }
  }
  // Printing: beforeprint comes before the print media applies, so a flag (not the media
  // query) says which width to use; the media query's change covers print emulation.
  function printMode(on) {
    if (printing === on) return;
    printing = on;
    resizeAll();
  }
  window.addEventListener("resize", () => { if (!printing) resizeAll(); });
  window.addEventListener("beforeprint", () => printMode(true));
  window.addEventListener("afterprint", () => printMode(false));
  if (window.matchMedia) {
    const media = window.matchMedia("print");
    const onChange = (event) => printMode(event.matches);
    if (media.addEventListener) media.addEventListener("change", onChange);
    else if (media.addListener) media.addListener(onChange);
    printing = media.matches;
  }

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
     errors: true, series: [{label: "errors"}]},
    {id: "ts-lag", title: "Load generator's event-loop lag p99 (ms)", axes: {y: "ms"},
     series: [{label: "lag p99", key: "lag_p99_ms"}]},
  ];

  /** ``points`` with a null row where buckets are missing, so lines break over the gap
   *  instead of joining two far points as if the run went on steadily. */
  function withGaps(points, width) {
    const out = [];
    for (let i = 0; i < points.length; i++) {
      if (i > 0 && points[i].t - points[i - 1].t > width * 1.5) {
        out.push({t: points[i - 1].t + width, gap: true});
      }
      out.push(points[i]);
    }
    return out;
  }

  /** The time charts in ``container`` (ids suffixed with ``suffix``, e.g. "-2"); returns
   *  {set(points, width)}, which updates them in place. */
  function timeSeries(container, suffix) {
    const made = TIME_SERIES.map((spec) => {
      const c = chart(spec.id + (suffix || ""), {title: spec.title, axes: spec.axes,
        time: true, series: spec.series.map((s) => ({label: s.label, scale: s.scale})),
        xRange: timeRange,
        empty: "no data"});
      container.append(c.box);
      return {spec: spec, chart: c};
    });
    let classes = [];  // error classes in order of first appearance: new ones go last
    let step = 1;
    // At least ten points wide: a run's first seconds would otherwise stretch over the
    // whole axis (and uPlot gives a single time point a thousand days of it).
    function timeRange(u, lo, hi) {
      const xs = u.data[0];
      const first = xs[0], last = xs[xs.length - 1];
      if (xs.length && last - first < 10 * step) return [first - step, first + 10 * step];
      return [lo, hi];
    }

    function set(points, width) {
      step = width || 1;
      const rows = withGaps(points || [], step);
      for (const p of rows) {
        for (const k of Object.keys(p.errors || {})) if (!classes.includes(k)) classes.push(k);
      }
      const xs = rows.map((p) => p.t);
      for (const {spec, chart: c} of made) {
        let ys;
        if (spec.errors) {
          // Before any error one flat "errors" line (at 0) shows that none happened.
          c.setSeries(classes.length ? classes : ["errors"]);
          // A gap, or a live second the workers have not reported yet: no value.
          ys = (classes.length ? classes : [null]).map((k) => rows.map((p) =>
            p.gap || missing(p.failed) ? null :
            (k === null ? (p.failed || 0) : ((p.errors || {})[k] || 0)) / (width || 1)));
        } else {
          ys = spec.series.map((s) => rows.map((p) => missing(p[s.key]) ? null : p[s.key]));
        }
        c.set([xs, ...ys]);
      }
    }
    return {set: set};
  }

  /* -- distributions ----------------------------------------------------------------- */
  const METRICS = {ttft_ms: "TTFT", itl_ms: "ITL", tpot_ms: "TPOT", e2el_ms: "E2E"};

  /** The value at fraction ``q`` of a CDF [[value, fraction], ...]. */
  function quantile(cdf, q) {
    const found = cdf.find((p) => p[1] >= q);
    return (found || cdf[cdf.length - 1])[0];
  }

  /** A CDF as uPlot columns [values, fractions], each value once (with its top fraction):
   *  few distinct values (one request, whole milliseconds) repeat in the percentiles. */
  function steps(cdf) {
    const xs = [], ys = [];
    for (const [x, y] of cdf) {
      if (xs.length && xs[xs.length - 1] === x) ys[ys.length - 1] = y;
      else { xs.push(x); ys.push(y); }
    }
    return [xs, ys];
  }

  /** CDFs on one chart, one line per {label, plot}; ``set(entries)`` updates it. A far tail
   *  (one stalled request) would squeeze every curve to the left edge: past 3x the p99.9
   *  the axis stops at the p99.9 (the title says so). */
  function cdfChart(id, title, entries) {
    let cut = null;
    const c = chart(id, {title: title, spanGaps: true, xLabel: "ms", yMax: 1,
                         axes: {y: "fraction"}, series: [], empty: "no completed requests",
                         xRange: (u, lo, hi) => cut === null || cut >= hi ?
                           uPlot.rangeNum(lo, hi, 0.02, true) : [lo, cut]});
    const heading = c.box.querySelector("h3");
    function set(list) {
      const usable = list.filter((e) => e.plot && e.plot.cdf && e.plot.cdf.length);
      c.setSeries(usable.map((e) => e.label));
      if (!usable.length) { c.set([[]]); return; }
      const p999 = Math.max(0, ...usable.map((e) => quantile(e.plot.cdf, 0.999)));
      const top = Math.max(0, ...usable.map((e) => e.plot.cdf[e.plot.cdf.length - 1][0]));
      cut = top > 3 * p999 && p999 > 0 ? p999 * 1.05 : null;
      heading.textContent = title + (cut === null ? "" : " (to the p99.9)");
      c.set(uPlot.join(usable.map((e) => steps(e.plot.cdf))));
    }
    set(entries || []);
    return {box: c.box, set: set};
  }

  /** A histogram of DistributionPlot bins [[low, high, count], ...], bars at bin centres. */
  function histogram(id, title) {
    let edges = [0, 1];
    const c = chart(id, {title: title, bars: true, series: [{label: "requests"}],
                         axes: {y: "count"}, xLabel: "ms", empty: "no completed requests",
                         xRange: () => edges});
    const heading = c.box.querySelector("h3");
    function set(plot) {
      if (!plot || !plot.bins || !plot.bins.length) { c.set([[]]); return; }
      let bins = plot.bins;
      const lo = bins[0][0], hi = bins[bins.length - 1][1];
      edges = [lo, hi];  // whole first and last bars, not cut at their centres
      if (hi - lo <= Math.max(Math.abs(lo), 1) * 1e-3) {
        // Every sample the same value (one request): its bins are too thin to see, so
        // one bar is drawn with some room on both sides.
        const n = bins.reduce((sum, b) => sum + b[2], 0);
        const pad = Math.max(Math.abs(lo) * 0.1, 1);
        const side = pad / 4;  // empty neighbours give the bar a sensible width
        bins = [[lo - side, lo - side, null], [lo, hi, n], [hi + side, hi + side, null]];
        edges = [lo - pad, hi + pad];
      }
      const samples = num(plot.count, 0) + (plot.count === 1 ? " sample" : " samples");
      heading.textContent = title + " (" + samples + (plot.above ? ", " + num(plot.above, 0) +
        " past the last bin, counted in it" : "") + ")";
      c.set([bins.map((b) => (b[0] + b[1]) / 2), bins.map((b) => b[2])]);
    }
    return {box: c.box, set: set};
  }

  /** A histogram and a CDF per timing in ``container``; when several scopes (User classes)
   *  are given, the CDF has one line each. Returns {set(plots)} to update in place. */
  function distributions(container, plots, suffix) {
    const grid = el("div", {className: "grid"});
    const note = noData("no completed requests");
    container.append(note, grid);
    const made = {};

    function set(list) {
      list = list || [];
      for (const metric of Object.keys(METRICS)) {
        const mine = list.filter((p) => p.metric === metric);
        const all = mine.find((p) => p.scope === "all");
        if (!all && !made[metric]) continue;  // never measured: no empty boxes
        if (!made[metric]) {
          made[metric] = {
            hist: histogram("hist-" + metric + (suffix || ""), METRICS[metric] + " histogram"),
            cdf: cdfChart("cdf-" + metric + (suffix || ""), METRICS[metric] + " CDF", []),
          };
          grid.append(made[metric].hist.box, made[metric].cdf.box);
        }
        const scopes = mine.length > 1 ? mine.filter((p) => p.scope !== "all") : mine;
        made[metric].hist.set(all);
        made[metric].cdf.set(scopes.map((p) => ({label: p.scope, plot: p})));
      }
      const any = Object.keys(made).length > 0;
      note.hidden = any;
      grid.hidden = !any;
    }
    set(plots);
    return {set: set};
  }

  return {el, section, noData, missing, num, pct, when, text, pick, table, keyValues, blockLabel,
          servingCurve, withGaps,
          summaryTable, metricsTable, KEY_METRICS, delta, badge, sloTable, errorTable,
          answerWarnings, modelNotes, phaseTable, PHASES_NOTE, arrivalValues, figure, serverPercentile,
          serverTables,
          chart, timeSeries, distributions, cdfChart, METRICS, prune, resizeAll};
})();
