// Live updates and "Copy for AI". No framework: the server renders HTML; this script polls the
// current page's fragment once a second (ETag, so an unchanged page costs a 304) and swaps it in.
(function () {
  "use strict";
  var main = document.getElementById("live");
  var etag = null;
  function busy() {
    var a = document.activeElement;
    return a && main.contains(a) && (a.tagName === "INPUT" || a.tagName === "SELECT" || a.tagName === "TEXTAREA");
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
      if (html !== null && html !== undefined && !busy()) main.innerHTML = html;
    }).catch(function () {});
  }
  setInterval(poll, 1000);

  var button = document.getElementById("copy-ai");
  var out = document.getElementById("ai-digest");
  var status = document.getElementById("copy-status");
  if (button) {
    button.addEventListener("click", function () {
      fetch(button.dataset.src, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (text) {
        out.value = text;
        out.hidden = false;
        out.dataset.loaded = "true";
        var done = function (msg) { status.textContent = msg; button.dataset.copied = msg === "Copied" ? "yes" : "no"; };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(text).then(function () { done("Copied"); }, function () { out.select(); done("Select and copy the text below"); });
        } else {
          out.select();
          done("Select and copy the text below");
        }
      });
    });
  }
})();
