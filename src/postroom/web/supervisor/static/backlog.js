/* Supervisors' backlog actions: the bulk bar (form#bulk, acting on every checked
   input.pick[form=bulk]), per-conversation action forms (form.sv-action) and the
   agent board's buttons (button.agent-action). Talks to /api/v1 with the session's
   CSRF token; loaded by the partials that need it (once, however often included). */
"use strict";
(function () {
  if (window.PostroomBacklog) { return; }
  window.PostroomBacklog = true;

  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  }

  async function post(url, body) {
    var res = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"X-CSRF-Token": csrf(), "Content-Type": "application/json"},
      body: JSON.stringify(body)
    });
    var data = await res.json().catch(function () { return null; });
    if (!res.ok) {
      throw new Error((data && data.error && data.error.message) || ("request failed (" + res.status + ")"));
    }
    return data;
  }

  function say(text, isError) {
    var out = document.getElementById("bulk-result") || document.getElementById("backlog-result");
    if (window.Postroom && window.Postroom.toast) { window.Postroom.toast(text, isError); }
    if (out) { out.textContent = text; out.className = isError ? "error" : ""; }
  }

  function params(form, action) {
    var f = new FormData(form);
    var p = {};
    if (action === "assign") {
      p.agent = f.get("agent") || "";
      p.mode = f.get("mode") || "offer";
      p.override_capacity = f.get("override_capacity") === "1";
    } else if (action === "move") {
      p.queue = f.get("queue") || "";
    } else if (action === "priority") {
      p.priority = parseInt(f.get("priority") || "0", 10);
    } else if (action === "close") {
      p.reason = f.get("reason") || "spam";
      p.note = f.get("note") || "";
    }
    return p;
  }

  function picks() {
    return Array.prototype.slice.call(document.querySelectorAll('input.pick[form="bulk"]'));
  }

  function count() {
    var n = picks().filter(function (c) { return c.checked; }).length;
    var el = document.getElementById("bulk-count");
    if (el) { el.textContent = n + " selected"; }
  }

  function showFields() {
    var bar = document.getElementById("bulk");
    if (!bar) { return; }
    var action = bar.querySelector('[name="action"]').value;
    bar.querySelectorAll("label[data-for]").forEach(function (l) {
      l.hidden = l.getAttribute("data-for") !== action;
    });
  }

  function refresh() {
    if (window.htmx) {
      document.querySelectorAll("[data-backlog-live]").forEach(function (el) {
        window.htmx.trigger(el, "refresh");
      });
    }
  }

  document.addEventListener("change", function (ev) {
    var t = ev.target;
    if (t.id === "bulk-all") {
      picks().forEach(function (c) { c.checked = t.checked; });
      count();
    } else if (t.matches && t.matches('input.pick[form="bulk"]')) {
      count();
    } else if (t.id === "bulk-action") {
      showFields();
    }
  });

  document.addEventListener("submit", async function (ev) {
    var form = ev.target;
    if (form.id === "bulk") {
      ev.preventDefault();
      var ids = picks().filter(function (c) { return c.checked; }).map(function (c) {
        return parseInt(c.value, 10);
      });
      if (!ids.length) { say("Select at least one conversation.", true); return; }
      var action = form.querySelector('[name="action"]').value;
      var body = Object.assign({ids: ids, action: action}, params(form, action));
      try {
        var data = await post("/api/v1/conversations/bulk", body);
        var ok = data.results.filter(function (r) { return r.ok; }).length;
        var failed = data.results.filter(function (r) { return !r.ok; });
        var text = ok + " of " + data.results.length + " done";
        if (failed.length) { text += "; " + failed.map(function (r) { return "#" + r.id + ": " + r.error; }).join("; "); }
        say(text, failed.length > 0);
        refresh();
      } catch (err) { say(err.message, true); }
    } else if (form.classList && form.classList.contains("sv-action")) {
      ev.preventDefault();
      var act = form.getAttribute("data-action");
      var cid = form.getAttribute("data-cid");
      try {
        await post("/api/v1/conversations/" + cid + "/" + act, params(form, act));
        say("Done: " + act + " #" + cid, false);
        refresh();
      } catch (err) { say(err.message, true); }
    }
  });

  document.addEventListener("click", async function (ev) {
    var b = ev.target.closest ? ev.target.closest("button.agent-action") : null;
    if (!b) { return; }
    ev.preventDefault();
    var agent = b.getAttribute("data-agent");
    var act = b.getAttribute("data-action");
    try {
      await post("/api/v1/agents/" + encodeURIComponent(agent) + "/" + act, {});
      say("Done: " + act + " for " + agent, false);
      refresh();
    } catch (err) { say(err.message, true); }
  });

  document.addEventListener("DOMContentLoaded", function () { showFields(); count(); });
  if (document.readyState !== "loading") { showFields(); count(); }
})();
