/* The supervisor dashboard (web/supervisor/pages.py): fetches the figures of each chart
   and table from the analytics API and draws them with uPlot (static/workspace/vendor).
   The page hands over the interval, time zone, filters, chart steps and the queues'
   targets in #dashboard[data-config]. Each panel's CSV button posts the same request
   with ?format=csv and saves the answer as a file. Reads only.

   For tests and curious users: window.postroomDashboard holds the requests sent, the
   JSON answers and the uPlot charts. */
(function () {
  "use strict";

  var API = "/api/v1/analytics";
  var COLORS = ["#0b5cad", "#1d7a3a", "#a15c00", "#8a3ab9", "#b3261e", "#00838f", "#5c6370"];
  var root, cfg, csrf;
  var state = {requests: {}, data: {}, charts: {}, ready: {}};
  window.postroomDashboard = state;

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    return e;
  }

  function duration(ms) {
    /* Milliseconds -> "45 s", "3 min 05 s", "2 h 07 min", "3 d 4 h" (as the pages write it). */
    if (ms === null || ms === undefined || isNaN(ms)) { return "—"; }
    var s = Math.max(0, Math.floor(ms / 1000));
    function pad(n) { return n < 10 ? "0" + n : String(n); }
    if (s < 60) { return s + " s"; }
    if (s < 3600) { return Math.floor(s / 60) + " min " + pad(s % 60) + " s"; }
    if (s < 86400) { return Math.floor(s / 3600) + " h " + pad(Math.floor(s % 3600 / 60)) + " min"; }
    return Math.floor(s / 86400) + " d " + Math.floor(s % 86400 / 3600) + " h";
  }

  function post(path, body, asCsv) {
    return fetch(API + path + (asCsv ? "?format=csv" : ""), {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": asCsv ? "text/csv" : "application/json",
                "X-CSRF-Token": csrf},
      body: JSON.stringify(body)
    });
  }

  function setState(key, text, isError) {
    var s = document.querySelector('[data-state="' + key + '"]');
    if (s) { s.textContent = text; s.classList.toggle("error", !!isError); }
  }

  function filterOf(dims) {
    var preds = [];
    if (dims.indexOf("queueId") >= 0 && cfg.queue) { preds.push({dimension: "queueId", value: cfg.queue}); }
    if (dims.indexOf("userId") >= 0 && cfg.agent) { preds.push({dimension: "userId", value: cfg.agent}); }
    return preds.length ? {type: "and", predicates: preds} : undefined;
  }

  function base(extra) {
    var body = {interval: cfg.interval, timeZone: cfg.timeZone};
    for (var k in extra) { if (extra[k] !== undefined) { body[k] = extra[k]; } }
    return body;
  }

  /* What each panel asks for: [path, body]. */
  function requests() {
    return {
      offered: ["/conversations/aggregates/query", base({granularity: cfg.granularity,
        filter: filterOf(["queueId"]), metrics: ["nOffered", "tAnswered"]})],
      sl: ["/conversations/aggregates/query", base({granularity: cfg.granularity, groupBy: ["queueId"],
        filter: filterOf(["queueId"]), metrics: ["oServiceLevel"]})],
      waits: ["/queues/waits/distribution/query", base({filter: filterOf(["queueId", "userId"])})],
      backlog: ["/queues/backlog/query", base({granularity: cfg.granularity, filter: filterOf(["queueId"])})],
      agents: ["/conversations/aggregates/query", base({granularity: null, groupBy: ["userId"],
        filter: filterOf(["queueId", "userId"]),
        metrics: ["nConnected", "tHandle", "tAcw", "tAgentResponseTime"]})],
      users: ["/users/aggregates/query", base({granularity: null, groupBy: ["userId"],
        metrics: ["tAgentRoutingStatus", "tSystemPresence"]})],
      wrapups: ["/conversations/aggregates/query", base({granularity: null, groupBy: ["wrapUpCode"],
        filter: filterOf(["queueId", "userId"]), metrics: ["nConnected", "tHandle"]})]
    };
  }

  /* -- charts -------------------------------------------------------------------------- */

  function xs() { return cfg.edges.map(function (t) { return Date.parse(t) / 1000; }); }

  function indexOfInterval(interval) { return cfg.edges.indexOf(interval.split("/")[0]); }

  function chartWidth(box) { return Math.max(280, Math.floor(box.clientWidth || 480)); }

  function draw(key, opts, data) {
    var box = document.querySelector('[data-chart="' + key + '"]');
    if (!box || !window.uPlot) { return; }
    if (state.charts[key]) { state.charts[key].destroy(); }
    opts.width = chartWidth(box);
    opts.height = 220;
    opts.legend = {show: true};
    opts.cursor = opts.cursor || {};
    state.charts[key] = new window.uPlot(opts, data, box);
    state.ready[key] = true;
    root.dataset["drawn" + key.charAt(0).toUpperCase() + key.slice(1)] = "1";
  }

  function timeOpts(yLabel) {
    return {
      scales: {x: {time: true}},
      tzDate: function (ts) { return window.uPlot.tzDate(new Date(ts * 1e3), cfg.timeZone); },
      axes: [{}, {label: yLabel}],
      series: [{label: "Time"}]
    };
  }

  function metricsOf(cell) {
    var out = {};
    (cell.metrics || []).forEach(function (m) { out[m.metric + (m.qualifier ? ":" + m.qualifier : "")] = m.stats; });
    return out;
  }

  function drawOffered(json) {
    var n = cfg.edges.length;
    var offered = new Array(n).fill(0), answered = new Array(n).fill(0);
    (json.results || []).forEach(function (r) {
      r.data.forEach(function (d) {
        var i = indexOfInterval(d.interval);
        if (i < 0) { return; }
        var m = metricsOf(d);
        offered[i] += m.nOffered ? m.nOffered.count : 0;
        answered[i] += m.tAnswered ? m.tAnswered.count : 0;
      });
    });
    var opts = timeOpts("conversations");
    var bars = window.uPlot.paths && window.uPlot.paths.bars;
    [["Offered", 0, -1], ["Answered", 1, 1]].forEach(function (s) {
      opts.series.push({label: s[0], stroke: COLORS[s[1]], fill: COLORS[s[1]] + "99", width: 1,
        points: {show: false}, paths: bars ? bars({size: [0.4, 40], align: s[2]}) : undefined});
    });
    draw("offered", opts, [xs(), offered, answered]);
    var total = offered.reduce(function (a, b) { return a + b; }, 0);
    setState("offered", total + " offered, " + answered.reduce(function (a, b) { return a + b; }, 0) + " answered.");
  }

  function drawServiceLevel(json) {
    /* One line per queue and service-level target (the entries' qualifier), each with
       its goal dashed; a queue with one target is labelled with the queue's name. */
    var n = cfg.edges.length, data = [xs()];
    var opts = timeOpts("% within target");
    opts.scales.y = {range: [0, 100]};
    var plans = cfg.serviceTargets || {};
    var queues = (json.results || []).map(function (r) { return r.group.queueId; })
      .filter(function (q) { return q !== null && q !== undefined; });
    if (!queues.length) { queues = cfg.queue ? [cfg.queue] : Object.keys(cfg.targets); }
    var k = 0;
    queues.forEach(function (q) {
      var r = (json.results || []).filter(function (x) { return x.group.queueId === q; })[0];
      var names = (plans[q] || []).map(function (t) { return t.name; });
      var goals = {};
      (plans[q] || []).forEach(function (t) { goals[t.name] = t.percent; });
      var lines = {};
      (r ? r.data : []).forEach(function (d) {
        var i = indexOfInterval(d.interval);
        if (i < 0) { return; }
        (d.metrics || []).forEach(function (m) {
          if (m.metric !== "oServiceLevel" || !m.stats || !m.stats.denominator) { return; }
          var name = m.qualifier || "";
          if (names.indexOf(name) < 0) { names.push(name); }
          if (!lines[name]) { lines[name] = new Array(n).fill(null); }
          lines[name][i] = Math.round(m.stats.ratio * 1000) / 10;
          if (goals[name] === undefined && m.stats.target !== undefined) { goals[name] = m.stats.target; }
        });
      });
      if (!names.length) { names = [""]; }
      names.forEach(function (name) {
        var label = names.length > 1 ? q + " · " + name : q;
        var color = COLORS[k % COLORS.length];
        k += 1;
        opts.series.push({label: label, stroke: color, width: 2, spanGaps: true, points: {show: true}});
        data.push(lines[name] || new Array(n).fill(null));
        var goal = goals[name] !== undefined ? goals[name] : (names.length === 1 ? cfg.targets[q] : undefined);
        if (goal !== undefined) {
          opts.series.push({label: label + " goal " + goal + " %", stroke: color, width: 1, dash: [6, 4],
                            points: {show: false}});
          data.push(new Array(n).fill(goal));
        }
      });
    });
    draw("sl", opts, data);
    setState("sl", "Per target: answered within the target's time (in business hours for a target with a calendar) / (answered + abandoned after the queue's short-abandon time); dashed: the goal.");
  }

  function drawWaits(json) {
    var labels = (json.buckets || []).map(function (b) { return b.label; });
    var x = labels.map(function (_, i) { return i; });
    var opts = {
      scales: {x: {time: false, range: [-0.5, labels.length - 0.5]}},
      axes: [{values: function (u, splits) { return splits.map(function (i) { return labels[i] || ""; }); },
              splits: function () { return x; }},
             {label: "answered conversations"}],
      series: [{label: "Wait", value: function (u, i) { return i === null ? "" : labels[i]; }}]
    };
    var data = [x], results = (json.results || []).filter(function (r) { return r.total > 0; });
    if (!results.length) { results = (json.results || []).slice(0, 1); }
    var bars = window.uPlot.paths && window.uPlot.paths.bars
      ? window.uPlot.paths.bars({size: [0.8 / Math.max(1, results.length), 64]}) : undefined;
    results.forEach(function (r, k) {
      var c = COLORS[k % COLORS.length];
      opts.series.push({label: r.group.queueId === null ? "(no queue)" : r.group.queueId,
                        stroke: c, fill: c + "99", paths: bars, points: {show: false}});
      data.push(r.counts);
    });
    draw("waits", opts, data);
    var total = (json.results || []).reduce(function (a, r) { return a + r.total; }, 0);
    setState("waits", total + " answered conversations, by how long they waited.");
  }

  function drawBacklog(json) {
    var results = json.results || [];
    var times = results.length ? results[0].data.map(function (d) { return Date.parse(d.at) / 1000; }) : [];
    var opts = timeOpts("waiting");
    var data = [times];
    var stepped = window.uPlot.paths && window.uPlot.paths.stepped
      ? window.uPlot.paths.stepped({align: 1}) : undefined;
    results.forEach(function (r, k) {
      opts.series.push({label: r.group.queueId === null ? "(no queue)" : r.group.queueId,
                        stroke: COLORS[k % COLORS.length], width: 2, paths: stepped});
      data.push(r.data.map(function (d) { return d.waiting; }));
    });
    draw("backlog", opts, data);
    setState("backlog", times.length ? "Conversations waiting at each step and now." : "Nothing to show before the range starts.");
  }

  /* -- tables -------------------------------------------------------------------------- */

  function avg(st) { return st && st.count ? st.sum / st.count : null; }

  function statusTimes(metrics, prefix) {
    var parts = [];
    Object.keys(metrics).sort().forEach(function (k) {
      if (k.indexOf(prefix + ":") === 0 && metrics[k].sum) {
        parts.push(k.slice(prefix.length + 1).replace(/_/g, " ") + " " + duration(metrics[k].sum));
      }
    });
    return parts.length ? parts.join(" · ") : "—";
  }

  function fillAgents(json, users) {
    var body = document.querySelector("#agent-table tbody");
    var rows = {}, byUser = {};
    (json.results || []).forEach(function (r) {
      if (r.group.userId) { rows[r.group.userId] = r.data.length ? metricsOf(r.data[0]) : {}; }
    });
    if (users) {
      (users.results || []).forEach(function (r) {
        var m = {};
        (r.data || []).forEach(function (d) {
          var one = metricsOf(d);
          for (var k in one) {
            m[k] = m[k] || {count: 0, sum: 0};
            m[k].count += one[k].count || 0;
            m[k].sum += one[k].sum || 0;
          }
        });
        if (r.group && r.group.userId) { byUser[r.group.userId] = m; }
      });
    }
    var ids = Object.keys(rows);
    Object.keys(byUser).forEach(function (id) { if (ids.indexOf(id) < 0 && (!cfg.agent || id === cfg.agent)) { ids.push(id); } });
    ids.sort(function (a, b) { return (cfg.agents[a] || a).localeCompare(cfg.agents[b] || b); });
    body.textContent = "";
    if (!ids.length) {
      var tr0 = el("tr"), td0 = el("td", "No agent handled a conversation in this range.", "muted");
      td0.colSpan = 7; tr0.appendChild(td0); body.appendChild(tr0);
    }
    ids.forEach(function (id) {
      var m = rows[id] || {}, tr = el("tr");
      tr.dataset.agent = id;
      var th = el("th", cfg.agents[id] || id); th.scope = "row"; tr.appendChild(th);
      var cells = [
        ["handled", m.nConnected ? m.nConnected.count : 0],
        ["handle", duration(avg(m.tHandle))],
        ["acw", duration(avg(m.tAcw))],
        ["response", duration(avg(m.tAgentResponseTime))],
        ["routing", users ? statusTimes(byUser[id] || {}, "tAgentRoutingStatus") : "—"],
        ["presence", users ? statusTimes(byUser[id] || {}, "tSystemPresence") : "—"]
      ];
      cells.forEach(function (c) { var td = el("td", c[1]); td.dataset.figure = c[0]; tr.appendChild(td); });
      body.appendChild(tr);
    });
    var usersCsv = document.querySelector('button[data-csv="users"]');
    if (usersCsv) { usersCsv.disabled = !users; }
    setState("agents", users ? "" : "Time in each status: not available on this server.");
  }

  function fillWrapups(json) {
    var body = document.querySelector("#wrapup-table tbody");
    body.textContent = "";
    var results = (json.results || []).slice().sort(function (a, b) {
      return String(a.group.wrapUpCode || "~").localeCompare(String(b.group.wrapUpCode || "~"));
    });
    var shown = 0;
    results.forEach(function (r) {
      var m = r.data.length ? metricsOf(r.data[0]) : {};
      if (!m.nConnected && !m.tHandle) { return; }
      shown += 1;
      var tr = el("tr"), code = r.group.wrapUpCode;
      tr.dataset.code = code === null || code === undefined ? "" : code;
      var th = el("th", code === null || code === undefined ? "(none yet)" : code); th.scope = "row"; tr.appendChild(th);
      [["handled", m.nConnected ? m.nConnected.count : 0], ["finished", m.tHandle ? m.tHandle.count : 0],
       ["handle", duration(avg(m.tHandle))]].forEach(function (c) {
        var td = el("td", c[1]); td.dataset.figure = c[0]; tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    if (!shown) {
      var tr0 = el("tr"), td0 = el("td", "No conversation was handled in this range.", "muted");
      td0.colSpan = 4; tr0.appendChild(td0); body.appendChild(tr0);
    }
  }

  /* -- loading and CSV ----------------------------------------------------------------- */

  function load(key, onJson) {
    var req = state.requests[key];
    return post(req[0], req[1], false).then(function (res) {
      if (!res.ok) {
        var err = new Error("HTTP " + res.status);
        err.status = res.status;
        throw err;
      }
      return res.json();
    }).then(function (json) {
      state.data[key] = json;
      onJson(json);
      return json;
    });
  }

  function failed(key) {
    return function (err) { setState(key, "Could not load: " + err.message, true); state.ready[key] = "error"; };
  }

  function loadAll() {
    state.requests = requests();
    load("offered", drawOffered).catch(failed("offered"));
    load("sl", drawServiceLevel).catch(failed("sl"));
    load("waits", drawWaits).catch(failed("waits"));
    load("backlog", drawBacklog).catch(failed("backlog"));
    load("wrapups", fillWrapups).then(function () { state.ready.wrapups = true; }).catch(failed("wrapups"));
    var agents = load("agents", function () {});
    /* Time in each status comes from the users aggregates: "—" where the server has none (404). */
    var users = load("users", function () {}).catch(function () { return null; });
    Promise.all([agents, users]).then(function (both) {
      fillAgents(both[0], both[1]);
      state.ready.agents = true;
    }).catch(failed("agents"));
  }

  function downloadCsv(key) {
    var req = state.requests[key];
    post(req[0], req[1], true).then(function (res) {
      if (!res.ok) { throw new Error("HTTP " + res.status); }
      var name = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "");
      return res.blob().then(function (blob) { return [blob, name ? name[1] : key + ".csv"]; });
    }).then(function (got) {
      var a = el("a");
      a.href = URL.createObjectURL(got[0]);
      a.download = cfg.interval.slice(0, 10) + "-" + key + "-" + got[1];
      a.hidden = true;
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    }).catch(function (err) {
      if (window.Postroom && window.Postroom.toast) { window.Postroom.toast("CSV: " + err.message, true); }
      setState(key, "CSV: " + err.message, true);
    });
  }

  function start() {
    root = document.getElementById("dashboard");
    if (!root) { return; }
    cfg = JSON.parse(root.dataset.config);
    var meta = document.querySelector('meta[name="csrf-token"]');
    csrf = meta ? meta.content : "";
    state.config = cfg;
    document.querySelectorAll("[data-csv]").forEach(function (b) {
      b.addEventListener("click", function () { downloadCsv(b.dataset.csv); });
    });
    var resizeTimer;
    window.addEventListener("resize", function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () {
        Object.keys(state.charts).forEach(function (k) {
          var box = document.querySelector('[data-chart="' + k + '"]');
          state.charts[k].setSize({width: chartWidth(box), height: 220});
        });
      }, 150);
    });
    loadAll();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
