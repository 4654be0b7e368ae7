/* Postroom new email (templates/new.html): the composer (composer.js) with the queue
   it is sent from, its From address, and for supervisors and admins the agent who
   will hold the conversation. The queue's signature is at the end of the text when
   the page opens and is swapped for the new queue's when the queue changes, as long
   as the agent has not changed it. Sending posts to POST /api/v1/conversations and
   opens the new conversation in the workspace. */
"use strict";
(function () {
  var PR = window.Postroom;
  var form = document.getElementById("composer");
  var queueEl = document.getElementById("n-queue");
  if (!form || !queueEl || !PR || !PR.initComposer) { return; }
  var agentEl = document.getElementById("n-agent");
  var fromEl = document.getElementById("n-from");

  function queue() { return queueEl.value; }
  function signatureUrl() { return "/api/v1/queues/" + encodeURIComponent(queue()) + "/signature"; }

  var composer = PR.initComposer(form, {
    queue: queue(),
    signatureUrl: signatureUrl(),
    cannedContext: {queue: queue()},
    participants: null,
    restore: false,
    /* hard requirements: the server would refuse the email without them */
    validate: function (data) {
      if (!queue()) { return "Choose the queue to send from."; }
      if (agentEl && !agentEl.value) { return "Choose the agent who will hold the conversation."; }
      if (!data.to.length && !data.cc.length && !data.bcc.length) { return "Add a recipient in To, Cc or Bcc."; }
      if (!data.subject.trim()) { return "Add a subject."; }
      return "";
    },
    payload: function (data) {
      var body = {queue: queue(), to: data.to, cc: data.cc, bcc: data.bcc, subject: data.subject,
        text: data.text, html: data.html, attachments: data.attachments, inline: data.inline};
      if (agentEl) { body.agent = agentEl.value; }
      return body;
    },
    onSent: function (result) {
      window.location.assign("/c/" + encodeURIComponent(result.conversation_id));
    }
  });
  composer.open("new").then(function () { document.getElementById("c-to").focus(); });

  queueEl.addEventListener("change", function () {
    var option = queueEl.selectedOptions[0];
    fromEl.textContent = option ? option.dataset.from : "";
    composer.options.queue = queue();
    composer.options.cannedContext = {queue: queue()};
    composer.options.signatureUrl = signatureUrl();
    composer.replaceSignature();
  });
})();
