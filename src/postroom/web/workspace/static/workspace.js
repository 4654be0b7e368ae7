/* Postroom workspace: offers with their countdown, presence, conversation actions,
   message frames, live refresh from the event stream (delivery statuses included)
   and keyboard shortcuts. Also loaded by the other signed-in pages (new email,
   queues) for the header, offers and PR.api. No inline scripts: the page's CSP
   allows scripts from this origin only. */
"use strict";
(function () {
  var PR = window.Postroom = window.Postroom || {};

  PR.csrf = function () {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  };

  /* fetch with the session's CSRF token; resolves to parsed JSON or throws Error(message) */
  PR.api = async function (method, url, body) {
    var opts = {method: method, credentials: "same-origin", headers: {"X-CSRF-Token": PR.csrf()}};
    if (body instanceof FormData) {
      opts.body = body;
    } else if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    var res = await fetch(url, opts);
    if (res.status === 401) { window.location.assign("/login"); throw new Error("signed out"); }
    if (res.status === 204) { return null; }
    var data = await res.json().catch(function () { return null; });
    if (!res.ok) {
      throw new Error((data && data.error && data.error.message) || ("request failed (" + res.status + ")"));
    }
    return data;
  };

  var toastTimer = null;
  PR.toast = function (text, isError) {
    var t = document.getElementById("toast");
    if (!t) { return; }
    t.textContent = text;
    t.className = isError ? "error" : "";
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { t.hidden = true; }, isError ? 8000 : 4000);
  };

  PR.refresh = function (selector) {
    var el = document.querySelector(selector);
    if (el && window.htmx) { window.htmx.trigger(el, "refresh"); }
  };

  PR.currentCid = function () {
    var c = document.getElementById("conversation");
    return c ? c.dataset.cid : "";
  };

  PR.openConversation = function (cid) {
    if (!document.getElementById("mine")) {  /* another page: go to the workspace */
      window.location.assign("/c/" + encodeURIComponent(cid));
      return;
    }
    window.htmx.ajax("GET", "/workspace/parts/conversation/" + cid, {target: "#main", swap: "innerHTML"})
      .then(function () {
        history.pushState({}, "", "/c/" + cid);
        var main = document.getElementById("main");
        if (main) { main.focus(); }
      });
  };

  PR.refreshAll = function () {
    PR.refresh("#offers");
    PR.refresh("#mine");
    PR.refresh("#status");
    if (PR.currentCid()) { PR.refresh("#conv-live"); }
  };

  /* -- offers and their countdown ------------------------------------------------------ */

  function tick() {
    document.querySelectorAll(".countdown[data-deadline]").forEach(function (el) {
      if (!el.dataset.deadline) { el.textContent = ""; return; }
      var left = Math.max(0, Math.round((Date.parse(el.dataset.deadline) - Date.now()) / 1000));
      var text = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
      el.textContent = text + " left";
      el.classList.toggle("urgent", left <= 10);
    });
  }
  setInterval(tick, 500);
  document.addEventListener("htmx:afterSwap", tick);

  async function answerOffer(action, cid, button) {
    if (button) { button.disabled = true; }
    try {
      await PR.api("POST", "/api/v1/conversations/" + cid + "/" + action);
      if (action === "accept") {
        PR.toast("Accepted: the conversation is yours.");
        PR.openConversation(cid);
      } else {
        PR.toast("Declined: it goes to the next agent.");
      }
    } catch (e) {
      PR.toast(e.message, true);
    } finally {
      if (button) { button.disabled = false; }
      PR.refresh("#offers");
      PR.refresh("#mine");
      PR.refresh("#status");
    }
  }
  PR.answerOffer = answerOffer;

  /* -- presence ------------------------------------------------------------------------ */

  async function setPresence(presence) {
    var user = document.body.dataset.user;
    try {
      await PR.api("PUT", "/api/v1/users/" + encodeURIComponent(user) + "/presence", {presence: presence});
      PR.toast(presence === "on_queue" ? "You are on queue." : "Presence: " + presence.replace("_", " "));
    } catch (e) {
      PR.toast(e.message, true);
    }
    PR.refresh("#status");
    PR.refresh("#offers");
  }

  /* -- conversation actions ------------------------------------------------------------ */

  async function act(action, data) {
    var cid = PR.currentCid();
    if (!cid) { return; }
    try {
      await PR.api("POST", "/api/v1/conversations/" + cid + "/" + action, data);
      PR.toast({park: "Parked.", unpark: "Taken back: it is connected to you again.", disconnect: "Disconnected.",
        transfer: "Transferred.", wrapup: "Wrapped up."}[action] || "Done.");
    } catch (e) {
      PR.toast(e.message, true);
    }
    PR.refreshAll();
  }

  function openDialog(id) {
    var d = document.getElementById(id);
    if (d && !d.open) { d.showModal(); }
  }
  PR.openDialog = openDialog;

  document.addEventListener("click", function (ev) {
    var t = ev.target.closest("button, a");
    if (!t) { return; }
    if (t.dataset.action === "accept" || t.dataset.action === "decline") {
      answerOffer(t.dataset.action, t.dataset.cid, t);
    } else if (t.dataset.act) {
      act(t.dataset.act);
    } else if (t.dataset.dialog) {
      openDialog(t.dataset.dialog);
    } else if (t.id === "queue-toggle") {
      setPresence(t.dataset.next || (t.dataset.presence === "on_queue" ? "available" : "on_queue"));
    } else if (t.id === "logout-button") {
      PR.api("POST", "/api/v1/auth/logout").finally(function () { window.location.assign("/login"); });
    } else if (t.id === "shortcuts-button") {
      openDialog("shortcuts-dialog");
    } else if (t.classList.contains("show-images")) {
      var details = t.closest("details");
      var frame = details && details.querySelector("iframe.body-frame");
      if (frame) {
        frame.dataset.src = "/workspace/messages/" + t.dataset.message + "/body?images=1";
        frame.src = frame.dataset.src;
        t.disabled = true;
      }
    }
  });

  document.addEventListener("change", function (ev) {
    if (ev.target.id === "presence-select") { setPresence(ev.target.value); }
  });

  document.addEventListener("close", function (ev) {
    var d = ev.target;
    if (d.id === "wrapup-dialog" && d.returnValue === "ok") {
      act("wrapup", {code: document.getElementById("wrapup-code").value,
        notes: document.getElementById("wrapup-notes").value});
    } else if (d.id === "transfer-dialog" && d.returnValue === "ok") {
      var q = document.getElementById("transfer-queue").value;
      var a = document.getElementById("transfer-agent").value;
      if (!q && !a) { PR.toast("Choose a queue or an agent to transfer to.", true); return; }
      act("transfer", q ? {queue: q} : {agent: a});
    }
  }, true);

  /* -- message frames: load when shown, size to their content --------------------------- */

  function loadFrames(root) {
    (root || document).querySelectorAll("details[open] iframe.body-frame[data-src]").forEach(function (f) {
      if (!f.getAttribute("src")) { f.src = f.dataset.src; }
    });
  }
  function sizeFrame(f) {
    try {
      var doc = f.contentDocument;
      if (doc && doc.documentElement) {
        f.style.height = Math.min(4000, doc.documentElement.scrollHeight + 4) + "px";
      }
    } catch (e) { /* another origin: keep the default height */ }
  }
  document.addEventListener("load", function (ev) {
    if (ev.target.tagName === "IFRAME" && ev.target.classList.contains("body-frame")) { sizeFrame(ev.target); }
  }, true);
  document.addEventListener("toggle", function (ev) {
    if (ev.target.tagName === "DETAILS" && ev.target.open) { loadFrames(ev.target.parentNode); }
  }, true);
  document.addEventListener("htmx:afterSwap", function () { loadFrames(); });
  document.addEventListener("DOMContentLoaded", function () { loadFrames(); tick(); });
  window.addEventListener("popstate", function () { window.location.reload(); });

  /* -- live updates for the open conversation ------------------------------------------ */

  var CONV_KINDS = ["message_appended", "message_received", "conversation_state_changed",
    "conversation_closed", "message_queued", "park_returned", "wrapup_required", "wrapup_timed_out",
    "conversation_split", "conversation_merged"];
  /* What happened to a message we sent: the sender's outcome (services/outbound.py)
     and a bounce matched by intake, whose data names our message (outbound_message). */
  var DELIVERY_KINDS = ["message_sent", "delivery_deferred", "delivery_failed", "bounce_received"];

  /* Swap one message's delivery badge (templates/_delivery.html); false if it is not shown. */
  function refreshDelivery(data) {
    var mid = data.kind === "bounce_received" ? (data.data || {}).outbound_message : data.message_id;
    var badge = mid && document.querySelector('[data-delivery="' + Number(mid) + '"]');
    if (!badge || !window.htmx) { return false; }
    var before = badge.dataset.status;
    window.htmx.ajax("GET", "/workspace/parts/delivery/" + Number(mid), {target: badge, swap: "outerHTML"})
      .then(function () {
        var now = document.querySelector('[data-delivery="' + Number(mid) + '"]');
        var status = now && now.dataset.status;
        if (status !== before && (status === "failed" || status === "bounced")) {
          PR.toast("A message you sent in this conversation " +
            (status === "failed" ? "could not be delivered." : "bounced.") + " See its status in the thread.", true);
        }
      });
    return true;
  }
  PR.refreshDelivery = refreshDelivery;

  document.addEventListener("htmx:sseOpen", function (ev) {
    var source = ev.detail && ev.detail.source;
    if (!source) { return; }
    function listen(kind, handle) {
      source.addEventListener(kind, function (e) {
        var data;
        try { data = JSON.parse(e.data); } catch (err) { return; }
        if (data) { handle(kind, data); }
      });
    }
    CONV_KINDS.forEach(function (kind) {
      listen(kind, function (k, data) {
        if (String(data.conversation_id) === PR.currentCid()) { PR.refresh("#conv-live"); }
        if (k === "message_appended" || k === "message_queued") { PR.refresh("#mine"); }
      });
    });
    DELIVERY_KINDS.forEach(function (kind) {
      listen(kind, function (k, data) {
        /* the badge alone, so open messages and their frames stay as they are */
        if (!refreshDelivery(data) && String(data.conversation_id) === PR.currentCid()) {
          PR.refresh("#conv-live");
        }
        if (k === "message_sent") { PR.refresh("#mine"); }
      });
    });
    source.addEventListener("resync", PR.refreshAll);
    /* A stream starts from now: an outcome reported between the page's rendering and
       this moment would be missed, so messages still shown as queued are asked again. */
    document.querySelectorAll('[data-delivery][data-status="queued"]').forEach(function (badge) {
      refreshDelivery({kind: "message_sent", message_id: badge.dataset.delivery});
    });
    document.body.dataset.stream = "open";
  });

  /* -- keyboard shortcuts -------------------------------------------------------------- */

  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }
  document.addEventListener("keydown", function (ev) {
    var key = ev.key.toLowerCase();
    if (ev.altKey && !ev.ctrlKey && !ev.metaKey) {
      var offer = document.querySelector("#offers .offer");
      if (key === "a" && offer) {
        ev.preventDefault();
        answerOffer("accept", offer.dataset.cid, null);
      } else if (key === "d" && offer) {
        ev.preventDefault();
        answerOffer("decline", offer.dataset.cid, null);
      } else if (key === "r" && document.querySelector('[data-compose="reply"]')) {
        ev.preventDefault();
        document.querySelector('[data-compose="reply"]').click();
      } else if (key === "w" && document.getElementById("wrapup-dialog")) {
        ev.preventDefault();
        openDialog("wrapup-dialog");
      }
    } else if (key === "?" && !typing(document.activeElement)) {
      openDialog("shortcuts-dialog");
    }
  });
})();
