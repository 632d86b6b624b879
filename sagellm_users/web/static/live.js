/* The live page at /llm/: polls ``stats`` and ``timeline`` (relative URLs, so it works
 * under Locust's --web-base-path) and updates the charts in place. */
"use strict";

(() => {
  const D = SageDash;
  const el = D.el;
  const POLL_MS = 2000;
  const $ = (id) => document.getElementById(id);

  const series = D.timeSeries($("charts"));
  let closed = [];        // points that can no longer change
  let after = 0;          // the start of the last closed point held
  let width = null;       // seconds per point: when it changes, everything is fetched again
  let updates = 0;

  function status(text, bad) {
    const box = $("status");
    box.textContent = text;
    box.className = bad ? "status bad" : "status";
  }

  async function getJson(url) {
    const response = await fetch(url, {cache: "no-store", credentials: "same-origin",
                                       redirect: "manual"});
    if (response.type === "opaqueredirect" || response.status === 401 ||
        response.status === 302) {
      const error = new Error("login");
      error.login = true;
      throw error;
    }
    if (!response.ok) throw new Error(url + ": HTTP " + response.status);
    return response.json();
  }

  function tile(label, value) {
    return el("div", {className: "tile"}, [el("div", {className: "tile-value", text: value}),
                                           el("div", {className: "tile-label", text: label})]);
  }

  function showTiles(stats, inFlight) {
    const recent = stats.last_10s || {};
    const box = $("tiles");
    box.replaceChildren(
      tile("TTFT p50 ms", D.num(D.pick(recent.ttft_ms, "p50"))),
      tile("TTFT p99 ms", D.num(D.pick(recent.ttft_ms, "p99"))),
      tile("ITL p50 ms", D.num(D.pick(recent.itl_ms, "p50"))),
      tile("ITL p99 ms", D.num(D.pick(recent.itl_ms, "p99"))),
      tile("TPOT p50 ms", D.num(D.pick(recent.tpot_ms, "p50"))),
      tile("output tok/s", D.num(recent.output_throughput)),
      tile("req/s", D.num(recent.request_throughput)),
      tile("in flight", D.num(inFlight, 0)),
      tile("error rate", D.pct(recent.error_rate)),
    );
  }

  function showEndpoints(stats) {
    const cumulative = new Map((stats.cumulative.by_user || [])
      .map((b) => [b.user + "\u0000" + b.name, b]));
    const recent = new Map((stats.recent_by_user || []).map((b) => [b.user + "\u0000" + b.name, b]));
    const keys = [...new Set([...cumulative.keys(), ...recent.keys()])];
    const rows = keys.map((k) => ({now: recent.get(k) || null, all: cumulative.get(k) || null,
                                   label: k.replace("\u0000", " ")}));
    const now = (r, metric, p) => r.now ? D.num(D.pick(r.now[metric], p)) : "-";
    const all = (r, metric, p) => r.all ? D.num(D.pick(r.all[metric], p)) : "-";
    $("endpoints").replaceChildren(rows.length ? D.table([
      {title: "User class and endpoint", value: (r) => r.label},
      {title: "requests", num: true, value: (r) => r.all ? D.num(r.all.requests, 0) : "-"},
      {title: "failed", num: true, value: (r) => r.all ? D.num(r.all.failed, 0) : "-"},
      {title: "TTFT p50 (10 s)", num: true, value: (r) => now(r, "ttft_ms", "p50")},
      {title: "TTFT p99 (10 s)", num: true, value: (r) => now(r, "ttft_ms", "p99")},
      {title: "ITL p50 (10 s)", num: true, value: (r) => now(r, "itl_ms", "p50")},
      {title: "ITL p99 (10 s)", num: true, value: (r) => now(r, "itl_ms", "p99")},
      {title: "TPOT p50 (10 s)", num: true, value: (r) => now(r, "tpot_ms", "p50")},
      {title: "TTFT p50 (all)", num: true, value: (r) => all(r, "ttft_ms", "p50")},
      {title: "TTFT p99 (all)", num: true, value: (r) => all(r, "ttft_ms", "p99")},
      {title: "ITL p99 (all)", num: true, value: (r) => all(r, "itl_ms", "p99")},
      {title: "TPOT p50 (all)", num: true, value: (r) => all(r, "tpot_ms", "p50")},
      {title: "E2E p99 (all)", num: true, value: (r) => all(r, "e2el_ms", "p99")},
    ], rows, {className: "data"}) : D.noData("no requests yet"));
  }

  function showPanel(id, parts) {
    const box = $(id);
    box.hidden = !parts;
    if (parts) box.replaceChildren(box.firstElementChild, ...parts);
  }

  let distributionsDrawn = "";
  let distributionsAt = 0;
  function showDistributions(stats) {
    const plots = stats.cumulative.distributions || [];
    // Redrawn when the sample counts moved, at most every 10 s (each redraw builds eight
    // charts; the time charts above are the live view).
    const key = plots.map((p) => p.scope + p.metric + p.count).join(",");
    const now = Date.now();
    if (key === distributionsDrawn || now - distributionsAt < 10000) return;
    distributionsDrawn = key;
    distributionsAt = now;
    const holder = el("div");
    D.distributions(holder, plots, "live-");
    $("distributions").replaceChildren($("distributions").firstElementChild, holder);
  }

  function showStats(stats) {
    const cumulative = stats.cumulative;
    $("state").textContent = (stats.state || "-") + ", " + D.num(stats.user_count, 0) + " users";
    showTiles(stats, stats.in_flight);
    showEndpoints(stats);
    const slos = cumulative.slos || [];
    showPanel("slos", slos.length ? D.sloTable(cumulative) : null);
    showPanel("server", cumulative.server && cumulative.server.length ?
                        D.serverTables(cumulative.server) : null);
    $("errors").replaceChildren($("errors").firstElementChild, D.errorTable(cumulative.total));
    showDistributions(stats);
  }

  function showTimeline(answer) {
    if (width !== answer.width_s) {  // coarsened (or first call): start over
      if (width !== null) { closed = []; after = 0; width = answer.width_s; return false; }
      width = answer.width_s;
    }
    closed = closed.concat(answer.points || []);
    if (closed.length) after = closed[closed.length - 1].t;
    series.set(closed.concat(answer.open || []), width);
    return true;
  }

  async function poll() {
    try {
      const [stats, timeline] = await Promise.all([getJson("stats"),
                                                   getJson("timeline?after=" + after)]);
      showStats(stats);
      if (!showTimeline(timeline)) showTimeline(await getJson("timeline?after=0"));
      D.prune();
      updates += 1;
      document.body.dataset.updates = String(updates);
      status("updated " + new Date().toLocaleTimeString(), false);
    } catch (error) {
      if (error.login) status("log in to Locust's web UI first (../), then reload", true);
      else status("connection lost, retrying", true);
    } finally {
      window.setTimeout(poll, POLL_MS);
    }
  }

  poll();
})();
