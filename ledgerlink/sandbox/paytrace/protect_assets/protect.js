/*
 * PayTrace Protect, as the ledgerlink PayTrace sandbox plays it (docs/sandbox-paytrace.md).
 *
 *   <div id="pt_hpf_form"></div>
 *   <script src="http://127.0.0.1:8102/js/protect.min.js"></script>
 *   PTPayment.setup({authorization: {clientKey: key}}).then(function () { ... });
 *   PTPayment.validate(function (errors) { if (!errors.length) PTPayment.process()
 *       .then(function (r) { r.message.hpf_token; r.message.enc_key; }); });
 *
 * The card fields live in an iframe served by the sandbox: the page that includes this
 * script never sees the card number. Messages between the two carry only commands, the
 * token and error texts.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var origin = new URL(script ? script.src : "/", window.location.href).origin;
  var frame = null;
  var ready = null;
  var markReady = null;
  var pending = {};
  var counter = 0;

  window.addEventListener("message", function (event) {
    var data = event.data;
    if (event.origin !== origin || !data || data.pt !== true) return;
    if (data.type === "ready") {
      if (markReady) markReady();
      return;
    }
    var resolve = pending[data.id];
    if (resolve) {
      delete pending[data.id];
      resolve(data.result);
    }
  });

  function ask(type) {
    if (!ready) return Promise.reject(new Error("Call PTPayment.setup first"));
    return ready.then(function () {
      return new Promise(function (resolve) {
        counter += 1;
        pending[counter] = resolve;
        frame.contentWindow.postMessage({ pt: true, id: counter, type: type }, origin);
      });
    });
  }

  window.PTPayment = {
    setup: function (options) {
      var key = options && options.authorization && options.authorization.clientKey;
      if (!key) return Promise.reject(new Error("PTPayment.setup needs authorization.clientKey"));
      var holder = document.getElementById("pt_hpf_form");
      if (!holder) return Promise.reject(new Error("PTPayment.setup needs an element with id pt_hpf_form"));
      ready = new Promise(function (resolve) { markReady = resolve; });
      frame = document.createElement("iframe");
      frame.id = "pt_hpf_frame";
      frame.title = "Card details (entered with PayTrace)";
      frame.setAttribute("style", "border:0;width:100%;min-height:150px");
      // The key travels in the fragment: it is never sent in a request line or logged.
      frame.src = origin + "/protect/fields#" + encodeURIComponent(key);
      holder.innerHTML = "";
      holder.appendChild(frame);
      return ready.then(function () { return { success: true }; });
    },
    validate: function (callback) {
      return ask("validate").then(function (errors) {
        if (typeof callback === "function") callback(errors);
        return errors;
      });
    },
    process: function () {
      return ask("process").then(function (result) {
        if (result && result.success) return result;
        throw result;
      });
    }
  };
})();
