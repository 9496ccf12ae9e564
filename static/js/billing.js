// The billing page only: Paddle.js (loaded just before this file) opens Paddle's checkout for
// the configured price, with the business's id in custom_data (the webhook finds it there).
(function () {
  "use strict";
  var button = document.getElementById("paddle-checkout");
  if (!button || !window.Paddle) { return; }
  if (button.dataset.environment === "sandbox") { window.Paddle.Environment.set("sandbox"); }
  window.Paddle.Initialize({ token: button.dataset.token });
  button.hidden = false;
  var missing = document.getElementById("paddle-missing");
  if (missing) { missing.hidden = true; }
  button.addEventListener("click", function () {
    window.Paddle.Checkout.open({
      items: [{ priceId: button.dataset.price, quantity: 1 }],
      customData: { business_id: button.dataset.business },
      customer: { email: button.dataset.email },
      settings: { locale: document.documentElement.lang }
    });
  });
}());
