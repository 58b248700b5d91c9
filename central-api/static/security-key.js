// twostep Security info pages: security keys (WebAuthn).
// The element with data-webauthn ("create" to register a key, "get" to
// sign in with one) carries the options the registry made, as JSON in
// data-webauthn-options. Its button (data-webauthn-button) asks the
// browser for the key; the answer, or the name of the browser's error, is
// posted in the form named by data-webauthn-form (fields "credential" and
// "error", the latter "Name: message"). The registry checks the answer and says what happened; this
// file only turns base64url into bytes and back.
(function () {
  "use strict";
  var box = document.querySelector("[data-webauthn]");
  if (!box) {
    return;
  }
  var mode = box.getAttribute("data-webauthn");
  var form = document.getElementById(box.getAttribute("data-webauthn-form"));
  var button = document.getElementById(box.getAttribute("data-webauthn-button"));
  var status = document.getElementById(box.getAttribute("data-webauthn-status"));

  function bytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      out[i] = raw.charCodeAt(i);
    }
    return out.buffer;
  }

  function text(buffer) {
    var a = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < a.length; i++) {
      raw += String.fromCharCode(a[i]);
    }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function send(field, value) {
    form.elements[field].value = value;
    form.submit();
  }

  if (!form || !button) {
    return;
  }
  if (!window.PublicKeyCredential || !navigator.credentials) {
    send("error", "NotSupportedError");
    return;
  }
  var pk = JSON.parse(box.getAttribute("data-webauthn-options")).publicKey;
  pk.challenge = bytes(pk.challenge);
  if (pk.user) {
    pk.user.id = bytes(pk.user.id);
  }
  [pk.excludeCredentials || [], pk.allowCredentials || []].forEach(function (list) {
    list.forEach(function (c) {
      c.id = bytes(c.id);
    });
  });
  button.hidden = false;
  button.addEventListener("click", function () {
    button.disabled = true;
    if (status) {
      status.textContent = "Follow your browser's instructions: insert your security key and touch it.";
    }
    var ask = mode === "create"
      ? navigator.credentials.create({ publicKey: pk })
      : navigator.credentials.get({ publicKey: pk });
    ask.then(function (cred) {
      var r = cred.response;
      var out = {
        id: cred.id,
        rawId: text(cred.rawId),
        type: cred.type,
        extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
        response: { clientDataJSON: text(r.clientDataJSON) }
      };
      if (mode === "create") {
        out.response.attestationObject = text(r.attestationObject);
        if (r.getTransports) {
          out.response.transports = r.getTransports();
        }
      } else {
        out.response.authenticatorData = text(r.authenticatorData);
        out.response.signature = text(r.signature);
        out.response.userHandle = r.userHandle ? text(r.userHandle) : null;
      }
      if (status) {
        status.textContent = "Checking your key…";
      }
      send("credential", JSON.stringify(out));
    }, function (e) {
      var what = (e && e.name) || "Error";
      if (e && e.message) {
        what += ": " + String(e.message).slice(0, 300);
      }
      send("error", what);
    });
  });
})();
