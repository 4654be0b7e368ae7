/* Postroom composer: reply, reply-all and forward (and, through PR.initComposer, any
   other page with a composer) with the Trix rich-text editor (vendor/trix-*.js),
   editable To/Cc/Bcc, attachments by picker or drag-and-drop, pictures pasted or
   dropped into the text (uploaded and sent inline), canned responses with a
   preview, draft auto-save and restore, and checks before sending. Talks to the
   JSON API only.

   A composer is the <form class="composer"> of templates/_composer.html. It is
   started from its data-* attributes (data-draft-url, data-send-url, data-defaults,
   data-participants, data-limits, data-queue, data-canned-context, data-restore,
   data-signature-url) when it appears (page load or htmx swap), or, for a form
   marked data-manual, by the page's own script, whose options win over the
   attributes:

     var c = Postroom.initComposer(form, {sendUrl: ..., draftUrl: ..., onSent: fn,
       payload: fn(data) -> body to send, validate: fn(data) -> "" or what is missing});
     c.open("new");                         // fill the defaults of a kind and show it
     c.insertHTML("<div>-- <br>Ann</div>", "end");  // or "cursor" (the default)
     c.replaceSignature();                  // after changing c.options.signatureUrl
     Postroom.insertHTML(html, "end");      // the same, on the page's composer
     Postroom.htmlToText(html);             // the text part made from the HTML

   Signatures: with a signature URL (GET .../signature, {"html", "text"}) the
   composer puts the signature at the end each time it opens (reply, reply all,
   forward, new), below an empty first line where the cursor starts; a restored
   draft has it already and gets none. replaceSignature() swaps it for the one at
   the (new) URL only while the end of the text is still exactly the signature it
   inserted; once the agent has changed it, it is left alone (and they are told).

   The customer's message: with a quote URL (GET .../quote?kind=..., data-quote-url)
   a reply or reply all shows, below the text, a checkbox "Include the customer's
   message" (ticked as the queue's quote_original says) and the quote collapsed
   ("… show quoted text"); a forward shows "Include the original message and its
   attachments" (ticked). The server adds the quote (or the forwarded message and
   its files) when it sends, so the text in the editor is only the agent's own; the
   choice goes with the send and the draft as `quote`.

   Without data-participants (options.participants null) the "not in this thread"
   check is skipped, as a new email has no thread yet.

   Pictures (PNG, JPEG, GIF, WebP) pasted or dropped into the text stay there as
   Trix attachments: each is uploaded (POST /api/v1/uploads) and then shown from
   /api/v1/uploads/ID; the send (and the draft) names them in `inline`, and the
   server sends them as inline parts the HTML points at (cid:). Other files dropped
   on the text become ordinary attachments.

   The text part of the mail is derived from the editor's HTML (PR.htmlToText). One
   composer per page: its parts are found by their ids inside the form. */
