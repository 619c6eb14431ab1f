// Browser WebRTC for the softphone and the operator's talk button: microphone out, the other
// side's audio in (played, and recorded as 16 kHz mono samples for whoever wants to check it).
"use strict";

window.TrunklineRTC = (function () {
  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function iceGathered(pc, limitMs) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise(function (resolve) {
      const timer = setTimeout(resolve, limitMs);
      pc.addEventListener("icegatheringstatechange", function () {
        if (pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
      });
    });
  }

  // Records what the remote party says: Float32 chunks at 16 kHz, kept in memory.
  function recorder(stream) {
    const context = new AudioContext({ sampleRate: 16000 });
    const source = context.createMediaStreamSource(stream);
    const node = context.createScriptProcessor(4096, 1, 1);
    const chunks = [];
    node.onaudioprocess = function (event) {
      chunks.push(new Float32Array(event.inputBuffer.getChannelData(0)));
    };
    source.connect(node);
    node.connect(context.destination);
    return {
      sampleRate: context.sampleRate,
      // The recording as base64 little-endian PCM16 (what the tests transcribe).
      pcm16Base64: function () {
        let total = 0;
        chunks.forEach(function (c) { total += c.length; });
        const bytes = new Uint8Array(total * 2);
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
      seconds: function () {
        let total = 0;
        chunks.forEach(function (c) { total += c.length; });
        return total / context.sampleRate;
      },
      close: function () { node.disconnect(); source.disconnect(); context.close(); },
    };
  }

  // Offers our microphone to `offerUrl` (the console relays it to the gateway) with `extra`
  // fields; plays the answer's audio in `audioElement`. Resolves to {pc, recording, hangUp}.
  async function call(offerUrl, extra, audioElement, onState) {
    const microphone = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    const pc = new RTCPeerConnection({ iceServers: [] });
    microphone.getTracks().forEach(function (track) { pc.addTrack(track, microphone); });
    const remote = new MediaStream();
    const handle = { pc: pc, recording: null, microphone: microphone };
    pc.addEventListener("track", function (event) {
      remote.addTrack(event.track);
      audioElement.srcObject = remote;
      if (!handle.recording) handle.recording = recorder(remote);
    });
    pc.addEventListener("connectionstatechange", function () {
      if (onState) onState(pc.connectionState);
    });
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc, 3000);
    const reply = await fetch(offerUrl, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRF-Token": csrfToken(),
      },
      body: JSON.stringify(Object.assign({
        sdp: pc.localDescription.sdp, type: pc.localDescription.type,
      }, extra)),
    });
    let answer;
    try { answer = await reply.json(); } catch (e) { answer = { error: reply.statusText }; }
    if (!reply.ok) {
      pc.close();
      microphone.getTracks().forEach(function (t) { t.stop(); });
      throw new Error(answer.error || ("HTTP " + reply.status));
    }
    await pc.setRemoteDescription(answer);
    handle.hangUp = function () {
      microphone.getTracks().forEach(function (t) { t.stop(); });
      pc.close();
      if (onState) onState("closed");
    };
    return handle;
  }

  return { call: call, csrfToken: csrfToken };
})();
