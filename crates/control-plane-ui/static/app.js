// Live updates and "Copy for AI". No framework: the server renders HTML; this script polls the
// current page's fragment once a second (ETag, so an unchanged page costs a 304) and swaps it in,
// keeping keyboard focus where it was.
(function () {
  "use strict";
  var main = document.getElementById("live");
  // The page arrives with its content's ETag: the first poll of an unchanged page is a 304.
  var etag = (main && main.dataset.etag) || null;
  function busy() {
    var a = document.activeElement;
    return a && main.contains(a) && (a.tagName === "INPUT" || a.tagName === "SELECT" || a.tagName === "TEXTAREA");
  }
  // A key that finds "the same" control after the content was replaced.
  function focusKey(el) {
    if (!el || !main.contains(el) || el === main) return null;
    if (el.id) return "#" + CSS.escape(el.id);
    var form = el.form ? el.form.getAttribute("action") : null;
    if (form) return 'form[action="' + CSS.escape(form) + '"] ' + el.tagName.toLowerCase();
    var href = el.getAttribute && el.getAttribute("href");
    if (href) return el.tagName.toLowerCase() + '[href="' + CSS.escape(href) + '"]';
    return null;
  }
  function poll() {
    if (!main || main.dataset.live !== "true" || document.hidden || busy()) return;
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    var headers = {};
    if (etag) headers["If-None-Match"] = etag;
    fetch(url.toString(), { headers: headers, credentials: "same-origin" }).then(function (r) {
      if (r.status !== 200) return null;
      etag = r.headers.get("ETag");
      return r.text();
    }).then(function (html) {
      if (html === null || html === undefined || busy()) return;
      var key = focusKey(document.activeElement);
      main.innerHTML = html;
      if (key) {
        var again = main.querySelector(key);
        if (again) again.focus({ preventScroll: true });
      }
    }).catch(function () {});
  }
  setInterval(poll, 1000);

  var button = document.getElementById("copy-ai");
  var box = document.getElementById("ai-box");
  var out = document.getElementById("ai-digest");
  var status = document.getElementById("copy-status");
  var close = document.getElementById("ai-close");
  if (button) {
    button.setAttribute("aria-expanded", "false");
    button.addEventListener("click", function () {
      fetch(button.dataset.src, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (text) {
        out.value = text;
        box.hidden = false;
        button.setAttribute("aria-expanded", "true");
        out.dataset.loaded = "true";
        var done = function (msg) { status.textContent = msg; button.dataset.copied = msg === "Copied to the clipboard" ? "yes" : "no"; };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(text).then(function () { done("Copied to the clipboard"); }, function () { out.select(); done("Select and copy the text below"); });
        } else {
          out.select();
          done("Select and copy the text below");
        }
      });
    });
  }
  if (close) {
    close.addEventListener("click", function () {
      box.hidden = true;
      button.setAttribute("aria-expanded", "false");
      button.focus();
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && !box.hidden) close.click();
    });
  }
})();