"use strict";
(function () {
  var PR = window.Postroom = window.Postroom || {};
  var ATTACH_WORDS = /\b(attach(ed|ment|ments|ing)?|enclosed|anbei|anhang|angeh[aä]ngt|pi[eè]ce jointe|adjunto)\b/i;
  var TITLES = {reply: "Reply", reply_all: "Reply all", forward: "Forward", "new": "New email"};
  var INLINE_ATTRIBUTES = ["bold", "italic", "underline", "strike", "href"];
  var EMPTY_BLOCK = "<div><br></div>";  /* how Trix writes an empty line */
  var INLINE_IMAGE = /^image\/(png|jpeg|gif|webp)$/i;
  var UPLOAD_URL = /^\/api\/v1\/uploads\/(\d+)$/;

  /* Underline is not one of Trix's built-in attributes. Set before any editor parses. */
  if (window.Trix && window.Trix.config && !window.Trix.config.textAttributes.underline) {
    window.Trix.config.textAttributes.underline = {tagName: "u", inheritable: true};
  }
  /* A picture in the text goes out as the picture alone, without Trix's caption
     (file name and size) under it. */
  if (window.Trix && window.Trix.config && window.Trix.config.attachments) {
    window.Trix.config.attachments.preview = {presentation: "gallery", caption: {name: false, size: false}};
  }

  function parse(value, fallback) {
    if (value === undefined || value === null || value === "") { return fallback; }
    try { return JSON.parse(value); } catch (e) { return fallback; }
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
  function escapeHTML(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  /* plain text (an old draft) -> one editor block */
  function textToHTML(text) {
    return text ? "<div>" + escapeHTML(text).replace(/\r?\n/g, "<br>") + "</div>" : "";
  }
  PR.textToHTML = textToHTML;
  /* plain text (a canned response) -> one editor block per line, as Enter makes them;
     blank lines stay (as empty blocks), line breaks at the very end go */
  function linesToHTML(text) {
    var lines = String(text || "").replace(/\r\n?/g, "\n").replace(/\s+$/, "").split("\n");
    if (lines.length === 1 && !lines[0]) { return ""; }
    return lines.map(function (line) { return line ? "<div>" + escapeHTML(line) + "</div>" : EMPTY_BLOCK; }).join("");
  }
  PR.linesToHTML = linesToHTML;

  /* -- HTML -> text for the text/plain part and the checks ------------------------------ */

  var BLOCK = /^(ADDRESS|ARTICLE|ASIDE|BLOCKQUOTE|DD|DETAILS|DIV|DL|DT|FIGCAPTION|FIGURE|FOOTER|H[1-6]|HEADER|HR|LI|MAIN|OL|P|PRE|SECTION|SUMMARY|TABLE|TR|UL)$/;

  function endLine(out) { return out && out.slice(-1) !== "\n" ? out + "\n" : out; }
  function prefixLines(text, first, rest) {
    return text.replace(/\n+$/, "").split("\n").map(function (line, i) {
      return (i ? rest : first) + line;
    }).join("\n") + "\n";
  }
  function linkText(text, href) {
    var target = (href || "").replace(/^mailto:/i, "");
    if (!target || /^(#|javascript:)/i.test(target) || text.trim() === target) { return text; }
    return text.trim() ? text + " (" + target + ")" : target;
  }
  function listText(el) {
    var n = Number(el.getAttribute("start")) || 1;
    var out = "";
    Array.prototype.forEach.call(el.children, function (li) {
      var marker = el.tagName === "OL" ? (n++) + ". " : "- ";
      /* continuation lines indented with no-break spaces, which the final trim keeps */
      out += prefixLines(render(li, false) || " ", marker, new Array(marker.length + 1).join("\u00a0"));
    });
    return out;
  }
  function render(node, pre) {
    var out = "";
    Array.prototype.forEach.call(node.childNodes, function (n) {
      if (n.nodeType === 3) { out += pre ? n.data : n.data.replace(/[ \t\r\n\f]+/g, " "); return; }
      if (n.nodeType !== 1) { return; }
      var tag = n.tagName;
      if (tag === "BR") { out += "\n"; }
      else if (tag === "UL" || tag === "OL") { out = endLine(out) + listText(n); }
      else if (tag === "BLOCKQUOTE") { out = endLine(out) + prefixLines(render(n, pre), "> ", "> "); }
      else if (tag === "A") { out += linkText(render(n, pre), n.getAttribute("href")); }
      else if (tag === "IMG") { out += n.getAttribute("alt") || ""; }
      else if (tag === "HR") { out = endLine(out) + "----\n"; }
      else if (/^(SCRIPT|STYLE|TEMPLATE|HEAD|TITLE)$/.test(tag)) { /* not text */ }
      else if (tag === "TD" || tag === "TH") { out += render(n, pre) + "\t"; }
      else if (BLOCK.test(tag)) { out = endLine(endLine(out) + render(n, pre || tag === "PRE")); }
      else { out += render(n, pre); }
    });
    return out;
  }
  /* Lists become "- " / "1. ", quotes "> ", links "text (address)"; no HTML left.
     Spaces around lines go (but non-breaking ones stay, as spaces, and so does the
     signature separator "-- "). */
  function htmlToText(html) {
    var body = new DOMParser().parseFromString(html || "", "text/html").body;
    return render(body, false).split("\n").map(function (line) {
      return line === "-- " ? line : line.replace(/^ +| +$/g, "");
    }).join("\n")
      .replace(/\u00a0/g, " ")
      .replace(/\n{3,}/g, "\n\n")
      .replace(/^\n+|\s+$/g, "");
  }
  PR.htmlToText = htmlToText;

  /* Rich content pasted from other pages (web pages, word processors) carries inline
     styles, which the page's CSP blocks (and the server strips), and pictures, which
     cannot go out as remote links. Chromium reports a CSP violation for every style
     as soon as such HTML is parsed, even by DOMParser, so styles are cut from the
     string first; then pictures are taken out of the parsed (now style-free) copy. */
  var PASTE_NEEDS_CLEANING = /<style|\sstyle\s*=|<img|<picture|<svg|<video|<audio/i;
  function cleanPastedHTML(html) {
    html = html
      .replace(/<style[\s\S]*?<\/style\s*>/gi, "")
      .replace(/\sstyle\s*=\s*("[^"]*"|'[^']*'|[^\s>]*)/gi, "");
    var doc = new DOMParser().parseFromString(html, "text/html");
    var images = doc.querySelectorAll("img, picture, svg, video, audio");
    Array.prototype.forEach.call(images, function (el) { el.remove(); });
    return {html: doc.body.innerHTML, images: images.length};
  }

  /* -- one composer ------------------------------------------------------------------- */

  function Composer(form, options) {
    var ds = form.dataset;
    options = options || {};
    this.form = form;
    this.options = {
      draftUrl: options.draftUrl || ds.draftUrl || "",
      sendUrl: options.sendUrl || ds.sendUrl || "",
      defaults: options.defaults || parse(ds.defaults, {}),
      participants: options.participants !== undefined ? options.participants : parse(ds.participants, null),
      limits: options.limits || parse(ds.limits, {max_attachments: 50, max_size: 26214400}),
      queue: options.queue !== undefined ? options.queue : (ds.queue || ""),
      cannedContext: options.cannedContext || parse(ds.cannedContext, {}),
      restore: options.restore !== undefined ? options.restore : ds.restore === "true",
      signatureUrl: options.signatureUrl !== undefined ? options.signatureUrl : (ds.signatureUrl || ""),
      quoteUrl: options.quoteUrl !== undefined ? options.quoteUrl : (ds.quoteUrl || ""),
      payload: options.payload || null,
      validate: options.validate || null,
      onSent: options.onSent || function () { PR.refresh("#conv-live"); }
    };
    /* The signature this composer put at the end of the text, as the editor writes
       it: "" none, null one it cannot tell apart any more (never replaced). */
    this.signature = null;
    this.original = null;            /* what .../quote said for the open kind, or null */
    this.originalToken = null;
    this.signatures = {};            /* url -> promise of its HTML */
    this.signatureChain = Promise.resolve();
    this.attachments = [];
    this.saveTimer = null;
    this.saved = null;        /* JSON of what the server holds, to skip needless saves */
    this.canned = null;
    this.sending = false;
    this.cursorKnown = false; /* has the agent placed the cursor since the last fill? */
    this.uploads = Promise.resolve();
    this.editorEl = this.part("c-editor");
    var el = this.editorEl;
    this.ready = new Promise(function (resolve) {
      if (el.editor) { resolve(el.editor); return; }
      el.addEventListener("trix-initialize", function () { resolve(el.editor); }, {once: true});
    });
  }

  Composer.prototype.part = function (id) { return this.form.querySelector("#" + id); };

  /* -- the editor --------------------------------------------------------------------- */

  Composer.prototype.html = function () { return this.editorEl.value || ""; };

  /* Trix applies a keystroke to its document at once but writes the HTML (the value
     read above) when it renders, in the next animation frame: wait for that before
     reading, or Ctrl+Enter right after typing would send without the last letters.
     The timer covers a page whose frames are paused (a background tab). */
  Composer.prototype.flush = function () {
    return new Promise(function (resolve) {
      var done = false;
      function go() { if (!done) { done = true; setTimeout(resolve, 0); } }
      requestAnimationFrame(go);
      setTimeout(go, 100);
    });
  };

  /* Insert HTML at the cursor (where == "cursor", the default: the editor keeps the
     agent's last position while focus is elsewhere) or after everything as a block
     of its own (where == "end", e.g. a signature). Trix parses and sanitizes it. */
  Composer.prototype.insertHTML = async function (html, where) {
    var editor = await this.ready;
    if (where === "end") {
      await this.flush();
      var range = editor.getSelectedRange();
      editor.loadHTML(this.html() + html);  /* a new block; resets undo history */
      editor.setSelectedRange(range);
    } else {
      editor.insertHTML(html);
    }
    this.scheduleSave();
  };

  /* Plain text (line breaks kept) at the cursor, or at the end of the last block. */
  Composer.prototype.insertText = async function (text, where) {
    var editor = await this.ready;
    if (where === "end") { editor.setSelectedRange(editor.getDocument().getLength() - 1); }
    editor.insertString(text);
    this.scheduleSave();
  };

  /* Enter (and Shift+Enter) in a plain paragraph starts a new block, as in mail
     clients, instead of Trix's line break inside the block: a block that ends in a
     line break makes Trix put the next letters into the block after it (the
     signature). Lists, quotes and other formatted blocks keep Trix's own handling.
     Like Trix, it acts where the key event says the cursor is (`domRange`, from
     getTargetRanges), which can be ahead of Trix's own idea of the selection right
     after a key such as End. Returns false when Trix should handle the key. */
  Composer.prototype.breakBlock = function (domRange) {
    var editor = this.editorEl.editor;
    var composition = editor && editor.composition;
    if (!composition || !composition.insertBlockBreak || !composition.withTargetDOMRange) { return false; }
    var self = this;
    var done = composition.withTargetDOMRange(domRange || null, function () {
      var doc = editor.getDocument();
      var range = composition.getSelectedRange();
      if (!range) { return false; }
      var block = doc.getBlockAtIndex(doc.locationFromPosition(range[0]).index);
      if (!block || block.hasAttributes()) { return false; }
      editor.recordUndoEntry("Typing", {consolidatable: true});
      composition.insertBlockBreak();
      return true;
    });
    if (done) { self.scheduleSave(); }
    return !!done;
  };

  /* -- signatures --------------------------------------------------------------------- */

  /* The signature's HTML for the editor ("" without one). Trix gives a <p> blank lines
     above and below, so paragraphs become plain blocks. */
  Composer.prototype.signatureHTML = function () {
    var url = this.options.signatureUrl;
    if (!url) { return Promise.resolve(""); }
    if (!this.signatures[url]) {
      var self = this;
      this.signatures[url] = PR.api("GET", url).then(function (sig) {
        return ((sig && sig.html) || "").replace(/<p(\s[^>]*)?>/gi, "<div>").replace(/<\/p\s*>/gi, "</div>");
      }).catch(function (e) {
        delete self.signatures[url];
        PR.toast("Signature not loaded: " + e.message, true);
        return "";
      });
    }
    return this.signatures[url];
  };

  /* Append the signature as blocks of their own, after an empty line that keeps it
     apart from the text (in the editor and in both parts of the mail). Into an empty
     editor it goes below an empty first line, where the cursor stays, so what the
     agent types is never part of it. Remembers it, the empty line included
     (this.signature), for replaceSignature. */
  Composer.prototype.addSignature = async function () {
    var html = await this.signatureHTML();
    this.signature = "";
    if (!html) { return; }
    await this.flush();
    var before = this.html();
    var lead = before ? "" : EMPTY_BLOCK;
    await this.insertHTML(lead + EMPTY_BLOCK + html, "end");
    await this.flush();
    var after = this.html();
    var sig = after.indexOf(before) === 0 ? after.slice(before.length) : null;
    if (sig !== null && lead && sig.indexOf(EMPTY_BLOCK) === 0) { sig = sig.slice(EMPTY_BLOCK.length); }
    this.signature = sig || null;
  };

  /* Put the signature of options.signatureUrl in place of the one inserted before, if
     that one is still unchanged at the end of the text. Resolves to true if done. */
  Composer.prototype.replaceSignature = function () {
    var self = this;
    var run = this.signatureChain.then(async function () {
      var editor = await self.ready;
      await self.flush();
      var current = self.html();
      var old = self.signature;
      if (old === null || (old && current.slice(-old.length) !== old)) {
        if (old !== null) {
          PR.toast("You changed the signature, so it was left as it is: check that it fits.", true);
        }
        self.signature = null;
        return false;
      }
      if (old) {
        var range = editor.getSelectedRange();
        editor.loadHTML(current.slice(0, current.length - old.length));
        var end = editor.getDocument().getLength() - 1;
        editor.setSelectedRange([Math.min(range[0], end), Math.min(range[1], end)]);
      }
      await self.addSignature();
      return true;
    });
    this.signatureChain = run.catch(function () {});
    return run;
  };

  /* The text without the signature this composer inserted (for the empty check). */
  Composer.prototype.bodyText = function (data) {
    var sig = this.signature;
    if (sig && data.html.slice(-sig.length) === sig) {
      return htmlToText(data.html.slice(0, data.html.length - sig.length));
    }
    return data.text;
  };

  Composer.prototype.clearFormatting = async function () {
    var editor = await this.ready;
    INLINE_ATTRIBUTES.forEach(function (name) { editor.deactivateAttribute(name); });
    this.editorEl.focus();
    this.scheduleSave();
  };

  /* -- open / fill -------------------------------------------------------------------- */

  Composer.prototype.fill = async function (data) {
    var form = this.form;
    var kind = data.kind || form.elements.kind.value || "reply";
    form.elements.kind.value = kind;
    this.part("composer-title").textContent = TITLES[kind] || TITLES.reply;
    this.part("c-to").value = (data.to || []).join(", ");
    this.part("c-cc").value = (data.cc || []).join(", ");
    this.part("c-bcc").value = (data.bcc || []).join(", ");
    this.part("c-subject").value = data.subject || "";
    this.attachments = data.attachment_files || [];
    this.renderAttachments();
    var editor = await this.ready;
    /* the agent's own draft (HTML, stored by the API), or text from an older draft */
    editor.loadHTML(data.html || textToHTML(data.text || ""));
    this.cursorKnown = false;
    this.signature = null;
    this.original = null;
    this.originalToken = null;
    var box = this.part("c-original");
    if (box) { box.hidden = true; }
  };

  /* -- the message sending adds below the text ---------------------------------------- */

  /* Ask the server what it would add for `kind` and show it collapsed, the checkbox
     ticked as the queue says (or as the restored draft had it: `chosen`). */
  Composer.prototype.loadOriginal = async function (kind, chosen) {
    var box = this.part("c-original");
    var url = this.options.quoteUrl;
    if (!box || !url || ["reply", "reply_all", "forward"].indexOf(kind) < 0) { return; }
    var token = {};
    this.originalToken = token;
    var info;
    try {
      info = await PR.api("GET", url + (url.indexOf("?") < 0 ? "?" : "&") + "kind=" + encodeURIComponent(kind));
    } catch (e) { return; }
    if (this.originalToken !== token || !info || !info.quote) { return; }
    this.original = info;
    var files = info.quote.attachments || [];
    this.part("c-quote").checked = chosen === null || chosen === undefined ? !!info["default"] : !!chosen;
    this.part("c-quote-label").textContent = kind === "forward"
      ? "Include the original message" + (files.length ? " and its attachments" : "")
      : "Include the customer's message";
    this.part("c-quote-text").textContent = info.quote.text || "";
    var list = this.part("c-quote-files");
    list.hidden = !files.length;
    list.textContent = files.length ? "Attached: " + files.join(", ") : "";
    this.part("c-quote-preview").open = false;
    box.hidden = false;
  };

  /* true / false: the agent's choice; null: nothing to include (the server decides) */
  Composer.prototype.quoteChoice = function () {
    return this.original ? this.part("c-quote").checked : null;
  };

  Composer.prototype.open = async function (kind) {
    var self = this;
    var defaults = (this.options.defaults || {})[kind] || {};
    this.saved = null;
    var opened = this.signatureChain.then(async function () {
      await self.fill({kind: kind, to: defaults.to, cc: defaults.cc, bcc: defaults.bcc, subject: defaults.subject});
      await self.addSignature();
      await self.loadOriginal(kind, null);
    });
    this.signatureChain = opened.catch(function () {});
    await opened;
    this.form.hidden = false;
    this.editorEl.focus();
    this.scheduleSave();
  };

  Composer.prototype.restore = async function () {
    if (!this.options.draftUrl) { return; }
    var draft;
    try { draft = await PR.api("GET", this.options.draftUrl); } catch (e) { return; }
    if (!draft || !draft.data) { return; }
    var d = draft.data;
    /* the API names the draft's uploads (attachment_files); older answers did not */
    d.attachment_files = draft.attachment_files || d.attachment_files || [];
    await this.fill(d);
    await this.loadOriginal(d.kind || "reply", d.quote);
    if ((d.attachments || []).length && !d.attachment_files.length) {
      this.attachments = d.attachments.map(function (id) { return {id: id, filename: "upload " + id, size: 0}; });
      this.renderAttachments();
    }
    await this.flush();
    this.saved = JSON.stringify(this.collect());
    this.form.hidden = false;
    this.part("draft-status").textContent = "Draft restored (saved " + new Date(draft.updated_at).toLocaleTimeString() + ")";
  };

  /* -- draft auto-save ---------------------------------------------------------------- */

  Composer.prototype.collect = function () {
    var html = this.html();
    return {
      kind: this.form.elements.kind.value,
      to: list(this.part("c-to").value), cc: list(this.part("c-cc").value), bcc: list(this.part("c-bcc").value),
      subject: this.part("c-subject").value,
      text: htmlToText(html),
      html: html,
      attachments: this.attachments.map(function (a) { return a.id; }),
      inline: this.inlineIds(),
      quote: this.quoteChoice()
    };
  };

  Composer.prototype.scheduleSave = function () {
    var self = this;
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(function () { self.saveTimer = null; self.saveDraft(); }, 800);
  };

  /* A save still waiting for its timer happens now (the composer is about to go). */
  Composer.prototype.saveNow = function () {
    if (this.saveTimer === null) { return; }
    clearTimeout(this.saveTimer);
    this.saveTimer = null;
    this.saveDraft();
  };

  /* Saves to this composer's own draft URL, also after htmx has swapped it out. */
  Composer.prototype.saveDraft = async function () {
    if (this.form.hidden || !this.options.draftUrl) { return; }
    await this.flush();
    if (this.form.hidden || this.sending) { return; }  /* discarded or being sent meanwhile */
    var data = this.collect();
    var snapshot = JSON.stringify(data);
    if (snapshot === this.saved) { return; }
    try {
      await PR.api("PUT", this.options.draftUrl, data);
      this.saved = snapshot;
      this.part("draft-status").textContent = "Draft saved " + new Date().toLocaleTimeString();
    } catch (e) {
      this.part("draft-status").textContent = "Draft not saved: " + e.message;
    }
  };

  Composer.prototype.discard = function () {
    clearTimeout(this.saveTimer);
    this.saveTimer = null;
    if (this.options.draftUrl) { PR.api("DELETE", this.options.draftUrl).catch(function () {}); }
    this.form.hidden = true;
    this.attachments = [];
    this.saved = null;
    this.part("draft-status").textContent = "";
  };

  /* -- attachments (ours, never Trix's: see the trix-file-accept handler) -------------- */

  Composer.prototype.renderAttachments = function () {
    var self = this;
    var ul = this.part("c-attachments");
    ul.textContent = "";
    this.attachments.forEach(function (a, i) {
      var li = document.createElement("li");
      li.textContent = a.filename + " (" + human(a.size || 0) + ") ";
      var rm = document.createElement("button");
      rm.type = "button";
      rm.textContent = "Remove";
      rm.setAttribute("aria-label", "Remove " + a.filename);
      rm.addEventListener("click", function () { self.attachments.splice(i, 1); self.renderAttachments(); self.scheduleSave(); });
      li.appendChild(rm);
      ul.appendChild(li);
    });
  };

  /* Uploads run one after another, so the limits are checked against what is attached. */
  Composer.prototype.upload = function (files) {
    var self = this;
    files = Array.prototype.slice.call(files || []);
    this.uploads = this.uploads.then(function () { return self.uploadNow(files); })
      .catch(function (e) { PR.toast(e.message, true); });
    return this.uploads;
  };

  Composer.prototype.uploadNow = async function (files) {
    var lim = this.options.limits;
    var total = this.attachments.reduce(function (s, a) { return s + (a.size || 0); }, 0);
    for (var i = 0; i < files.length; i++) {
      var f = files[i];
      if (this.attachments.length >= lim.max_attachments) {
        PR.toast("At most " + lim.max_attachments + " attachments.", true); break;
      }
      if (total + f.size > lim.max_size) {
        PR.toast(f.name + " is too large: at most " + human(lim.max_size) + " in all.", true); continue;
      }
      var fd = new FormData();
      fd.append("file", f, f.name);
      try {
        var up = await PR.api("POST", "/api/v1/uploads", fd);
        this.attachments.push({id: up.id, filename: up.filename, size: up.size});
        total += up.size;
      } catch (e) {
        PR.toast(f.name + ": " + e.message, true);
      }
    }
    this.renderAttachments();
    this.scheduleSave();
  };

  /* -- pictures in the text ------------------------------------------------------------ */

  /* upload ids of the pictures in the text, in order, once each */
  Composer.prototype.inlineIds = function () {
    var editor = this.editorEl.editor;
    var ids = [];
    if (!editor) { return ids; }
    editor.getDocument().getAttachments().forEach(function (a) {
      var m = UPLOAD_URL.exec(a.getAttribute("url") || "");
      if (m && ids.indexOf(Number(m[1])) < 0) { ids.push(Number(m[1])); }
    });
    return ids;
  };

  /* A picture Trix took into the text: upload it (within the limits, counted with
     the attachments) and show it from the upload; on failure it leaves the text. */
  Composer.prototype.uploadInline = function (attachment) {
    var self = this;
    this.uploads = this.uploads.then(async function () {
      var file = attachment.file;
      var lim = self.options.limits;
      var total = self.attachments.reduce(function (s, a) { return s + (a.size || 0); }, 0);
      var problem = "";
      if (self.attachments.length + self.inlineIds().length >= lim.max_attachments) {
        problem = "At most " + lim.max_attachments + " attachments and pictures.";
      } else if (total + file.size > lim.max_size) {
        problem = file.name + " is too large: at most " + human(lim.max_size) + " in all.";
      }
      if (!problem) {
        var fd = new FormData();
        fd.append("file", file, file.name);
        try {
          var up = await PR.api("POST", "/api/v1/uploads", fd);
          attachment.setUploadProgress(100);
          attachment.setAttributes({url: "/api/v1/uploads/" + up.id});
          self.scheduleSave();
          return;
        } catch (e) { problem = file.name + ": " + e.message; }
      }
      attachment.remove();
      PR.toast(problem, true);
    }).catch(function (e) { PR.toast(e.message, true); });
    return this.uploads;
  };

  /* -- canned responses --------------------------------------------------------------- */

  Composer.prototype.searchCanned = async function () {
    var self = this;
    var queue = this.options.queue;
    var ul = this.part("canned-list");
    try {
      var data = await PR.api("GET", "/api/v1/canned-responses?q=" + encodeURIComponent(this.part("canned-search").value));
      ul.textContent = "";
      data.canned_responses.filter(function (r) { return !r.queue || r.queue === queue; }).forEach(function (r) {
        var li = document.createElement("li");
        var b = document.createElement("button");
        b.type = "button";
        b.className = "canned-item";
        b.textContent = r.name;
        if (r.folder) {  /* the library folder, e.g. "Billing / Refunds", before the name */
          var f = document.createElement("span");
          f.className = "canned-folder";
          f.textContent = r.folder.split("/").join(" / ") + " / ";
          b.insertBefore(f, b.firstChild);
        }
        b.addEventListener("click", function () { self.previewCanned(r.id); });
        li.appendChild(b);
        ul.appendChild(li);
      });
      if (!ul.children.length) { ul.textContent = "No canned responses match."; }
    } catch (e) { ul.textContent = e.message; }
  };

  Composer.prototype.previewCanned = async function (id) {
    try {
      var r = await PR.api("POST", "/api/v1/canned-responses/" + id + "/render", this.options.cannedContext);
      this.canned = r;
      this.part("canned-preview-text").textContent = r.text || "";
      this.part("canned-preview").hidden = false;
    } catch (e) { PR.toast(e.message, true); }
  };

  /* At the cursor if the agent placed one since the editor was filled, else at the
     end of the text (above the signature while that is unchanged), one block per
     line like typed text, so the empty line before the signature stays. */
  Composer.prototype.insertCanned = async function () {
    if (!this.canned) { return; }
    var editor = await this.ready;
    var range = this.cursorKnown ? editor.getSelectedRange() : null;
    var html = linesToHTML(this.canned.text || "");
    this.part("canned-preview").hidden = true;
    this.part("canned").open = false;
    this.editorEl.focus();
    if (!html) { return; }
    if (range) {
      editor.setSelectedRange(range);
      editor.recordUndoEntry("Insert canned response");
      editor.insertHTML(html);
      this.scheduleSave();
      return;
    }
    await this.flush();
    var current = this.html();
    var sig = this.signature;
    if (sig && current.slice(-sig.length) === sig) {
      editor.loadHTML(current.slice(0, current.length - sig.length) + html + sig);
      this.scheduleSave();
    } else {
      await this.insertHTML(html, "end");
    }
  };

  /* -- checks and sending ------------------------------------------------------------- */

  Composer.prototype.checks = function (data) {
    var problems = [];
    if (ATTACH_WORDS.test(data.text) && !data.attachments.length) {
      problems.push("Your text mentions an attachment, but nothing is attached.");
    }
    var known = this.options.participants;
    if (known && data.kind !== "forward") {
      known = known.map(function (a) { return a.toLowerCase(); });
      var added = data.to.concat(data.cc, data.bcc).map(addressOf).filter(function (a) { return known.indexOf(a) < 0; });
      if (added.length) { problems.push("Not in this thread so far: " + added.join(", ") + "."); }
    }
    if (!this.bodyText(data).trim()) { problems.push("The message is empty."); }
    return problems;
  };

  Composer.prototype.send = async function (force) {
    /* One send at a time: a second Ctrl+Enter or click while the first is still
       flushing or posting would otherwise mail the customer twice. */
    if (this.sendBusy) { return; }
    this.sendBusy = true;
    try { await this.sendOnce(force); } finally { this.sendBusy = false; }
  };

  Composer.prototype.sendOnce = async function (force) {
    await this.flush();
    var data = this.collect();
    var missing = this.options.validate ? this.options.validate(data) : "";
    if (missing) { PR.toast(missing, true); return; }
    if (!force) {
      var problems = this.checks(data);
      if (problems.length) {
        var ul = this.part("check-list");
        ul.textContent = "";
        problems.forEach(function (p) { var li = document.createElement("li"); li.textContent = p; ul.appendChild(li); });
        this.part("check-dialog").showModal();
        return;
      }
    }
    clearTimeout(this.saveTimer);
    this.saveTimer = null;
    var button = this.part("send-button");
    button.disabled = true;
    this.sending = true;
    try {
      var result = await PR.api("POST", this.options.sendUrl, this.options.payload ? this.options.payload(data) : data);
      PR.toast("Sent: your message is on its way.");
      this.form.hidden = true;
      this.saved = null;
      await this.fill({kind: this.form.elements.kind.value});
      this.part("draft-status").textContent = "";
      this.options.onSent(result, data);
    } catch (e) {
      PR.toast("Not sent: " + e.message, true);
    } finally {
      this.sending = false;
      button.disabled = false;
    }
  };

  /* -- the page's composers ----------------------------------------------------------- */

  PR.Composer = Composer;

  PR.initComposer = function (form, options) {
    if (form._composer) { return form._composer; }
    var c = new Composer(form, options);
    form._composer = c;
    if (c.options.restore) { c.restore(); }
    return c;
  };

  /* the composer on this page (there is at most one) */
  PR.composer = function () {
    var form = document.querySelector("form.composer");
    return form ? PR.initComposer(form) : null;
  };
  PR.openComposer = function (kind) {
    var c = PR.composer();
    return c ? c.open(kind) : null;
  };
  PR.insertHTML = function (html, where) {
    var c = PR.composer();
    return c ? c.insertHTML(html, where) : null;
  };

  function startAll() {
    document.querySelectorAll("form.composer:not([data-manual])").forEach(function (f) { PR.initComposer(f); });
  }
  function owner(el) {
    var form = el && el.closest && el.closest("form.composer");
    return form ? PR.initComposer(form) : null;
  }

  /* -- wiring (delegated: composers are swapped in by htmx) --------------------------- */

  document.addEventListener("click", function (ev) {
    var t = ev.target.closest("button, input[type=button]");
    if (!t) { return; }
    if (t.dataset.compose) { PR.openComposer(t.dataset.compose); return; }
    var c = owner(t);
    if (!c) { return; }
    if (t.closest("trix-toolbar") && ev.detail === 0 && (t.dataset.trixAttribute || t.dataset.trixAction)) {
      /* Enter or Space on a toolbar button: Trix only listens for mousedown */
      t.dispatchEvent(new MouseEvent("mousedown", {bubbles: true, cancelable: true}));
    }
    if (t.dataset.composerAction === "clear") { c.clearFormatting(); }
    else if (t.id === "canned-insert") { c.insertCanned(); }
    else if (t.id === "check-send") { c.part("check-dialog").close(); c.send(true); }
    else if (t.id === "check-cancel") { c.part("check-dialog").close(); }
    else if (t.id === "discard-button") { c.discard(); }
  });
  /* keep the editor's selection when our own toolbar button is pressed */
  document.addEventListener("mousedown", function (ev) {
    if (ev.target.closest && ev.target.closest("[data-composer-action]")) { ev.preventDefault(); }
  });
  document.addEventListener("submit", function (ev) {
    var c = owner(ev.target);
    if (c && ev.target === c.form) { ev.preventDefault(); c.send(false); }
  });
  document.addEventListener("input", function (ev) {
    var c = owner(ev.target);
    if (!c) { return; }
    if (ev.target.id === "canned-search") { c.searchCanned(); return; }
    if (ev.target.id !== "c-files") { c.scheduleSave(); }
  });
  document.addEventListener("trix-change", function (ev) {
    var c = owner(ev.target);
    if (c) { c.scheduleSave(); }
  });
  document.addEventListener("trix-focus", function (ev) {
    var c = owner(ev.target);
    if (c) { c.cursorKnown = true; }
  });
  /* Pictures pasted or dropped into the text stay there (uploaded in
     trix-attachment-add); other files become Postroom attachments (limits, upload
     API), never embedded in the HTML. */
  document.addEventListener("trix-file-accept", function (ev) {
    var c = owner(ev.target);
    if (c && ev.file && INLINE_IMAGE.test(ev.file.type || "")) { return; }
    ev.preventDefault();
    if (c && ev.file) { c.upload([ev.file]); }
  });
  document.addEventListener("trix-attachment-add", function (ev) {
    var c = owner(ev.target);
    var a = ev.attachment;
    if (!c || !a) { return; }
    if (UPLOAD_URL.test(a.getAttribute("url") || "")) { return; }  /* uploaded already (a draft) */
    if (a.file && INLINE_IMAGE.test(a.file.type || "")) { c.uploadInline(a); return; }
    a.remove();
    PR.toast("Only pictures (PNG, JPEG, GIF, WebP) can go inside the text: attach other files instead.", true);
  });
  /* Capture phase, before Trix: Enter in a plain paragraph makes a new block (see
     breakBlock). */
  document.addEventListener("beforeinput", function (ev) {
    if (ev.inputType !== "insertParagraph" && ev.inputType !== "insertLineBreak") { return; }
    var c = owner(ev.target);
    var ranges = ev.getTargetRanges ? ev.getTargetRanges() : [];
    if (c && ev.target === c.editorEl && c.breakBlock(ranges[0])) {
      ev.preventDefault();
      ev.stopImmediatePropagation();
    }
  }, true);
  /* Capture phase, before Trix reads the clipboard: a paste that needs cleaning is
     inserted here instead (Trix still parses and sanitizes it); others go to Trix. */
  document.addEventListener("beforeinput", function (ev) {
    if (ev.inputType !== "insertFromPaste" || !ev.dataTransfer) { return; }
    var c = owner(ev.target);
    var html = ev.dataTransfer.getData("text/html");
    if (!c || !c.editorEl.editor || !html || ev.dataTransfer.getData("URL") || !PASTE_NEEDS_CLEANING.test(html)) { return; }
    ev.preventDefault();
    ev.stopImmediatePropagation();
    var cleaned = cleanPastedHTML(html);
    c.editorEl.editor.recordUndoEntry("Paste");
    c.editorEl.editor.insertHTML(cleaned.html);
    c.scheduleSave();
    if (cleaned.images) { PR.toast("Pictures in pasted text are left out: attach the files instead.", true); }
  }, true);
  document.addEventListener("change", function (ev) {
    var c = owner(ev.target);
    if (c && ev.target.id === "c-files") { c.upload(ev.target.files); ev.target.value = ""; }
  });
  document.addEventListener("toggle", function (ev) {
    var c = owner(ev.target);
    if (c && ev.target.id === "canned" && ev.target.open) { c.searchCanned(); }
    if (c && ev.target.id === "c-quote-preview") {
      ev.target.querySelector("summary").textContent = ev.target.open ? "… hide quoted text" : "… show quoted text";
    }
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
    var c = owner(zone);
    if (zone && c) { ev.preventDefault(); zone.classList.remove("over"); c.upload(ev.dataTransfer.files); }
  });
  /* Capture phase: Ctrl+Enter sends before the editor sees the key. */
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "Enter" || !(ev.ctrlKey || ev.metaKey)) { return; }
    var c = owner(ev.target);
    if (!c || ev.target.closest("dialog")) { return; }
    ev.preventDefault();
    ev.stopPropagation();
    c.send(false);
  }, true);
  document.addEventListener("htmx:beforeSwap", function (ev) {
    var target = ev.detail && ev.detail.target;
    if (!target || !target.querySelectorAll) { return; }
    target.querySelectorAll("form.composer").forEach(function (f) { if (f._composer) { f._composer.saveNow(); } });
  });
  document.addEventListener("htmx:afterSwap", startAll);
  document.addEventListener("DOMContentLoaded", startAll);
})();
