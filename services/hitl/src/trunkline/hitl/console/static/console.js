// The console's live parts: server-sent events carry HTML fragments rendered by the server.
"use strict";

(function () {
  function fragment(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function tableFragment(html) {
    const table = document.createElement("table");
    table.innerHTML = "<tbody>" + html.trim() + "</tbody>";
    return table.querySelector("tr");
  }

  // The calls list: one row per call, live calls first, newest first.
  const calls = document.getElementById("calls");
  if (calls) {
    const body = calls.querySelector("tbody");
    const source = new EventSource(calls.dataset.stream);
    source.addEventListener("call", function (event) {
      const row = tableFragment(event.data);
      const old = document.getElementById(row.id);
      if (old) old.remove();
      const rows = Array.from(body.children);
      const key = function (r) {
        return [r.classList.contains("live") ? 1 : 0, parseFloat(r.dataset.started || "0")];
      };
      const mine = key(row);
      const before = rows.find(function (r) {
        const other = key(r);
        return other[0] < mine[0] || (other[0] === mine[0] && other[1] < mine[1]);
      });
      body.insertBefore(row, before || null);
    });
  }

  // One call: its transcript grows turn by turn, each with its waterfall.
  const transcript = document.getElementById("transcript");
  if (transcript) {
    const status = document.getElementById("status");
    const source = new EventSource(transcript.dataset.stream);
    source.addEventListener("turn", function (event) {
      const item = fragment(event.data);
      const old = document.getElementById(item.id);
      if (old) old.replaceWith(item); else transcript.appendChild(item);
    });
    // lines said while an operator is on the call, as each is transcribed
    source.addEventListener("line", function (event) {
      const item = fragment(event.data);
      const old = document.getElementById(item.id);
      if (old) old.replaceWith(item); else transcript.appendChild(item);
    });
    source.addEventListener("status", function (event) { status.innerHTML = event.data; });
  }

  // The queue: reload the lists whenever an escalation or approval event arrives.
  const queue = document.getElementById("queue");
  if (queue) {
    const source = new EventSource(queue.dataset.stream);
    // What the operator typed in a ticket's form (a note, edited arguments) survives a refresh:
    // another ticket's event must not wipe a note between typing it and pressing Deny.
    const typed = function () {
      const values = {};
      queue.querySelectorAll("li.ticket").forEach(function (item) {
        item.querySelectorAll("input[name], textarea[name]").forEach(function (field) {
          if (field.type !== "hidden" && field.value !== field.defaultValue) {
            values[item.id + "/" + field.name] = field.value;
          }
        });
      });
      return values;
    };
    // a refused decision's reason stays under its ticket across refreshes, until it is decided
    const refused = {};
    const showRefusal = function (item) {
      if (refused[item.id] === undefined) return;
      let shown = item.querySelector("p.error");
      if (!shown) {
        shown = document.createElement("p");
        shown.className = "error";
        shown.setAttribute("role", "alert");
        item.appendChild(shown);
      }
      shown.textContent = refused[item.id];
    };
    // Refreshes may overlap (an event while the last one is in flight) and their replies come
    // back in any order: only the latest one started is drawn, so an older, emptier list never
    // overwrites a newer one (a ticket once vanished that way until the next change).
    let latest = 0;
    const refresh = async function () {
      const mine = ++latest;
      const reply = await fetch(queue.dataset.items, { headers: { "Accept": "text/html" } });
      if (!reply.ok || mine !== latest) return;
      const html = await reply.text();
      if (mine !== latest) return;
      const values = typed();
      // the field being typed in keeps the focus and the caret across the refresh
      const active = document.activeElement;
      const item = active && active.closest ? active.closest("li.ticket") : null;
      const focus = item && queue.contains(item) && active.name
        ? { key: item.id + "/" + active.name, start: active.selectionStart, end: active.selectionEnd }
        : null;
      queue.innerHTML = html;
      queue.querySelectorAll("li.ticket").forEach(function (item) {
        showRefusal(item);
        item.querySelectorAll("input[name], textarea[name]").forEach(function (field) {
          const key = item.id + "/" + field.name;
          const value = values[key];
          if (value !== undefined) field.value = value;
          if (focus && focus.key === key) {
            field.focus();
            if (focus.start !== null && field.setSelectionRange) {
              field.setSelectionRange(focus.start, focus.end);
            }
          }
        });
      });
    };
    source.addEventListener("changed", refresh);
    // A decision goes without leaving the page (a full-page POST would reload the queue and
    // drop what was typed in the other tickets' forms); a refusal shows in the ticket, with
    // what was typed in it kept.
    queue.addEventListener("submit", async function (event) {
      const form = event.target;
      if (!form.matches || !form.matches("form.decide")) return;
      event.preventDefault();
      const data = new FormData(form);
      if (event.submitter && event.submitter.name) {
        data.set(event.submitter.name, event.submitter.value);
      }
      const buttons = form.querySelectorAll("button");
      buttons.forEach(function (b) { b.disabled = true; });
      const item = form.closest("li.ticket");
      let message = null;
      try {
        const reply = await fetch(form.action, {
          method: "POST",
          body: new URLSearchParams(data),
          headers: { "Accept": "application/json" },
          redirect: "manual",
        });
        if (reply.type !== "opaqueredirect" && !reply.ok) {
          const body = await reply.json().catch(function () { return {}; });
          message = body.error || ("the decision failed: HTTP " + reply.status);
        }
      } catch (error) {
        message = "the decision was not sent: " + String(error.message || error);
      }
      buttons.forEach(function (b) { b.disabled = false; });
      if (message === null) {
        if (item) delete refused[item.id];
        await refresh();
        return;
      }
      if (item) {
        refused[item.id] = message;
        showRefusal(item);
      } else {
        window.alert(message);
      }
    });
    // what changed between the page's rendering and the stream's start (or a reconnect): the
    // server says "ready" once it is subscribed ("open" comes with the headers, which may be
    // before that, and a ticket made in between would show only at the next change)
    source.addEventListener("ready", refresh);
  }

  // The handoff panel's talk button: the operator's microphone into the call.
  const talk = document.getElementById("talk");
  if (talk) {
    const start = document.getElementById("talk-start");
    const stop = document.getElementById("talk-stop");
    const state = document.getElementById("talk-state");
    window.operatorLine = { handle: null, error: null };
    start.addEventListener("click", async function () {
      start.disabled = true;
      state.textContent = "connecting…";
      try {
        window.operatorLine.handle = await TrunklineRTC.call(
          talk.dataset.offer, {}, document.getElementById("remote"),
          function (s) { state.textContent = s; });
        stop.disabled = false;
      } catch (error) {
        window.operatorLine.error = String(error.message || error);
        state.textContent = "failed: " + window.operatorLine.error;
        start.disabled = false;
      }
    });
    stop.addEventListener("click", function () {
      if (window.operatorLine.handle) window.operatorLine.handle.hangUp();
      stop.disabled = true;
      start.disabled = false;
    });
  }
})();
