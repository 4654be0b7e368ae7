/* Split and merge in the thread view (templates/_rethread.html), for supervisors:
   POST /api/v1/conversations/{id}/split and /merge, then open the conversation
   that now holds the messages. Uses PR.api and PR.toast from workspace.js. */
"use strict";
(function () {
  if (window.PostroomRethread) { return; }  /* loaded again when the view is swapped */
  window.PostroomRethread = true;

  function cid() {
    var s = document.getElementById("rethread");
    return s ? s.dataset.cid : null;
  }

  async function split(button) {
    var select = document.getElementById("split-message");
    if (!select || !select.value) { return; }
    button.disabled = true;
    try {
      var r = await window.Postroom.api("POST", "/api/v1/conversations/" + cid() + "/split",
        {message_id: Number(select.value)});
      window.Postroom.toast("Split: new conversation " + r.new_conversation_id + ".");
      window.location.assign("/c/" + r.new_conversation_id);
    } catch (e) {
      window.Postroom.toast(e.message, true);
      button.disabled = false;
    }
  }

  async function merge(button) {
    var error = document.getElementById("merge-error");
    var raw = (document.getElementById("merge-into").value || "").trim().replace(/^#/, "");
    if (!/^[0-9]+$/.test(raw)) {
      error.textContent = "Give the number of the conversation to merge into.";
      error.hidden = false;
      return;
    }
    button.disabled = true;
    try {
      var r = await window.Postroom.api("POST", "/api/v1/conversations/" + cid() + "/merge",
        {into: Number(raw), force: document.getElementById("merge-force").checked});
      window.Postroom.toast("Merged into conversation " + r.into + ".");
      window.location.assign("/c/" + r.into);
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
      button.disabled = false;
    }
  }

  document.addEventListener("click", function (ev) {
    var t = ev.target.closest("button");
    if (!t) { return; }
    if (t.id === "split-submit") { split(t); }
    if (t.id === "merge-submit") { merge(t); }
  });
})();
