// The softphone page: call an agent, show the call's state, hang up.
"use strict";

(function () {
  const form = document.getElementById("softphone");
  const state = document.getElementById("call-state");
  const hangup = document.getElementById("hangup");
  const callButton = document.getElementById("call");
  const audio = document.getElementById("remote");
  window.softphone = { handle: null, error: null };

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    callButton.disabled = true;
    state.textContent = "calling…";
    const extra = { tenant: form.tenant.value, agent: form.agent.value };
    try {
      window.softphone.handle = await TrunklineRTC.call(
        form.dataset.offer, extra, audio, function (s) { state.textContent = s; });
      hangup.disabled = false;
    } catch (error) {
      window.softphone.error = String(error.message || error);
      state.textContent = "failed: " + window.softphone.error;
      callButton.disabled = false;
    }
  });

  hangup.addEventListener("click", function () {
    if (window.softphone.handle) window.softphone.handle.hangUp();
    hangup.disabled = true;
    callButton.disabled = false;
  });
})();
