/*
 * The pay-by-link page: PayTrace's hosted card fields (PTPayment, from PayTrace's own
 * script) turn the card into a one-time token; only that token is posted to ledgerlink.
 * The button is disabled while a payment is on its way (the server also takes one
 * payment per page, whatever is sent twice).
 */
(function () {
  "use strict";
  var form = document.getElementById("pay-form");
  if (!form || !window.PTPayment) return;
  var button = document.getElementById("pay-button");
  var status = document.getElementById("card-status");
  var ready = window.PTPayment.setup({ authorization: { clientKey: form.dataset.clientKey } });
  var sending = false;

  function describe(failure) {
    var errors = (failure && failure.errors) || [];
    if (!Array.isArray(errors)) {
      errors = Object.keys(errors).map(function (code) {
        return { description: [].concat(errors[code]).join(" ") };
      });
    }
    var texts = errors.map(function (e) { return e.description; }).filter(Boolean);
    return texts.length ? texts.join(" ") : "The card could not be sent to PayTrace; try again.";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (sending) return;
    sending = true;
    button.disabled = true;
    // No click reaches the form while the payment is on its way: the second click of a
    // double click must not land on "Save this card" (or anything else) instead.
    form.classList.add("sending");
    status.classList.remove("bad");
    status.setAttribute("role", "status");
    status.textContent = "Sending the card to PayTrace…";
    ready
      .then(function () { return window.PTPayment.validate(); })
      .then(function (errors) {
        if (errors && errors.length) throw { errors: errors };
        return window.PTPayment.process();
      })
      .then(function (result) {
        form.elements.hpf_token.value = result.message.hpf_token;
        form.elements.enc_key.value = result.message.enc_key;
        status.textContent = form.dataset.sendingText || "Paying…";
        form.submit();
      })
      .catch(function (failure) {
        sending = false;
        button.disabled = false;
        form.classList.remove("sending");
        // what the card fields refused, in red and read out at once, beside the fields
        status.classList.add("bad");
        status.setAttribute("role", "alert");
        status.textContent = describe(failure);
      });
  });
})();
