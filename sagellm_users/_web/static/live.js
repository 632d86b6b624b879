/* The live page at /llm/: polls ``stats`` and ``timeline`` every 2 s and updates the page
 * in place (charts through uPlot's setData, never rebuilt per poll).
 *
 * URLs are relative, so the page works under Locust's --web-base-path. After each poll
 * that got both answers, <body data-updates="n"> counts up (tests wait on it). A failed
 * poll only shows a note: the page keeps what it has and tries again.
 */
"use strict";

(() => {
  const D = SageDash;
  const el = D.el;
  const POLL_MS = 2000;
  const $ = (id) => document.getElementById(id);
  const body = (id) => $(id).querySelector(".body");

  const series = D.timeSeries($("charts"), "");
  const distributions = D.distributions(body("distributions"), [], "");
  let closed = [];     // final points: they can no longer change
  let after = 0;       // the start of the last final point held: the next poll asks past it
  let width = null;    // seconds per point; when the server coarsens it, we start over
  let tail = [];       // provisional points, replaced by each poll
  let updates = 0;
  let distributionsKey = "";
  let run = null;      // the run the charts hold: a new test starts them afresh
  let curveKey = "";   // the serving curve is redrawn only when a stage was added

  function status(text, bad) {
    const box = $("status");
    box.textContent = text;
    box.className = bad ? "status bad" : "status";
  }

  /** JSON from ``url``; an Error with ``login`` set when web login stands in the way. */
  async function getJson(url) {
    // redirect "manual": a login redirect must not be followed into an HTML page.
    const response = await fetch(url, {cache: "no-store", credentials: "same-origin",
                                       redirect: "manual"});
    if (response.type === "opaqueredirect" || response.status === 401 ||
        response.status === 403) {
      throw Object.assign(new Error("login needed"), {login: true});
    }
    if (!response.ok) throw new Error(url + ": HTTP " + response.status);
    return response.json();
  }

  /* -- timeline ---------------------------------------------------------------------- */
  /** Take one /timeline answer; false when its point width changed (refetch from 0). */
  function takeTimeline(answer) {
    if (width !== null && answer.width_s !== width) {
      closed = []; after = 0; tail = []; width = null;
      return false;
    }
    width = answer.width_s || 1;
    for (const p of answer.points || []) {
      if (p.t > after) { closed.push(p); after = p.t; }
    }
    tail = (answer.open || []).filter((p) => p.t > after);
    series.set(closed.concat(tail), width);
    return true;
  }

  function lastPoint() {
    return tail.length ? tail[tail.length - 1] : closed.length ? closed[closed.length - 1] : null;
  }

  /* -- stats ------------------------------------------------------------------------- */
  function tile(label, value) {
    return el("div", {className: "tile"}, [el("div", {className: "tile-value", text: value}),
                                           el("div", {className: "tile-label", text: label})]);
  }

  function showTiles(stats) {
    const recent = stats.last_10s || {};
    const last = lastPoint();
    // The server's own count when it sends one, else the newest point's sample.
    const inFlight = !D.missing(stats.in_flight) ? stats.in_flight : last ? last.in_flight : null;
    $("tiles").replaceChildren(
      tile("TTFT p50 (ms)", D.num(D.pick(recent.ttft_ms, "p50"))),
      tile("TTFT p99 (ms)", D.num(D.pick(recent.ttft_ms, "p99"))),
      tile("ITL p50 (ms)", D.num(D.pick(recent.itl_ms, "p50"))),
      tile("ITL p99 (ms)", D.num(D.pick(recent.itl_ms, "p99"))),
      tile("TPOT p50 (ms)", D.num(D.pick(recent.tpot_ms, "p50"))),
      tile("output tok/s", D.num(recent.output_throughput)),
      tile("req/s", D.num(recent.request_throughput)),
      tile("in flight", D.num(inFlight, 0)),
      tile("error rate", D.pct(recent.error_rate)),
    );
  }

  /** Two rows per User class and endpoint: the last 10 s, then the whole test. */
  function showEndpoints(stats) {
    const key = (b) => (b.user || "") + "\u0000" + (b.name || "");
    const whole = new Map(((stats.cumulative || {}).by_user || []).map((b) => [key(b), b]));
    const recent = new Map((stats.recent_by_user || []).map((b) => [key(b), b]));
    const rows = [];
    for (const k of new Set([...whole.keys(), ...recent.keys()])) {
      const block = whole.get(k) || recent.get(k);
      rows.push({user: block.user || "-", name: block.name || "-", span: "last 10 s",
                 block: recent.get(k) || null, _className: "first"});
      rows.push({user: "", name: "", span: "whole test", block: whole.get(k) || null});
    }
    const count = (field) => (r) => r.block ? D.num(r.block[field], 0) : "-";
    const ms = (metric, p) => (r) => r.block ? D.num(D.pick(r.block[metric], p)) : "-";
    body("endpoints").replaceChildren(rows.length ? D.table([
      {title: "User class", value: (r) => r.user},
      {title: "endpoint", value: (r) => r.name},
      {title: "over", value: (r) => r.span},
      {title: "requests", num: true, value: count("requests")},
      {title: "failed", num: true, value: count("failed")},
      {title: "TTFT p50", num: true, value: ms("ttft_ms", "p50")},
      {title: "TTFT p99", num: true, value: ms("ttft_ms", "p99")},
      {title: "TTST p50", num: true, value: ms("ttst_ms", "p50")},
      ...(rows.some((r) => r.block && r.block.reasoning_requests) ? [
        {title: "TTFO p50", num: true, value: ms("ttfo_ms", "p50")},
        {title: "reasoning tok/req", num: true, value: (r) => r.block &&
          r.block.reasoning_requests ? D.num(r.block.total_reasoning_tokens /
                                             r.block.reasoning_requests, 1) : "-"},
      ] : []),
      ...(rows.some((r) => r.block && r.block.cache_reported) ? [
        {title: "prompt cache hits", num: true, value: (r) => r.block &&
          !D.missing(r.block.cache_hit_share) ? D.pct(r.block.cache_hit_share) : "-"},
      ] : []),
      ...(rows.some((r) => r.block && r.block.tokens_per_step >= 1.05) ? [
        {title: "tokens/step", num: true,
         value: (r) => r.block ? D.num(r.block.tokens_per_step) : "-"},
      ] : []),
      {title: "ITL p50", num: true, value: ms("itl_ms", "p50")},
      {title: "ITL p99", num: true, value: ms("itl_ms", "p99")},
      {title: "TPOT p50", num: true, value: ms("tpot_ms", "p50")},
      {title: "E2E p99", num: true, value: ms("e2el_ms", "p99")},
    ], rows, {className: "data endpoints"}) : D.noData("no requests yet"),
    ...D.modelNotes((stats.cumulative || {}).total));
  }

  /** Fill the panel ``id`` with ``parts``; hidden when there are none. */
  function showPanel(id, parts) {
    $(id).hidden = !parts;
    if (parts) body(id).replaceChildren(...parts);
  }

  /** Seconds since the epoch as "YYYY-MM-DD HH:MM:SS UTC". */
  function epoch(seconds) {
    return D.missing(seconds) ? "-" : D.when(new Date(seconds * 1000).toISOString());
  }

  /** The session's earlier runs, newest first, each with its reports. */
  function showRuns(runs) {
    const finished = (runs && runs.finished) || [];
    showPanel("runs", finished.length ? [D.table([
      {title: "run", num: true, value: (r) => "#" + r.number},
      {title: "started", value: (r) => epoch(r.started)},
      {title: "stopped", value: (r) => epoch(r.stopped)},
      {title: "requests", num: true, value: (r) => D.num(r.requests, 0)},
      {title: "failed", num: true, value: (r) => D.num(r.failed, 0)},
      {title: "output tokens", num: true, value: (r) => D.num(r.output_tokens, 0)},
      {title: "report", value: (r) => el("span", {}, [
        el("a", {href: r.report_html, download: "llm-run" + r.number + ".html",
                 text: "HTML"}),
        document.createTextNode(" "),
        el("a", {href: r.report_json, download: "llm-run" + r.number + ".json",
                 text: "JSON"})])},
    ], finished, {className: "data runs"})] : null);
  }

  function showStats(stats) {
    const cumulative = stats.cumulative || {};
    const state = stats.state || "unknown";
    const number = stats.runs ? stats.runs.number : null;
    $("state").textContent = state + ", " + D.num(stats.user_count, 0) + " users" +
      (number ? ", run #" + number : "");
    showRuns(stats.runs);
    $("state").className = "state " + state.replace(/[^a-z_-]/gi, "");
    showTiles(stats);
    showEndpoints(stats);
    const lost = cumulative.lost_workers || [];
    $("partial").hidden = !lost.length;
    $("partial").replaceChildren(...lost.map((w) => el("p", {className: "verdict fail",
      text: "PARTIAL: worker " + w.worker + " was lost at " + D.when(w.lost_at) + " (last " +
            "report " + (w.last_report_at ? D.when(w.last_report_at) : "never") + "); the " +
            "test goes on with the others, and what it measured after its last report is " +
            "missing"})));
    const slos = cumulative.slos || [];
    showPanel("slos", slos.length ? D.sloTable(cumulative) : null);
    const curve = cumulative.curve;
    const curveNow = curve ? JSON.stringify([curve.points.length, curve.capacity]) : "";
    if (curveNow !== curveKey) {
      curveKey = curveNow;
      showPanel("curve", curve && curve.points.length ? [D.servingCurve(curve, "live-curve")]
                                                      : null);
    }
    const servers = cumulative.server || [];
    showPanel("server", servers.length ? D.serverTables(servers) : null);
    const arrivals = cumulative.arrivals;
    showPanel("arrivals", arrivals ? [D.arrivalValues(arrivals, cumulative.workload)] : null);
    const phases = D.phaseTable(cumulative.total);
    showPanel("phases", phases ? [el("p", {className: "note", text: D.PHASES_NOTE}), phases]
                               : null);
    body("errors").replaceChildren(D.errorTable(cumulative.total),
                                   ...D.answerWarnings(cumulative.total));
    // The CDFs only move when new requests ended: skip the redraw otherwise.
    const plots = cumulative.distributions || [];
    const key = plots.map((p) => p.scope + "/" + p.metric + "/" + p.count).join(",");
    if (key !== distributionsKey) {
      distributionsKey = key;
      distributions.set(plots);
    }
  }

  /* -- polling ----------------------------------------------------------------------- */
  async function poll() {
    try {
      const [stats, timeline] = await Promise.all([getJson("stats"),
                                                   getJson("timeline?after=" + after)]);
      const number = stats.runs ? stats.runs.number : null;
      if (run !== null && number !== run) {
        // A new test: its timeline starts from nothing, and so do the charts.
        closed = []; after = 0; tail = []; width = null; distributionsKey = ""; curveKey = "";
        takeTimeline(await getJson("timeline?after=0"));
      } else if (!takeTimeline(timeline)) {
        takeTimeline(await getJson("timeline?after=0"));
      }
      run = number;
      showStats(stats);
      D.prune();
      updates += 1;
      document.body.dataset.updates = String(updates);
      status("updated " + new Date().toLocaleTimeString(), false);
    } catch (error) {
      if (error && error.login) {
        status("Not logged in: log in to Locust's web UI (../), then reload this page.", true);
      } else {
        status("connection lost, retrying every " + POLL_MS / 1000 + " s", true);
      }
    } finally {
      window.setTimeout(poll, POLL_MS);
    }
  }

  poll();
})();
