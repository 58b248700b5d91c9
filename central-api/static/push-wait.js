// twostep Security info pages: the live wait for a push approval.
// The element with data-push-wait names the status URL, the form to submit
// once the request is answered, and the seconds until the request expires.
// Polling stops at that expiry (plus a few seconds), then the form is
// submitted once so the page shows what happened. Nothing else runs here.
(function () {
  "use strict";
  var box = document.querySelector("[data-push-wait]");
  if (!box) {
    return;
  }
  var form = document.getElementById(box.getAttribute("data-push-form"));
  var url = box.getAttribute("data-push-wait");
  var seconds = Number(box.getAttribute("data-push-seconds")) || 0;
  var until = Date.now() + 1000 * (Math.min(Math.max(seconds, 0), 600) + 3);
  var done = false;
  box.textContent = "Waiting for your answer in the app…";
  function finish() {
    if (!done && form) {
      done = true;
      box.textContent = "Answer received. One moment…";
      form.submit();
    }
  }
  function tick() {
    if (done) {
      return;
    }
    if (Date.now() > until) {
      finish();
      return;
    }
    fetch(url, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" }
    })
      .then(function (r) {
        return r.ok ? r.json() : { status: "pending" };
      })
      .then(function (j) {
        if (j.status === "pending") {
          setTimeout(tick, 1500);
        } else if (j.status === "none") {
          box.textContent = "";
        } else {
          finish();
        }
      })
      .catch(function () {
        setTimeout(tick, 3000);
      });
  }
  setTimeout(tick, 1000);
})();
