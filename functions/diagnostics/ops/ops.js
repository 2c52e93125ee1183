/* The Operations page: watch and steer one lead run.
 *
 * Every 2 s at most it reads the diagnostics answer and one page of `/leads` (same origin as the
 * page), and it steers through CONTROL_URL with the signed-in user's Firebase ID token. Every
 * value from the run is set as text (never as markup) and only http(s) links become hrefs.
 */
(function () {
  "use strict";
  var POLL_MS = 2000;
  var PAGE_SIZE = 25;
  var REASONS = ["no_email", "invalid_email", "invalid_slots", "no_slot", "calendar_failed",
    "meet_failed", "permanent_error", "expired", "dead_lettered", "cancelled"];
  var COUNT_LABELS = {
    sourced: "sourced", filtered: "filtered out", accepted: "accepted", rejected: "rejected",
    booked: "booked", noSlot: "no slot", sent: "sent", drafted: "drafted",
    foldersCreated: "folders", simulated: "simulated", pending: "pending", waiting: "waiting",
    paused: "paused", failed: "failed", cancelled: "cancelled", reverted: "reverted"
  };
  var ACTIONS = ["calendar", "email", "drive"];
  var FUNNEL_KEYS = ["sourced", "filtered", "accepted", "rejected", "booked", "noSlot", "sent",
    "drafted", "foldersCreated"];

  var config = JSON.parse(document.getElementById("ops-config").textContent);
  var base = location.pathname.replace(/ops\/?$/, "");
  var viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  var state = {
    token: null, user: null, runId: "", timer: null, generation: 0,
    pageTokens: [null], page: 0, nextToken: null, funnel: null, leads: null,
    pollError: "", steerError: "", lastOk: null, busy: false, pending: null
  };

  function $(id) { return document.getElementById(id); }
  function show(id, on) { $(id).hidden = !on; }
  function text(node, value) { node.textContent = value; return node; }
  function make(tag, cls, value) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (value !== undefined && value !== null) node.textContent = String(value);
    return node;
  }

  // -- times -------------------------------------------------------------------------------
  function formatIn(iso, zone) {
    var when = new Date(iso);
    if (isNaN(when.getTime())) return String(iso);
    var options = { year: "numeric", month: "short", day: "numeric", hour: "2-digit",
      minute: "2-digit", timeZoneName: "short" };
    try { return new Intl.DateTimeFormat(undefined, Object.assign({ timeZone: zone || undefined }, options)).format(when); }
    catch (e) { return new Intl.DateTimeFormat(undefined, options).format(when); }
  }
  function viewerTime(iso) { return iso ? formatIn(iso, viewerZone) : "—"; }
  /* A meeting in the lead's zone; a lead without one is shown as booked, in the host's zone. */
  function meetingTime(iso, zone) {
    if (zone) return formatIn(iso, zone) + " (" + zone + ")";
    var m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}).*?(Z|[+-]\d{2}:\d{2})$/.exec(String(iso));
    return m ? m[1] + " " + m[2] + " (UTC" + (m[3] === "Z" ? "" : m[3]) + ", the host's zone)" : String(iso);
  }

  // -- errors in words ----------------------------------------------------------------------
  function words(status, body, what) {
    var detail = body && body.error && body.error.message ? " (" + body.error.message + ")" : "";
    if (status === 401) return "Your sign-in was not accepted: it is missing or has expired. Sign in again." + detail;
    if (status === 403) return "You may not see or steer run " + state.runId + ": it belongs to another user." + detail;
    if (status === 404) return "There is no run called " + state.runId + "." + detail;
    if (status === 400) return "The request was refused" + detail + ".";
    if (status === 409) return "The run was cancelled: it cannot be paused, resumed or replayed any more." + detail;
    if (status === 0) return "The " + what + " cannot be reached: the network or the service is down. Retrying every 2 s.";
    return "The " + what + " answered " + status + detail + "; retrying.";
  }
  function renderError() {
    var message = [state.pollError, state.steerError].filter(Boolean).join(" ");
    text($("error"), message);
    show("error", !!message);
  }

  // -- sign-in ------------------------------------------------------------------------------
  function idToken() {
    if (config.signIn === "firebase" && window.firebase && firebase.auth().currentUser) {
      return firebase.auth().currentUser.getIdToken();
    }
    return Promise.resolve(state.token);
  }
  function signedIn(user) {
    state.user = user;
    show("signin-forms", !user);
    show("signed-in", !!user);
    text($("signed-in-as"), user || "");
    if (user && state.runId) restart();
    if (!user) stop();
  }
  function setupSignIn() {
    $("signout").addEventListener("click", function () {
      state.token = null;
      if (config.signIn === "firebase" && window.firebase) firebase.auth().signOut();
      clearRun();
      signedIn(null);
    });
    if (config.signIn === "uid") {
      var params = new URLSearchParams(location.search);
      if (params.get("uid")) $("signin-uid").value = params.get("uid");
      $("signin-form").addEventListener("submit", function (event) {
        event.preventDefault();
        var uid = $("signin-uid").value.trim();
        fetch(base + "ops/token", { method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ uid: uid }) })
          .then(function (r) { return r.json().then(function (b) { return { status: r.status, body: b }; }); })
          .then(function (a) {
            if (a.status !== 200) { state.pollError = words(a.status, a.body, "sign-in"); renderError(); return; }
            state.token = a.body.idToken;
            state.pollError = "";
            renderError();
            signedIn(uid);
          })
          .catch(function () { state.pollError = words(0, null, "sign-in"); renderError(); });
      });
      return;
    }
    if (config.signIn !== "firebase" || !window.firebase) {
      $("signin-google").disabled = true;
      show("signin-missing", true);
      return;
    }
    firebase.initializeApp(config.firebase);
    firebase.auth().onAuthStateChanged(function (user) {
      signedIn(user ? (user.email || user.uid) : null);
    });
    $("signin-google").addEventListener("click", function () {
      firebase.auth().signInWithPopup(new firebase.auth.GoogleAuthProvider()).catch(function (e) {
        state.pollError = "Sign-in failed: " + (e && e.message ? e.message : e);
        renderError();
      });
    });
  }

  // -- reading the run ----------------------------------------------------------------------
  function get(url) {
    return idToken().then(function (token) {
      return fetch(url, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
    }).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (b) { return { status: r.status, body: b }; });
    }, function () { return { status: 0, body: null }; });
  }
  function leadsUrl() {
    var q = new URLSearchParams({ runId: state.runId, pageSize: String(PAGE_SIZE) });
    var token = state.pageTokens[state.page];
    if (token) q.set("pageToken", token);
    if ($("filter-status").value) q.set("status", $("filter-status").value);
    if ($("filter-reason").value) q.set("reason", $("filter-reason").value);
    return base + "leads?" + q.toString();
  }
  function stop() {
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
    state.generation += 1;
  }
  function restart() {
    stop();
    if (state.user && state.runId) tick(state.generation);
  }
  function tick(generation) {
    var diagnostics = get(base + "?runId=" + encodeURIComponent(state.runId));
    var page = get(leadsUrl());
    Promise.all([diagnostics, page]).then(function (answers) {
      if (generation !== state.generation) return;
      var failed = answers.filter(function (a) { return a.status !== 200; })[0];
      if (failed) {
        state.pollError = words(failed.status, failed.body, "diagnostics service");
        if ([401, 403, 404, 400].indexOf(failed.status) >= 0) clearRun();
        else if (state.funnel) state.pollError += " Shown: the run as of " + viewerTime(state.lastOk) + ".";
      } else {
        state.pollError = "";
        state.lastOk = new Date().toISOString();
        state.funnel = answers[0].body;
        state.leads = answers[1].body;
        render();
      }
      renderError();
      show("loading", false);
      state.timer = setTimeout(function () { tick(generation); }, POLL_MS);
    });
  }
  function clearRun() {
    state.funnel = null;
    state.leads = null;
    show("run", false);
    $("counts").replaceChildren();
    $("leads").replaceChildren();
  }

  // -- rendering ----------------------------------------------------------------------------
  function render() {
    var f = state.funnel, counts = f.counts || {};
    show("run", true);
    text($("run-name"), f.runId);
    text($("mode"), f.dryRun ? "dry run: nothing is written to Google" : "live run");
    $("mode").className = "mode " + (f.dryRun ? "dry" : "live");
    text($("run-state"), f.state);
    $("run-state").className = "state state-" + f.state;
    text($("updated"), viewerTime(f.updatedAt));
    renderCounts(counts);
    renderFunnel(f.runId, counts);
    renderReasons(f.reasons || {});
    renderEta(f.eta || {});
    var waiting = counts.waiting || 0;
    text($("waiting-until"), waiting
      ? waiting + " action" + (waiting === 1 ? "" : "s") + " wait, until " + viewerTime(f.waitingUntil) +
        " at the latest; they resume by themselves."
      : "None: nothing waits for Google's limits.");
    renderButtons(f.state);
    renderLeads(state.leads);
  }
  /* The funnel is drawn by the server's one renderer (the report's), from these counts. */
  function renderFunnel(runId, counts) {
    var q = new URLSearchParams({ runId: runId });
    var shown = FUNNEL_KEYS.map(function (key) {
      q.set(key, String(counts[key] || 0));
      return (counts[key] || 0) + " " + (COUNT_LABELS[key] || key);
    });
    var submitted = (counts.accepted || 0) + (counts.rejected || 0);
    q.set("submitted", String(submitted));
    var src = base + "ops/funnel.svg?" + q.toString();
    var img = $("funnel");
    if (img.getAttribute("src") !== src) {
      img.src = src;
      img.alt = "Funnel: " + submitted + " submitted, " + shown.join(", ");
    }
  }
  function renderCounts(counts) {
    var list = $("counts");
    Object.keys(counts).forEach(function (key) {
      var value = $("count-" + key);
      if (!value) {
        var item = make("div", "count");
        item.appendChild(make("dt", null, COUNT_LABELS[key] || key));
        value = make("dd", "n");
        value.id = "count-" + key;
        value.setAttribute("data-testid", "count-" + key);
        item.appendChild(value);
        list.appendChild(item);
      }
      if (value.textContent !== String(counts[key])) value.textContent = String(counts[key]);
    });
  }
  function renderReasons(reasons) {
    var keys = Object.keys(reasons).sort(function (a, b) { return reasons[b] - reasons[a] || (a < b ? -1 : 1); });
    var list = $("reasons");
    list.replaceChildren();
    if (!keys.length) list.appendChild(make("li", "muted", "none"));
    keys.forEach(function (key) {
      var item = make("li");
      item.appendChild(make("code", null, key));
      item.appendChild(document.createTextNode(": " + reasons[key] + " lead" + (reasons[key] === 1 ? "" : "s")));
      list.appendChild(item);
    });
    var select = $("filter-reason");
    REASONS.concat(keys).forEach(function (code) {
      if (!select.querySelector('option[value="' + CSS.escape(code) + '"]')) {
        var option = make("option", null, code);
        option.value = code;
        select.appendChild(option);
      }
    });
  }
  function renderEta(eta) {
    var list = $("eta");
    list.replaceChildren();
    var hosts = Object.keys(eta).sort();
    if (!hosts.length) list.appendChild(make("li", "muted", "no host"));
    hosts.forEach(function (host) {
      var item = make("li");
      item.appendChild(make("span", "host", host));
      item.appendChild(document.createTextNode(": " + viewerTime(eta[host])));
      list.appendChild(item);
    });
  }
  function renderButtons(runState) {
    var busy = state.busy || !!state.pending;
    $("btn-pause").disabled = busy || runState !== "active";
    $("btn-resume").disabled = busy || runState !== "paused";
    $("btn-cancel").disabled = busy || runState === "cancelled";
    $("btn-undo").disabled = busy;
  }

  function safeHref(url) {
    try {
      var parsed = new URL(String(url));
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch (e) { return null; }
  }
  function link(url, label, kind) {
    var href = safeHref(url);
    if (!href) return null;
    var a = make("a", "link", label);
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.setAttribute("data-link", kind);
    return a;
  }
  function badgeKind(receipt) {
    if (receipt.status === "done") return receipt.outcome === "no_slot" || receipt.outcome === "drafted" ? "warn" : "ok";
    if (receipt.status === "pending") return "wait";
    if (receipt.status === "simulated") return "sim";
    if (receipt.status === "reverted" || receipt.status === "cancelled") return "off";
    return "bad";
  }
  function actionCell(action, receipt, lead) {
    var cell = make("td");
    cell.setAttribute("data-label", action);
    cell.setAttribute("data-action", action);
    if (!receipt) { cell.appendChild(make("span", "muted", "—")); return cell; }
    var status = receipt.status;
    var waiting = status === "pending" ? receipt.waiting : null;
    if (waiting && waiting.reason === "paused") status = "paused";
    else if (waiting) status = "waiting";
    cell.appendChild(make("span", "badge badge-" + badgeKind(receipt), status));
    var what = receipt.outcome || receipt.reason;
    if (what && what !== status) cell.appendChild(make("span", "what", " " + what));
    if (receipt.outcome && receipt.reason && receipt.reason !== receipt.outcome) {
      cell.appendChild(make("div", "detail", "reason: " + receipt.reason));
    }
    var external = receipt.external || {};
    if (action === "calendar" && external.start && (receipt.outcome === "booked")) {
      cell.appendChild(make("div", "detail", meetingTime(external.start, lead.timeZone) +
        (external.expanded ? " · outside the proposed slots" : "")));
    }
    if (waiting && waiting.reason !== "paused") {
      cell.appendChild(make("div", "detail", waiting.api + " " + waiting.reason + ", resumes " + viewerTime(waiting.until)));
    }
    if (receipt.revert) {
      cell.appendChild(make("div", "detail", receipt.revert.at
        ? "reverted " + viewerTime(receipt.revert.at) + " (" + receipt.revert.effect + ")" : "revert queued"));
    }
    if (receipt.error && receipt.error.message && status !== "done") {
      cell.appendChild(make("div", "detail", receipt.error.message));
    }
    return cell;
  }
  function linksCell(receipts) {
    var cell = make("td", "links");
    cell.setAttribute("data-label", "links");
    var cal = (receipts.calendar || {}).external || {};
    var mail = (receipts.email || {}).external || {};
    var folder = (receipts.drive || {}).external || {};
    var live = !((receipts.calendar || receipts.email || receipts.drive || {}).dryRun);
    var parts = [
      link(cal.htmlLink, "Event", "event"),
      link(cal.meetLink, "Meet", "meet"),
      live && mail.messageId ? link("https://mail.google.com/mail/u/0/#all/" + encodeURIComponent(mail.messageId), "Message", "message") : null,
      live && mail.draftId ? link("https://mail.google.com/mail/u/0/#drafts", "Draft", "draft") : null,
      link(folder.webViewLink, "Folder", "folder")
    ].filter(Boolean);
    if (!parts.length) cell.appendChild(make("span", "muted", "—"));
    parts.forEach(function (a) { cell.appendChild(a); cell.appendChild(document.createTextNode(" ")); });
    return cell;
  }
  /* Where keyboard focus is in the table (the lead's row and the focused control's place in
     it), so a refresh that rebuilds the rows puts it back. */
  function tableFocus(body) {
    var focused = document.activeElement;
    var row = focused && body.contains(focused) ? focused.closest("tr[data-lead]") : null;
    if (!row) return null;
    var controls = Array.prototype.slice.call(row.querySelectorAll("a, button, [tabindex]"));
    return { lead: row.getAttribute("data-lead"), at: controls.indexOf(focused) };
  }
  function restoreFocus(body, where) {
    if (!where) return;
    var row = body.querySelector('tr[data-lead="' + CSS.escape(where.lead) + '"]');
    var controls = row ? row.querySelectorAll("a, button, [tabindex]") : [];
    if (controls[where.at]) controls[where.at].focus();
  }
  function renderLeads(page) {
    var body = $("leads");
    var rows = (page && page.leads) || [];
    var drawn = JSON.stringify([rows, page && page.nextPageToken, state.page,
      $("filter-status").value, $("filter-reason").value]);
    if (drawn === state.drawnLeads && body.children.length) return;  // nothing changed: keep focus
    state.drawnLeads = drawn;
    var where = tableFocus(body);
    body.replaceChildren();
    rows.forEach(function (lead) {
      var row = make("tr");
      row.setAttribute("data-testid", "lead-row-" + lead.leadDocId);
      row.setAttribute("data-lead", lead.leadDocId);
      var who = make("th");
      who.scope = "row";
      who.setAttribute("data-label", "lead");
      who.appendChild(make("code", null, lead.leadDocId));
      var name = [lead.name, lead.company ? "(" + lead.company + ")" : ""].filter(Boolean).join(" ");
      if (name) who.appendChild(make("div", "detail", name));
      who.appendChild(make("div", "detail", lead.email || "no email"));
      row.appendChild(who);
      ACTIONS.forEach(function (action) { row.appendChild(actionCell(action, (lead.receipts || {})[action], lead)); });
      row.appendChild(linksCell(lead.receipts || {}));
      body.appendChild(row);
    });
    if (!rows.length) {
      var empty = make("tr");
      var cell = make("td", "muted", state.page || $("filter-status").value || $("filter-reason").value
        ? "No lead matches these filters." : "This run has no leads yet.");
      cell.colSpan = 5;
      empty.appendChild(cell);
      body.appendChild(empty);
    }
    restoreFocus(body, where);
    state.nextToken = page ? page.nextPageToken : null;
    $("next-page").disabled = !state.nextToken;
    $("prev-page").disabled = state.page === 0;
    text($("page-no"), "Page " + (state.page + 1));
    text($("leads-caption"), rows.length + " lead" + (rows.length === 1 ? "" : "s") + " on this page");
  }

  // -- steering -----------------------------------------------------------------------------
  function control(command, preview) {
    var body = { runId: state.runId, command: command };
    if (preview) body.preview = true;
    return idToken().then(function (token) {
      return fetch(config.controlUrl, { method: "POST", body: JSON.stringify(body),
        headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" } });
    }).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (b) { return { status: r.status, body: b }; });
    }, function () { return { status: 0, body: null }; });
  }
  function describe(command, answer) {
    var done = { pause: "Paused", resume: "Resumed", cancel: "Cancelled", undo: "Undo started", replay: "Replayed" }[command];
    var line = done + ": " + answer.affected + " action" + (answer.affected === 1 ? "" : "s") +
      " affected; the run is now " + answer.state + ".";
    var flying = answer.inFlight || [];
    if (flying.length) {
      line += " " + flying.length + " in flight finish the call they were making: " +
        flying.map(function (e) { return e.leadDocId + " " + e.action; }).join(", ") + ".";
    } else {
      line += " None was in flight.";
    }
    return line;
  }
  function steer(command, preview) {
    state.busy = true;
    renderButtons(state.funnel ? state.funnel.state : "");
    state.steerError = "";
    return control(command, preview).then(function (answer) {
      state.busy = false;
      if (answer.status !== 200) {
        state.steerError = (command.charAt(0).toUpperCase() + command.slice(1)) + " failed: " +
          words(answer.status, answer.body, "control service");
        renderError();
        renderButtons(state.funnel ? state.funnel.state : "");
        return null;
      }
      renderError();
      if (!preview) {
        text($("steer-result"), describe(command, answer.body));
        restart();
      }
      return answer.body;
    });
  }
  function ask(command, message) {
    state.pending = command;
    text($("confirm-text"), message);
    show("confirm-box", true);
    renderButtons(state.funnel ? state.funnel.state : "");
    $("confirm").focus();
  }
  function closeConfirm() {
    var command = state.pending;
    state.pending = null;
    show("confirm-box", false);
    renderButtons(state.funnel ? state.funnel.state : "");
    var back = command && $("btn-" + command);
    if (back) back.focus();
  }
  function setupSteering() {
    $("btn-pause").addEventListener("click", function () { steer("pause"); });
    $("btn-resume").addEventListener("click", function () { steer("resume"); });
    $("btn-cancel").addEventListener("click", function () {
      ask("cancel", "Cancel run " + state.runId + "? Every action not done yet ends for good, and the run " +
        "takes no more leads. What is already made stays: booked meetings stay booked.");
    });
    $("btn-undo").addEventListener("click", function () {
      steer("undo", true).then(function (preview) {
        if (!preview) return;
        var revert = preview.toRevert || {}, kept = preview.unrecallable || {};
        ask("undo", "Undo run " + state.runId + "? Actions not done yet end, then " + (revert.events || 0) +
          " meeting" + (revert.events === 1 ? "" : "s") + " will be cancelled (each lead gets Google's notice), " +
          (revert.folders || 0) + " folder" + (revert.folders === 1 ? "" : "s") + " moved to the trash and " +
          (revert.drafts || 0) + " draft" + (revert.drafts === 1 ? "" : "s") + " deleted. " +
          (kept.sent || 0) + " sent email" + (kept.sent === 1 ? "" : "s") + " cannot be recalled.");
      });
    });
    $("confirm").addEventListener("click", function () {
      var command = state.pending;
      closeConfirm();
      if (command) steer(command);
    });
    $("confirm-no").addEventListener("click", closeConfirm);
    $("confirm-box").addEventListener("keydown", function (event) {
      if (event.key === "Escape") closeConfirm();
    });
  }

  // -- the run, filters, pages --------------------------------------------------------------
  function resetPages() { state.pageTokens = [null]; state.page = 0; }
  function openRun(runId) {
    state.runId = runId;
    resetPages();
    clearRun();
    text($("steer-result"), "");
    state.steerError = "";
    state.pollError = "";
    renderError();
    var params = new URLSearchParams(location.search);
    params.set("runId", runId);
    params.delete("uid");
    history.replaceState(null, "", location.pathname + "?" + params.toString());
    if (state.user) { show("loading", true); restart(); }
  }
  function setupRun() {
    var params = new URLSearchParams(location.search);
    if (params.get("runId")) { $("run-id").value = params.get("runId"); state.runId = params.get("runId"); }
    $("run-form").addEventListener("submit", function (event) {
      event.preventDefault();
      openRun($("run-id").value.trim());
    });
    ["filter-status", "filter-reason"].forEach(function (id) {
      $(id).addEventListener("change", function () { resetPages(); restart(); });
    });
    $("next-page").addEventListener("click", function () {
      if (!state.nextToken) return;
      state.pageTokens = state.pageTokens.slice(0, state.page + 1).concat([state.nextToken]);
      state.page += 1;
      restart();
    });
    $("prev-page").addEventListener("click", function () {
      if (state.page === 0) return;
      state.page -= 1;
      restart();
    });
  }

  text($("viewer-zone"), viewerZone);
  setupRun();
  setupSteering();
  setupSignIn();
})();
