/* Postroom composer: reply, reply-all and forward with a small rich-text editor
   (contenteditable + toolbar), editable To/Cc/Bcc, attachments by picker or
   drag-and-drop, canned responses with a preview, draft auto-save and restore,
   and checks before sending. Talks to the JSON API only. */
"use strict";
(function () {
  var PR = window.Postroom = window.Postroom || {};
  var state = {kind: "reply", attachments: [], saveTimer: null, cid: "", canned: null};
  var ATTACH_WORDS = /\b(attach(ed|ment|ments|ing)?|enclosed|anbei|anhang|angeh[aä]ngt|pi[eè]ce jointe|adjunto)\b/i;

  function $(id) { return document.getElementById(id); }
  function conv() { return $("conversation"); }
  function json(el, name) {
    try { return JSON.parse(el.dataset[name] || "null"); } catch (e) { return null; }
  }
  function list(value) {
    return (value || "").split(/[,;\n]/).map(function (s) { return s.trim(); }).filter(Boolean);
  }
  function addressOf(s) {
    var m = /<([^>]+)>/.exec(s);
    return (m ? m[1] : s).trim().toLowerCase();
  }
  function human(n) {
    if (n < 1024) { return n + " bytes"; }
    if (n < 1048576) { return (n / 1024).toFixed(1) + " KB"; }
    return (n / 1048576).toFixed(1) + " MB";
  }
  function limits() { return json(conv(), "limits") || {max_attachments: 50, max_size: 26214400}; }

  /* -- open / fill ------------------------------------------------------------------- */

  function fill(data) {
    var form = $("composer");
    form.elements.kind.value = data.kind || "reply";
    $("composer-title").textContent = {reply: "Reply", reply_all: "Reply all", forward: "Forward"}[data.kind] || "Reply";
    $("c-to").value = (data.to || []).join(", ");
    $("c-cc").value = (data.cc || []).join(", ");
    $("c-bcc").value = (data.bcc || []).join(", ");
    $("c-subject").value = data.subject || "";
    $("c-editor").innerHTML = "";
    if (data.html) {
      $("c-editor").innerHTML = data.html;  /* the agent's own draft, stored by the API */
    } else if (data.text) {
      $("c-editor").innerText = data.text;
    }
    state.attachments = data.attachment_files || [];
    renderAttachments();
  }

  function open(kind) {
    var form = $("composer");
    if (!form) { return; }
    var defaults = (json(conv(), "composer") || {})[kind] || {};
    state.kind = kind;
    fill({kind: kind, to: defaults.to, cc: defaults.cc, subject: defaults.subject});
    form.hidden = false;
    $("c-editor").focus();
    scheduleSave();
  }
  PR.openComposer = open;

  async function restore() {
    var c = conv();
    var form = $("composer");
    if (!c || !form || state.cid === c.dataset.cid) { return; }
    state.cid = c.dataset.cid;
    state.attachments = [];
    try {
      var draft = await PR.api("GET", "/api/v1/conversations/" + c.dataset.cid + "/draft");
      if (draft && draft.data) {
        var d = draft.data;
        d.attachment_files = d.attachment_files || [];
        fill(d);
        if ((d.attachments || []).length && !d.attachment_files.length) {
          state.attachments = d.attachments.map(function (id) { return {id: id, filename: "upload " + id, size: 0}; });
          renderAttachments();
        }
        form.hidden = false;
        $("draft-status").textContent = "Draft restored (saved " + new Date(draft.updated_at).toLocaleTimeString() + ")";
      }
    } catch (e) { /* no draft: nothing to restore */ }
  }

  /* -- draft auto-save --------------------------------------------------------------- */

  function collect() {
    var form = $("composer");
    var editor = $("c-editor");
    return {
      kind: form.elements.kind.value,
      to: list($("c-to").value), cc: list($("c-cc").value), bcc: list($("c-bcc").value),
      subject: $("c-subject").value,
      text: editor.innerText.replace(/\u00a0/g, " "),
      html: editor.innerHTML,
      attachments: state.attachments.map(function (a) { return a.id; })
    };
  }

  function scheduleSave() {
    clearTimeout(state.saveTimer);
    state.saveTimer = setTimeout(saveDraft, 800);
  }

  async function saveDraft() {
    var c = conv();
    var form = $("composer");
    if (!c || !form || form.hidden) { return; }
    var data = collect();
    try {
      await PR.api("PUT", "/api/v1/conversations/" + c.dataset.cid + "/draft", data);
      $("draft-status").textContent = "Draft saved " + new Date().toLocaleTimeString();
    } catch (e) {
      $("draft-status").textContent = "Draft not saved: " + e.message;
    }
  }

  /* -- attachments ------------------------------------------------------------------- */

  function renderAttachments() {
    var ul = $("c-attachments");
    if (!ul) { return; }
    ul.textContent = "";
    state.attachments.forEach(function (a, i) {
      var li = document.createElement("li");
      li.textContent = a.filename + " (" + human(a.size || 0) + ") ";
      var rm = document.createElement("button");
      rm.type = "button";
      rm.textContent = "Remove";
      rm.setAttribute("aria-label", "Remove " + a.filename);
      rm.addEventListener("click", function () { state.attachments.splice(i, 1); renderAttachments(); scheduleSave(); });
      li.appendChild(rm);
      ul.appendChild(li);
    });
  }

  async function upload(files) {
    var lim = limits();
    var total = state.attachments.reduce(function (s, a) { return s + (a.size || 0); }, 0);
    for (var i = 0; i < files.length; i++) {
      var f = files[i];
      if (state.attachments.length >= lim.max_attachments) {
        PR.toast("At most " + lim.max_attachments + " attachments.", true); break;
      }
      if (total + f.size > lim.max_size) {
        PR.toast(f.name + " is too large: at most " + human(lim.max_size) + " in all.", true); continue;
      }
      var fd = new FormData();
      fd.append("file", f, f.name);
      try {
        var up = await PR.api("POST", "/api/v1/uploads", fd);
        state.attachments.push({id: up.id, filename: up.filename, size: up.size});
        total += up.size;
      } catch (e) {
        PR.toast(f.name + ": " + e.message, true);
      }
    }
    renderAttachments();
    scheduleSave();
  }

  /* -- canned responses -------------------------------------------------------------- */

  async function searchCanned() {
    var c = conv();
    var q = $("canned-search").value;
    var url = "/api/v1/canned-responses?q=" + encodeURIComponent(q);
    var ul = $("canned-list");
    try {
      var data = await PR.api("GET", url);
      ul.textContent = "";
      var queue = c ? c.dataset.queue : "";
      data.canned_responses.filter(function (r) { return !r.queue || r.queue === queue; }).forEach(function (r) {
        var li = document.createElement("li");
        var b = document.createElement("button");
        b.type = "button";
        b.className = "canned-item";
        b.textContent = r.name;
        b.addEventListener("click", function () { previewCanned(r.id); });
        li.appendChild(b);
        ul.appendChild(li);
      });
      if (!ul.children.length) { ul.textContent = "No canned responses match."; }
    } catch (e) { ul.textContent = e.message; }
  }

  async function previewCanned(id) {
    try {
      var r = await PR.api("POST", "/api/v1/canned-responses/" + id + "/render", {conversation_id: Number(PR.currentCid())});
      state.canned = r;
      $("canned-preview-text").textContent = r.text || "";
      $("canned-preview").hidden = false;
    } catch (e) { PR.toast(e.message, true); }
  }

  function insertCanned() {
    if (!state.canned) { return; }
    var editor = $("c-editor");
    var block = document.createElement("div");
    block.innerText = state.canned.text || "";
    editor.appendChild(block);
    $("canned-preview").hidden = true;
    $("canned").open = false;
    editor.focus();
    scheduleSave();
  }

  /* -- checks and sending ------------------------------------------------------------ */

  function checks(data) {
    var problems = [];
    if (ATTACH_WORDS.test(data.text) && !data.attachments.length) {
      problems.push("Your text mentions an attachment, but nothing is attached.");
    }
    var known = (json(conv(), "participants") || []).map(function (a) { return a.toLowerCase(); });
    var added = data.to.concat(data.cc, data.bcc).map(addressOf).filter(function (a) { return known.indexOf(a) < 0; });
    if (added.length && data.kind !== "forward") {
      problems.push("Not in this thread so far: " + added.join(", ") + ".");
    }
    if (!data.text.trim()) { problems.push("The message is empty."); }
    return problems;
  }

  async function send(force) {
    var c = conv();
    if (!c) { return; }
    var data = collect();
    if (!force) {
      var problems = checks(data);
      if (problems.length) {
        var ul = $("check-list");
        ul.textContent = "";
        problems.forEach(function (p) { var li = document.createElement("li"); li.textContent = p; ul.appendChild(li); });
        $("check-dialog").showModal();
        return;
      }
    }
    clearTimeout(state.saveTimer);
    $("send-button").disabled = true;
    try {
      await PR.api("POST", "/api/v1/conversations/" + c.dataset.cid + "/send", data);
      PR.toast("Sent: your message is on its way.");
      $("composer").hidden = true;
      state.attachments = [];
      fill({kind: "reply"});
      $("draft-status").textContent = "";
      PR.refresh("#conv-live");
    } catch (e) {
      PR.toast("Not sent: " + e.message, true);
    } finally {
      $("send-button").disabled = false;
    }
  }

  /* -- wiring (delegated: the composer is swapped in by htmx) ------------------------ */

  document.addEventListener("click", function (ev) {
    var t = ev.target.closest("button");
    if (!t) { return; }
    if (t.dataset.compose) { open(t.dataset.compose); }
    else if (t.dataset.cmd && t.closest(".toolbar")) {
      ev.preventDefault();
      var arg = null;
      if (t.dataset.cmd === "createLink") {
        arg = window.prompt("Link address (https://…)");
        if (!arg || !/^(https?:|mailto:)/i.test(arg)) { return; }
      }
      $("c-editor").focus();
      document.execCommand(t.dataset.cmd, false, arg);
      scheduleSave();
    }
    else if (t.id === "canned-insert") { insertCanned(); }
    else if (t.id === "check-send") { $("check-dialog").close(); send(true); }
    else if (t.id === "check-cancel") { $("check-dialog").close(); }
    else if (t.id === "discard-button") {
      var c = conv();
      PR.api("DELETE", "/api/v1/conversations/" + c.dataset.cid + "/draft").catch(function () {});
      $("composer").hidden = true;
      state.attachments = [];
      $("draft-status").textContent = "";
    }
  });
  document.addEventListener("submit", function (ev) {
    if (ev.target.id === "composer") { ev.preventDefault(); send(false); }
  });
  document.addEventListener("input", function (ev) {
    if (ev.target.closest && ev.target.closest("#composer")) {
      if (ev.target.id === "canned-search") { searchCanned(); return; }
      if (ev.target.id !== "c-files") { scheduleSave(); }
    }
  });
  document.addEventListener("change", function (ev) {
    if (ev.target.id === "c-files") { upload(ev.target.files); ev.target.value = ""; }
  });
  document.addEventListener("toggle", function (ev) {
    if (ev.target.id === "canned" && ev.target.open) { searchCanned(); }
  }, true);
  ["dragenter", "dragover"].forEach(function (name) {
    document.addEventListener(name, function (ev) {
      var zone = ev.target.closest && ev.target.closest("#c-drop");
      if (zone) { ev.preventDefault(); zone.classList.add("over"); }
    });
  });
  document.addEventListener("dragleave", function (ev) {
    var zone = ev.target.closest && ev.target.closest("#c-drop");
    if (zone) { zone.classList.remove("over"); }
  });
  document.addEventListener("drop", function (ev) {
    var zone = ev.target.closest && ev.target.closest("#c-drop");
    if (zone) { ev.preventDefault(); zone.classList.remove("over"); upload(ev.dataTransfer.files); }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && ev.target.closest && ev.target.closest("#composer")) {
      ev.preventDefault();
      send(false);
    }
  });
  document.addEventListener("htmx:afterSwap", restore);
  document.addEventListener("DOMContentLoaded", restore);
})();
