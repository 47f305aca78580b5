// CodeForge's pages work without this script; it only makes them live.
//
// - Regions: elements with `data-region` (and an id) are swapped for their fresh copy
//   from this page's own URL whenever something changed: a status change on the
//   tenant's stream (`data-status-stream` on <body>) or, on a run's page, a stored
//   event of the run. The page is rendered by the server only; this script never
//   builds markup from data.
// - The run monitor (`data-run-stream`): follows the run's SSE stream. Live output
//   (`event: delta`: model tokens, command stdout/stderr) is appended as text as it
//   comes; each stored event fetches the page with `?after=<last seq shown>` and
//   appends the new timeline entries.
// - Forms with `data-confirm` ask first; a policy problem's line link (`data-goto-line`)
//   selects that line in the editor.
(function () {
  "use strict";

  var ENDED = ["RunCompleted", "RunFailed", "RunCancelled"];
  var LIVE_CHARS = 100000;

  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // A problem of a policy document, clicked, also puts the cursor on its line in the
  // editor (the link alone shows the line in the numbered copy below).
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("[data-goto-line]");
    var editor = link && document.getElementById(link.getAttribute("data-editor"));
    if (!editor) return;
    var line = Number(link.getAttribute("data-goto-line"));
    var lines = editor.value.split("\n");
    var start = lines.slice(0, line - 1).join("\n").length + (line > 1 ? 1 : 0);
    var end = start + (lines[line - 1] || "").length;
    event.preventDefault();
    editor.focus();
    editor.setSelectionRange(start, end);
    // Scroll the line into the editor's view: lines are of equal height.
    var height = editor.scrollHeight / Math.max(lines.length, 1);
    editor.scrollTop = Math.max(0, (line - 3) * height);
  });

  // A task linked as /tasks#task-<id> opens.
  if (location.hash) {
    var target = document.getElementById(location.hash.slice(1));
    if (target && target.tagName === "DETAILS") target.open = true;
  }

  // --- regions --------------------------------------------------------------------

  function editing(element) {
    var active = document.activeElement;
    return active && active !== document.body && element.contains(active);
  }

  // Fetch `url` (this page by default) and swap every region for its fresh copy.
  // Resolves to the parsed document (or null when the page could not be read).
  function refresh(url) {
    return fetch(url || location.href, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    }).then(function (response) {
      if (response.redirected && new URL(response.url).pathname === "/sign-in") {
        location.reload(); // the session ended: the page says so
        return null;
      }
      if (!response.ok) return null;
      return response.text().then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-region]").forEach(function (region) {
          var copy = fresh.getElementById(region.id);
          // Never pull a form from under someone typing in it; the next refresh will.
          if (copy && !editing(region)) region.replaceWith(document.importNode(copy, true));
        });
        return fresh;
      });
    }).catch(function () { return null; });
  }

  // Coalesce bursts: at most one refresh in flight, one more queued.
  function coalesced(work) {
    var running = false;
    var again = false;
    function run() {
      if (running) { again = true; return; }
      running = true;
      setTimeout(function () {
        Promise.resolve(work()).then(function () {
          running = false;
          if (again) { again = false; run(); }
        });
      }, 150);
    }
    return run;
  }

  var statusStream = document.body.getAttribute("data-status-stream");
  if (statusStream && document.querySelector("[data-region]") && window.EventSource) {
    var refreshSoon = coalesced(function () { return refresh(); });
    var tenant = new EventSource(statusStream);
    tenant.addEventListener("status", refreshSoon);
    var note = document.querySelector("[data-live-note]");
    if (note) note.hidden = false;
  }

  // --- the run monitor ------------------------------------------------------------------

  var monitor = document.querySelector("[data-run-stream]");
  if (monitor && window.EventSource) followRun(monitor);

  function followRun(root) {
    var shown = Number(root.getAttribute("data-last-seq") || "0");
    var timeline = document.getElementById("timeline");
    var live = document.getElementById("live");
    var state = document.getElementById("stream-state");
    var ended = false;
    var stream = new EventSource(root.getAttribute("data-run-stream") + "?after=" + shown);

    function say(text) { if (state) state.textContent = text; }

    stream.onopen = function () { say("Following the run live."); };
    stream.onerror = function () {
      if (!ended) say(stream.readyState === EventSource.CLOSED ? "Disconnected: reload the page." : "Reconnecting…");
    };
    stream.addEventListener("delta", function (message) {
      var delta;
      try { delta = JSON.parse(message.data); } catch (e) { return; }
      appendDelta(delta);
    });

    var pull = coalesced(function () {
      var url = new URL(location.href);
      url.hash = "";
      url.searchParams.set("after", String(shown));
      return refresh(url.toString()).then(function (fresh) {
        if (!fresh) return;
        fresh.querySelectorAll("#timeline > li[data-seq]").forEach(function (item) {
          var seq = Number(item.getAttribute("data-seq"));
          if (seq <= shown) return;
          timeline.appendChild(document.importNode(item, true));
          shown = seq;
          settle(item);
        });
        if (ended) finish();
      });
    });

    (root.getAttribute("data-event-types") || "").split(",").forEach(function (type) {
      if (!type) return;
      stream.addEventListener(type, function () {
        if (ENDED.indexOf(type) >= 0) { ended = true; stream.close(); }
        pull();
      });
    });

    function finish() {
      say("The run has ended.");
      if (live) live.textContent = "";
      var section = document.getElementById("live-section");
      if (section) section.hidden = true;
    }

    // Live output, one block per stream and tool call, until the event that stores it.
    function appendDelta(delta) {
      if (!live || typeof delta.text !== "string") return;
      var call = delta.call_id || "";
      var key = delta.stream + ":" + call;
      var block = null;
      live.querySelectorAll(".live-block").forEach(function (candidate) {
        if (candidate.getAttribute("data-key") === key) block = candidate;
      });
      if (!block) {
        block = document.createElement("figure");
        block.className = "live-block";
        block.setAttribute("data-key", key);
        block.setAttribute("data-stream", delta.stream);
        block.setAttribute("data-call", call);
        var caption = document.createElement("figcaption");
        caption.textContent = label(delta.stream, call);
        var pre = document.createElement("pre");
        pre.className = delta.stream === "model" ? "prose" : "terminal";
        block.appendChild(caption);
        block.appendChild(pre);
        live.appendChild(block);
      }
      var out = block.querySelector("pre");
      var near = out.scrollTop + out.clientHeight >= out.scrollHeight - 20;
      var text = out.textContent + delta.text;
      out.textContent = text.length > LIVE_CHARS ? text.slice(text.length - LIVE_CHARS) : text;
      if (near) out.scrollTop = out.scrollHeight;
    }

    function label(stream, call) {
      var names = { model: "model text", tool_args: "tool call being written", stdout: "stdout", stderr: "stderr" };
      return (names[stream] || stream) + (call ? " — call " + call : "");
    }

    // A stored event holds what was streamed live for it: drop the live copy.
    function settle(item) {
      if (!live) return;
      var type = item.getAttribute("data-type");
      var call = item.getAttribute("data-call-id");
      live.querySelectorAll(".live-block").forEach(function (block) {
        var stream = block.getAttribute("data-stream");
        var isModel = stream === "model" || stream === "tool_args";
        if ((type === "ModelResponded" && isModel) ||
            (type === "ToolCallCompleted" && call && block.getAttribute("data-call") === call) ||
            (type === "QualityGatesChecked" && !isModel)) {
          block.remove();
        }
      });
    }
  }
})();
