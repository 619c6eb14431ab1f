// The LiveKit caller page: ask the gateway for a room and a token (the agent is sent to the room),
// join it with livekit-client, publish the microphone, play (and record) the agent's voice.
"use strict";

(function () {
  const form = document.getElementById("livekit-call");
  const state = document.getElementById("call-state");
  const callButton = document.getElementById("call");
  const hangup = document.getElementById("hangup");
  const audioBox = document.getElementById("remote-audio");
  const LK = window.LivekitClient;
  // For whoever checks the call (the browser test): the room, the recording, the last error.
  window.livekitCall = { room: null, roomName: null, recording: null, error: null };

  function show(text) { state.textContent = text; }

  // The agent's audio as Float32 chunks at 16 kHz, kept in memory.
  function recorder(track) {
    const context = new AudioContext({ sampleRate: 16000 });
    const source = context.createMediaStreamSource(new MediaStream([track]));
    const node = context.createScriptProcessor(4096, 1, 1);
    const chunks = [];
    node.onaudioprocess = function (event) {
      chunks.push(new Float32Array(event.inputBuffer.getChannelData(0)));
    };
    source.connect(node);
    node.connect(context.destination);
    function total() { return chunks.reduce(function (n, c) { return n + c.length; }, 0); }
    return {
      seconds: function () { return total() / context.sampleRate; },
      // Little-endian PCM16 as base64 (what the test transcribes).
      pcm16Base64: function () {
        const bytes = new Uint8Array(total() * 2);
        const view = new DataView(bytes.buffer);
        let offset = 0;
        chunks.forEach(function (c) {
          for (let i = 0; i < c.length; i++) {
            const s = Math.max(-1, Math.min(1, c[i]));
            view.setInt16(offset, s < 0 ? s * 0x8000 : s * 0x7fff, true);
            offset += 2;
          }
        });
        let binary = "";
        for (let i = 0; i < bytes.length; i += 0x8000) {
          binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
        }
        return btoa(binary);
      },
      close: function () { node.disconnect(); source.disconnect(); context.close(); },
    };
  }

  async function join(tenant, agent) {
    const reply = await fetch(form.dataset.join, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ tenant: tenant, agent: agent }),
    });
    let body;
    try { body = await reply.json(); } catch (e) { body = { error: reply.statusText }; }
    if (!reply.ok) throw new Error(body.error || ("HTTP " + reply.status));
    return body;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    callButton.disabled = true;
    window.livekitCall.error = null;
    show("calling…");
    try {
      if (!LK) throw new Error("livekit-client is not loaded (make tools vendors it)");
      const grant = await join(form.tenant.value, form.agent.value);
      const room = new LK.Room({ adaptiveStream: false, dynacast: false });
      window.livekitCall.room = room;
      window.livekitCall.roomName = grant.room;
      room.on(LK.RoomEvent.TrackSubscribed, function (track) {
        if (track.kind !== LK.Track.Kind.Audio) return;
        audioBox.appendChild(track.attach());
        if (!window.livekitCall.recording) {
          window.livekitCall.recording = recorder(track.mediaStreamTrack);
        }
        show("talking");
      });
      room.on(LK.RoomEvent.Disconnected, function (reason) {
        show("ended (" + reason + ")");
        hangup.disabled = true;
        callButton.disabled = false;
      });
      await room.connect(grant.url, grant.token, { autoSubscribe: true });
      await room.localParticipant.setMicrophoneEnabled(true);
      show("waiting for the agent");
      hangup.disabled = false;
    } catch (error) {
      window.livekitCall.error = String(error.message || error);
      show("failed: " + window.livekitCall.error);
      callButton.disabled = false;
    }
  });

  hangup.addEventListener("click", function () {
    if (window.livekitCall.room) window.livekitCall.room.disconnect();
    hangup.disabled = true;
    callButton.disabled = false;
  });
})();
