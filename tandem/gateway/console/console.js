/*
 * tandem agent console: the page support agents use at /agent/. No build step, no dependencies.
 *
 * It talks to the agents' JSON API under /agent/api/ (docs/handoff.md, "The API"): the session is
 * the HttpOnly cookie `tandem_agent` (this script never sees it); the CSRF token the login returns
 * is kept in memory only and sent as X-CSRF-Token on every state-changing call.
 *
 * Safety: customer messages, agent names, summaries and slots are untrusted. Everything is built
 * with createElement/textContent; no HTML string is ever parsed. No inline style either (the page
 * CSP has no 'unsafe-inline'): visibility is the `hidden` property, looks are classes and data-*
 * attributes styled by console.css.
 */
(() => {
  "use strict";

  const script = document.currentScript;
  const API = (script && script.src ? new URL("../api", script.src).href : "/agent/api").replace(/\/+$/, "");

  const LIST_POLL_MS = 3000;
  const DETAIL_POLL_MS = 2000;
  const REQUEST_TIMEOUT_MS = 20000;
  const MAX_REPLY = 4000;
  const OPEN_STATUSES = new Set(["queued", "assigned"]);
  const ENDED_STATUSES = ["resolved", "closed", "expired", "cancelled"];
  const APPROVAL_STATUSES = ["queued", "approved", "denied"];
  const TABS = ["queued", "assigned", "resolved", "approvals"];

  const absFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const narrow = window.matchMedia("(max-width: 860px)");

  // ---------------------------------------------------------------- DOM helpers (nodes only, never HTML strings)
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- formatting
  function parseTime(iso) {
    if (!iso) return null;
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  function relativeTime(iso) {
    const date = parseTime(iso);
    if (!date) return "—";
    const seconds = Math.round((Date.now() - date.getTime()) / 1000);
    if (seconds < 45) return "just now";
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return `${minutes} min ago`;
    const hours = Math.round(minutes / 60);
    if (hours < 24) return `${hours} h ago`;
    const days = Math.round(hours / 24);
    if (days < 7) return days === 1 ? "yesterday" : `${days} days ago`;
    return absFormat.format(date);
  }

  function timeEl(iso, { relative = true, cls } = {}) {
    const date = parseTime(iso);
    if (!date) return el("span", { class: cls, text: "—" });
    return el("time", {
      class: cls,
      datetime: date.toISOString(),
      title: absFormat.format(date),
      text: relative ? relativeTime(iso) : absFormat.format(date),
    });
  }

  function shortTime(iso) {
    const date = parseTime(iso);
    if (!date) return "";
    return new Date().toDateString() === date.toDateString() ? timeFormat.format(date) : absFormat.format(date);
  }

  function humanize(text) {
    if (typeof text !== "string" || !text) return "—";
    if (!/^[a-z0-9_]+$/.test(text)) return text;
    const spaced = text.replace(/_/g, " ");
    return spaced.charAt(0).toUpperCase() + spaced.slice(1);
  }

  function money(amount, currency) {
    const value = Number(amount);
    if (currency && Number.isFinite(value)) {
      try {
        return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(value);
      } catch {
        // An unknown currency code: fall through to the plain form.
      }
    }
    return [amount, currency].filter((part) => part !== null && part !== undefined && part !== "").join(" ") || "—";
  }

  function slotValue(value) {
    if (Array.isArray(value)) return value.map((item) => slotValue(item)).join(", ");
    if (value && typeof value === "object") return JSON.stringify(value);
    if (typeof value === "boolean") return value ? "yes" : "no";
    return String(value);
  }

  function roleLabel(message) {
    switch (message.role) {
      case "customer":
        return "Customer";
      case "bot":
        return "Bot";
      case "agent":
        return message.agent_name || "Agent";
      case "system":
        return "System";
      default:
        return humanize(message.role);
    }
  }

  const sameId = (a, b) => a !== null && a !== undefined && b !== null && b !== undefined && String(a) === String(b);

  // ---------------------------------------------------------------- API calls
  class ApiError extends Error {
    constructor(status, body, retryAfterHeader) {
      const error = (body && body.error) || {};
      super(error.message || `The request failed (HTTP ${status}).`);
      this.status = status;
      this.code = error.code || `http_${status}`;
      const retry = Number(error.retry_after ?? retryAfterHeader ?? 0);
      this.retryAfter = Number.isFinite(retry) && retry > 0 ? Math.ceil(retry) : 0;
    }
  }
  class NetworkError extends Error {
    constructor(reason) {
      super(reason === "timeout" ? "The server took too long to answer." : "Cannot reach the server.");
      this.status = 0;
      this.code = reason;
    }
  }
  // Thrown after a 401 on an authenticated call: the session ended, the login form is back.
  class SessionEnded extends Error {}

  async function rawCall(method, path, body, withCsrf) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (withCsrf && state.csrf) headers["X-CSRF-Token"] = state.csrf;
    let response;
    try {
      response = await fetch(API + path, {
        method,
        credentials: "same-origin",
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
        cache: "no-store",
      });
    } catch (error) {
      throw new NetworkError(error && error.name === "AbortError" ? "timeout" : "offline");
    } finally {
      clearTimeout(timer);
    }
    if (response.status === 204) return null;
    let json = null;
    try {
      json = await response.json();
    } catch {
      json = null;
    }
    if (!response.ok) throw new ApiError(response.status, json, response.headers.get("Retry-After"));
    return json;
  }

  /**
   * An authenticated call. A 401 ends the session (back to the login form). A 403 `csrf_failed` on a
   * state-changing call fetches a fresh token from /me once and retries.
   */
  async function api(method, path, body) {
    const changing = method !== "GET";
    try {
      return await rawCall(method, path, body, changing);
    } catch (error) {
      if (error instanceof ApiError && error.status === 403 && error.code === "csrf_failed" && changing) {
        await refreshCsrf();
        return await authed(() => rawCall(method, path, body, true));
      }
      if (error instanceof ApiError && error.status === 401) {
        if (state.agent) endSession("Your session has ended. Please log in again.");
        throw new SessionEnded();
      }
      throw error;
    }
  }

  async function authed(fn) {
    try {
      return await fn();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        if (state.agent) endSession("Your session has ended. Please log in again.");
        throw new SessionEnded();
      }
      throw error;
    }
  }

  async function refreshCsrf() {
    const me = await authed(() => rawCall("GET", "/me", undefined, false));
    if (me && me.csrf_token) state.csrf = me.csrf_token;
  }

  // ---------------------------------------------------------------- state
  const state = {
    agent: null,
    csrf: null,
    tab: "queued",
    endedStatus: "resolved",
    approvalStatus: "queued",
    open: null, // [Handoff] queued + assigned
    ended: null, // [Handoff] of endedStatus
    approvals: null, // [Approval] of approvalStatus
    approvalsError: null,
    listTimer: null,
    listVersion: 0,
    listSignature: "",
    listsFailing: false,
    selectedId: null,
    detail: null, // the last HandoffDetail shown
    detailTimer: null,
    detailVersion: 0,
    detailNodes: null,
    transcriptKeys: [],
    undelivered: new Set(),
    busy: new Set(), // actions in flight ("claim", "send", "resolve", "close", "approval:<id>")
    statusTimer: null,
    loginTimer: null,
  };

  // ---------------------------------------------------------------- static elements
  const loginView = $("login-view");
  const loginForm = $("login-form");
  const loginEmail = $("login-email");
  const loginPassword = $("login-password");
  const loginError = $("login-error");
  const loginSubmit = $("login-submit");
  const appView = $("app-view");
  const agentName = $("agent-name");
  const agentRole = $("agent-role");
  const logoutButton = $("logout");
  const statusRegion = $("status");
  const layout = $("layout");
  const listPane = $("list-pane");
  const listBody = $("list-body");
  const endedToolbar = $("ended-toolbar");
  const endedSelect = $("ended-status");
  const detailPane = $("detail-pane");
  const detailPlaceholder = $("detail-placeholder");
  const detailRoot = $("detail");
  const tabButtons = Object.fromEntries(TABS.map((tab) => [tab, $(`tab-${tab}`)]));
  const counts = { queued: $("count-queued"), assigned: $("count-assigned"), approvals: $("count-approvals") };

  // The approvals tab's status filter lives in the same toolbar as the ended filter.
  const approvalSelect = el(
    "select",
    { id: "approval-status", "data-testid": "approval-status" },
    ...APPROVAL_STATUSES.map((status) => el("option", { value: status, text: humanize(status) })),
  );
  const approvalToolbar = el(
    "div",
    { class: "list-toolbar", hidden: true },
    el("label", { for: "approval-status", text: "Status" }),
    approvalSelect,
  );
  endedToolbar.after(approvalToolbar);

  // ---------------------------------------------------------------- status messages (the aria-live region)
  function showStatus(text, kind = "info", { sticky = false } = {}) {
    clearTimeout(state.statusTimer);
    statusRegion.textContent = text || "";
    if (text) statusRegion.dataset.kind = kind;
    else delete statusRegion.dataset.kind;
    if (text && !sticky) {
      state.statusTimer = setTimeout(() => showStatus(""), kind === "error" ? 12000 : 6000);
    }
  }

  function report(error, fallback) {
    if (error instanceof SessionEnded) return;
    if (error instanceof NetworkError) showStatus(`${error.message} Please try again.`, "error");
    else showStatus((error && error.message) || fallback || "Something went wrong.", "error");
  }

  function conflictMessage(error) {
    if (error.code === "already_assigned") return "Someone else claimed this handoff.";
    if (error.code === "not_assigned") return "This handoff is not assigned to you any more.";
    const ticket = /^ticket_([a-z_]+)$/.exec(error.code || "");
    if (ticket) return `This handoff is ${ticket[1].replace(/_/g, " ")} already.`;
    return error.message;
  }

  function forbiddenMessage(error) {
    if (error.code === "csrf_failed") return "The security check failed. Please reload the page.";
    return error.message || "You are not allowed to do that.";
  }

  // A failed action on a handoff: 409 and 403 get their own wording, then the detail is refreshed.
  function reportAction(error, fallback) {
    if (error instanceof ApiError && error.status === 409) showStatus(conflictMessage(error), "error");
    else if (error instanceof ApiError && error.status === 403) showStatus(forbiddenMessage(error), "error");
    else report(error, fallback);
  }

  // ---------------------------------------------------------------- login / session
  function showLogin(errorText) {
    appView.hidden = true;
    loginView.hidden = false;
    setLoginError(errorText || "");
    loginEmail.focus();
  }

  function setLoginError(text) {
    loginError.textContent = text;
    loginError.hidden = !text;
  }

  function startSession(payload) {
    state.csrf = payload.csrf_token || null;
    state.agent = payload.agent || null;
    if (!state.agent) {
      showLogin("The server sent an unexpected answer. Please try again.");
      return;
    }
    agentName.textContent = state.agent.display_name || state.agent.email || "Agent";
    agentRole.textContent = humanize(state.agent.role || "agent");
    agentRole.dataset.role = state.agent.role || "agent";
    loginPassword.value = "";
    setLoginError("");
    loginView.hidden = true;
    appView.hidden = false;
    applyHash();
    refreshLists();
  }

  function endSession(message) {
    clearTimeout(state.listTimer);
    clearTimeout(state.detailTimer);
    clearTimeout(state.loginTimer);
    Object.assign(state, {
      agent: null,
      csrf: null,
      open: null,
      ended: null,
      approvals: null,
      approvalsError: null,
      listSignature: "",
      listsFailing: false,
      selectedId: null,
      detail: null,
      detailNodes: null,
      transcriptKeys: [],
    });
    state.listVersion += 1;
    state.detailVersion += 1;
    state.undelivered.clear();
    state.busy.clear();
    listBody.replaceChildren();
    detailRoot.replaceChildren();
    detailRoot.hidden = true;
    detailPlaceholder.hidden = false;
    agentName.textContent = "";
    agentRole.textContent = "";
    for (const node of Object.values(counts)) node.textContent = "";
    loginSubmit.disabled = false;
    showLogin("");
    if (message) showStatus(message, "info");
  }

  loginForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (loginSubmit.disabled) return;
    const email = loginEmail.value.trim();
    const password = loginPassword.value;
    if (!email || !password) {
      setLoginError("Enter your e-mail and password.");
      (email ? loginPassword : loginEmail).focus();
      return;
    }
    setLoginError("");
    loginSubmit.disabled = true;
    loginSubmit.textContent = "Logging in…";
    let retryAfter = 0;
    try {
      const payload = await rawCall("POST", "/login", { email, password }, false);
      startSession(payload || {});
    } catch (error) {
      loginPassword.value = "";
      if (error instanceof ApiError && error.status === 401) {
        setLoginError("Wrong e-mail or password.");
      } else if (error instanceof ApiError && error.status === 429) {
        retryAfter = error.retryAfter || 60;
      } else if (error instanceof NetworkError) {
        setLoginError(`${error.message} Check your connection and try again.`);
      } else {
        setLoginError((error && error.message) || "Logging in failed. Please try again.");
      }
      loginPassword.focus();
    } finally {
      loginSubmit.textContent = "Log in";
      loginSubmit.disabled = false;
    }
    if (retryAfter) lockLogin(retryAfter);
  });

  // 429: the button stays disabled and the message counts down until the limit allows a new try.
  function lockLogin(seconds) {
    clearTimeout(state.loginTimer);
    let left = seconds;
    const tick = () => {
      if (left <= 0 || state.agent) {
        loginSubmit.disabled = false;
        if (!state.agent) setLoginError("");
        return;
      }
      loginSubmit.disabled = true;
      setLoginError(`Too many attempts — try again in ${left} s`);
      left -= 1;
      state.loginTimer = setTimeout(tick, 1000);
    };
    tick();
  }

  logoutButton.addEventListener("click", async () => {
    logoutButton.disabled = true;
    try {
      await rawCall("POST", "/logout", undefined, true);
    } catch {
      // 401 (already logged out) or a network error: the page forgets the session either way.
    } finally {
      logoutButton.disabled = false;
    }
    endSession("You are logged out.");
  });

  // ---------------------------------------------------------------- routing (#/queued, #/assigned/12, ...)
  function applyHash() {
    const match = /^#\/([a-z]+)(?:\/(\d+))?$/.exec(location.hash);
    const tab = match && TABS.includes(match[1]) ? match[1] : "queued";
    setTab(tab, { refresh: false, updateUrl: false });
    if (match && match[2] && tab !== "approvals") selectHandoff(Number(match[2]), { updateUrl: false });
    else closeDetail({ updateUrl: false });
  }

  function updateUrl() {
    const hash = `#/${state.tab}${state.selectedId !== null ? `/${state.selectedId}` : ""}`;
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  window.addEventListener("hashchange", () => {
    if (state.agent) {
      applyHash();
      refreshLists();
    }
  });

  // ---------------------------------------------------------------- tabs
  function setTab(tab, { refresh = true, updateUrl: write = true } = {}) {
    state.tab = tab;
    for (const [name, button] of Object.entries(tabButtons)) {
      const selected = name === tab;
      button.setAttribute("aria-selected", String(selected));
      button.tabIndex = selected ? 0 : -1;
    }
    listPane.setAttribute("aria-labelledby", `tab-${tab}`);
    endedToolbar.hidden = tab !== "resolved";
    approvalToolbar.hidden = tab !== "approvals";
    layout.dataset.tab = tab;
    detailPlaceholder.textContent =
      tab === "approvals"
        ? "Approving cancels the booking with the quoted refund; denying keeps it. The customer is told either way."
        : "Select a handoff to see its summary, transcript and slots.";
    if (tab === "approvals") closeDetail({ updateUrl: false });
    state.listSignature = "";
    renderList();
    if (write) updateUrl();
    if (refresh) refreshLists();
  }

  for (const [name, button] of Object.entries(tabButtons)) {
    button.addEventListener("click", () => {
      if (state.tab !== name) setTab(name);
    });
    button.addEventListener("keydown", (event) => {
      const index = TABS.indexOf(name);
      let next = null;
      if (event.key === "ArrowRight") next = TABS[(index + 1) % TABS.length];
      else if (event.key === "ArrowLeft") next = TABS[(index + TABS.length - 1) % TABS.length];
      else if (event.key === "Home") next = TABS[0];
      else if (event.key === "End") next = TABS[TABS.length - 1];
      if (!next) return;
      event.preventDefault();
      setTab(next);
      tabButtons[next].focus();
    });
  }

  endedSelect.addEventListener("change", () => {
    state.endedStatus = ENDED_STATUSES.includes(endedSelect.value) ? endedSelect.value : "resolved";
    state.ended = null;
    state.listSignature = "";
    renderList();
    refreshLists();
  });

  approvalSelect.addEventListener("change", () => {
    state.approvalStatus = APPROVAL_STATUSES.includes(approvalSelect.value) ? approvalSelect.value : "queued";
    state.approvals = null;
    state.listSignature = "";
    renderList();
    refreshLists();
  });

  // ---------------------------------------------------------------- lists: polling
  function scheduleLists(delay) {
    clearTimeout(state.listTimer);
    if (!state.agent) return;
    state.listTimer = setTimeout(pollLists, delay);
  }

  async function pollLists() {
    if (!state.agent) return;
    if (document.hidden) return; // visibilitychange starts it again
    await refreshLists();
  }

  /** Fetch what the tabs show (the open handoffs, the approvals, the ended list when on its tab). */
  async function refreshLists() {
    if (!state.agent) return;
    clearTimeout(state.listTimer);
    const version = ++state.listVersion;
    const endedStatus = state.endedStatus;
    const approvalStatus = state.approvalStatus;
    const wantEnded = state.tab === "resolved";
    const requests = [
      api("GET", "/handoffs?status=open&limit=200"),
      api("GET", `/approvals?status=${encodeURIComponent(approvalStatus)}`),
      wantEnded ? api("GET", `/handoffs?status=${encodeURIComponent(endedStatus)}&limit=100`) : Promise.resolve(null),
    ];
    const [open, approvals, ended] = await Promise.allSettled(requests);
    if (!state.agent || version !== state.listVersion) return;
    const results = [open, approvals, ended];
    if (results.some((r) => r.status === "rejected" && r.reason instanceof SessionEnded)) return;

    let failure = null;
    if (open.status === "fulfilled") state.open = (open.value && open.value.handoffs) || [];
    else failure = open.reason;
    if (approvals.status === "fulfilled") {
      if (approvalStatus === state.approvalStatus) state.approvals = (approvals.value && approvals.value.approvals) || [];
      state.approvalsError = null;
    } else if (approvals.reason instanceof ApiError && approvals.reason.status === 403) {
      // Not every agent may decide refunds: say so in the tab, not in a message every 3 s.
      state.approvals = [];
      state.approvalsError = forbiddenMessage(approvals.reason);
    } else {
      failure = failure || approvals.reason;
    }
    if (wantEnded) {
      if (ended.status === "fulfilled") {
        if (endedStatus === state.endedStatus) state.ended = (ended.value && ended.value.handoffs) || [];
      } else failure = failure || ended.reason;
    }

    if (failure) {
      if (!state.listsFailing) {
        if (failure instanceof NetworkError) showStatus("Connection lost — retrying…", "error", { sticky: true });
        else report(failure, "The queue could not be loaded.");
      }
      state.listsFailing = true;
    } else if (state.listsFailing) {
      state.listsFailing = false;
      if (statusRegion.textContent.startsWith("Connection lost")) showStatus("Connected again.", "info");
    }
    listBody.setAttribute("aria-busy", "false");
    renderCounts();
    renderList();
    scheduleLists(LIST_POLL_MS);
  }

  // ---------------------------------------------------------------- lists: rendering
  function isMine(handoff) {
    return Boolean(state.agent) && sameId(handoff.agent_id, state.agent.id);
  }

  function renderCounts() {
    const open = state.open || [];
    const queued = open.filter((h) => h.status === "queued").length;
    const assigned = open.filter((h) => h.status === "assigned").length;
    counts.queued.textContent = state.open ? String(queued) : "";
    counts.assigned.textContent = state.open ? String(assigned) : "";
    const pending = state.approvalStatus === "queued" && state.approvals ? state.approvals.length : null;
    if (pending !== null) counts.approvals.textContent = state.approvalsError ? "" : String(pending);
    counts.queued.dataset.attention = String(queued > 0);
    counts.approvals.dataset.attention = String(Boolean(pending));
    document.title = queued > 0 ? `(${queued}) Agent console — tandem` : "Agent console — tandem";
  }

  function renderList() {
    // Rebuild only when something changed (or a relative time may read differently): polling every
    // 3 s must not steal the keyboard focus or the scroll position for nothing.
    const tab = state.tab;
    const data =
      tab === "approvals"
        ? [state.approvals, state.approvalsError, state.approvalStatus]
        : tab === "resolved"
          ? [state.ended, state.endedStatus]
          : [state.open];
    const signature = JSON.stringify([
      tab,
      data,
      state.selectedId,
      [...state.busy],
      Math.floor(Date.now() / 30000),
    ]);
    if (signature === state.listSignature) return;
    state.listSignature = signature;

    const focused = document.activeElement;
    const focusRow = focused && listBody.contains(focused) ? focused.closest("[data-id]") : null;
    const focusKey = focusRow ? [focusRow.dataset.id, focused.dataset.testid || ""] : null;
    const scroll = listBody.scrollTop;

    const nodes = [];
    if (tab === "approvals") nodes.push(...approvalsList());
    else if (tab === "resolved") nodes.push(...handoffList(state.ended, `No ${state.endedStatus} handoffs.`));
    else if (tab === "queued") {
      const queued = state.open && state.open.filter((h) => h.status === "queued");
      nodes.push(...handoffList(queued, "Nobody is waiting. New handoffs appear here."));
    } else {
      const assigned = state.open && state.open.filter((h) => h.status === "assigned");
      if (!assigned) nodes.push(...handoffList(null, ""));
      else {
        const mine = assigned.filter(isMine);
        const others = assigned.filter((h) => !isMine(h));
        nodes.push(el("h2", { class: "list-heading", text: `Mine (${mine.length})` }));
        nodes.push(...handoffList(mine, "You have no handoffs. Claim one from the queue."));
        nodes.push(el("h2", { class: "list-heading", text: `Others (${others.length})` }));
        nodes.push(...handoffList(others, "No other agent has a handoff."));
      }
    }
    listBody.replaceChildren(...nodes);
    listBody.scrollTop = scroll;

    if (focusKey) {
      const row = listBody.querySelector(`[data-id="${CSS.escape(focusKey[0])}"]`);
      const target =
        row && (focusKey[1] ? row.querySelector(`[data-testid="${CSS.escape(focusKey[1])}"]`) : null);
      const fallback = row && row.querySelector("button");
      if (target || fallback) (target || fallback).focus();
    }
  }

  function handoffList(items, emptyText) {
    if (!items) return [el("p", { class: "list-empty", text: "Loading…" })];
    if (!items.length) return [el("p", { class: "list-empty", text: emptyText })];
    return [el("ul", { class: "rows" }, ...items.map(handoffRow))];
  }

  function handoffRow(handoff) {
    const selected = sameId(handoff.id, state.selectedId);
    const agent = handoff.agent_name
      ? el("span", { class: "row-agent", text: isMine(handoff) ? `${handoff.agent_name} (you)` : handoff.agent_name })
      : null;
    const button = el(
      "button",
      {
        type: "button",
        class: "row-button",
        "aria-current": selected ? "true" : null,
        onclick: () => selectHandoff(handoff.id),
      },
      el(
        "span",
        { class: "row-top" },
        el("span", { class: "row-id", text: `#${handoff.id}` }),
        el("span", { class: "badge badge-channel", "data-channel": handoff.channel || "", text: handoff.channel || "—" }),
        el("span", { class: "row-reason", text: humanize(handoff.reason) }),
        timeEl(handoff.created_at, { cls: "row-time" }),
      ),
      el("span", { class: "row-summary", text: handoff.summary || "No summary." }),
      agent || handoff.messages
        ? el(
            "span",
            { class: "row-bottom" },
            agent,
            handoff.messages
              ? el("span", {
                  class: "row-messages",
                  text: `${handoff.messages} message${handoff.messages === 1 ? "" : "s"}`,
                })
              : null,
          )
        : null,
    );
    return el(
      "li",
      {
        class: "row",
        "data-testid": "handoff-row",
        "data-id": handoff.id,
        "data-status": handoff.status,
        "data-selected": selected ? "true" : null,
      },
      button,
    );
  }

  function approvalsList() {
    if (state.approvalsError) return [el("p", { class: "list-empty", text: state.approvalsError })];
    const items = state.approvals;
    const label = state.approvalStatus === "queued" ? "No refunds wait for a decision." : `No ${state.approvalStatus} refunds.`;
    if (!items) return [el("p", { class: "list-empty", text: "Loading…" })];
    if (!items.length) return [el("p", { class: "list-empty", text: label })];
    return [el("ul", { class: "rows" }, ...items.map(approvalRow))];
  }

  function approvalRow(approval) {
    const busy = state.busy.has(`approval:${approval.id}`);
    const amount = money(approval.refund, approval.currency);
    const reference = approval.booking_reference || "—";
    const actions =
      approval.status === "queued"
        ? el(
            "div",
            { class: "row-actions" },
            el("button", {
              type: "button",
              class: "btn btn-primary btn-small",
              "data-testid": "approve",
              disabled: busy,
              text: "Approve",
              "aria-label": `Approve the refund for booking ${reference}`,
              onclick: () => decideApproval(approval, "approve"),
            }),
            el("button", {
              type: "button",
              class: "btn btn-danger btn-small",
              "data-testid": "deny",
              disabled: busy,
              text: "Deny",
              "aria-label": `Deny the refund for booking ${reference}`,
              onclick: () => decideApproval(approval, "deny"),
            }),
          )
        : el(
            "p",
            { class: "row-decided" },
            el("span", { class: "badge badge-status", "data-status": approval.status, text: humanize(approval.status) }),
            approval.agent_name ? ` by ${approval.agent_name}` : "",
            approval.decided_at ? " · " : "",
            approval.decided_at ? timeEl(approval.decided_at) : null,
          );
    return el(
      "li",
      { class: "row row-approval", "data-testid": "approval-row", "data-id": approval.id, "data-status": approval.status },
      el(
        "div",
        { class: "row-top" },
        el("span", { class: "row-id row-reference", text: reference }),
        el("span", { class: "row-amount", text: amount }),
        el("span", { class: "badge badge-channel", "data-channel": approval.channel || "", text: approval.channel || "—" }),
        timeEl(approval.created_at, { cls: "row-time" }),
      ),
      el("p", { class: "row-summary row-summary-full", text: approval.summary || "No summary." }),
      actions,
    );
  }

  async function decideApproval(approval, decision) {
    const key = `approval:${approval.id}`;
    if (state.busy.has(key)) return;
    const reference = approval.booking_reference || `#${approval.id}`;
    const amount = money(approval.refund, approval.currency);
    const question =
      decision === "approve"
        ? `Approve the refund of ${amount} for booking ${reference}? The booking is cancelled and the customer is told.`
        : `Deny the refund for booking ${reference}? The booking stays confirmed and the customer is told.`;
    if (!window.confirm(question)) return;
    state.busy.add(key);
    renderList();
    try {
      const result = await api("POST", `/approvals/${encodeURIComponent(approval.id)}/${decision}`);
      const verb = decision === "approve" ? "Approved" : "Denied";
      const told = result && result.notified === false ? " The customer could not be notified." : " The customer was told.";
      showStatus(`${verb}: the refund for booking ${reference}.${told}`, "success");
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) showStatus("This refund was decided already.", "error");
      else if (error instanceof ApiError && error.status === 403) showStatus(forbiddenMessage(error), "error");
      else report(error, "The decision could not be saved.");
    } finally {
      state.busy.delete(key);
    }
    state.listSignature = "";
    await refreshLists();
  }

  // ---------------------------------------------------------------- detail
  function selectHandoff(id, { updateUrl: write = true } = {}) {
    if (!state.agent || !Number.isFinite(Number(id))) return;
    const changed = !sameId(id, state.selectedId);
    state.selectedId = Number(id);
    layout.dataset.view = "detail";
    if (changed) {
      state.detail = null;
      state.detailNodes = null;
      state.transcriptKeys = [];
      state.detailVersion += 1;
      buildDetailSkeleton(state.selectedId);
    }
    detailPlaceholder.hidden = true;
    detailRoot.hidden = false;
    if (state.tab === "approvals") setTab("queued", { refresh: false, updateUrl: false });
    state.listSignature = "";
    renderList();
    if (write) updateUrl();
    // One column (narrow screens): the list is gone, so the keyboard focus moves to the detail.
    if (changed && state.detailNodes && narrow.matches) state.detailNodes.title.focus();
    loadDetail();
  }

  function closeDetail({ updateUrl: write = true } = {}) {
    clearTimeout(state.detailTimer);
    const previous = state.selectedId;
    state.selectedId = null;
    state.detail = null;
    state.detailNodes = null;
    state.transcriptKeys = [];
    state.detailVersion += 1;
    detailRoot.replaceChildren();
    detailRoot.hidden = true;
    detailPlaceholder.hidden = false;
    layout.dataset.view = "list";
    state.listSignature = "";
    renderList();
    if (write) updateUrl();
    // One column: back in the list, the keyboard focus returns to the row that was open.
    if (previous !== null && narrow.matches) {
      const row = listBody.querySelector(`[data-id="${CSS.escape(String(previous))}"] button`);
      if (row) row.focus();
    }
  }

  function scheduleDetail(delay) {
    clearTimeout(state.detailTimer);
    if (!state.agent || state.selectedId === null) return;
    state.detailTimer = setTimeout(() => {
      if (!document.hidden) loadDetail();
    }, delay);
  }

  async function loadDetail() {
    const id = state.selectedId;
    if (!state.agent || id === null) return;
    clearTimeout(state.detailTimer);
    const version = state.detailVersion;
    try {
      const result = await api("GET", `/handoffs/${encodeURIComponent(id)}`);
      // A claim, reply or resolve answered meanwhile: its answer is newer than this one.
      if (id !== state.selectedId || version !== state.detailVersion) return;
      renderDetail(result && result.handoff);
    } catch (error) {
      if (error instanceof SessionEnded || id !== state.selectedId) return;
      if (error instanceof ApiError && error.status === 404) {
        showStatus(`Handoff #${id} was not found.`, "error");
        closeDetail();
        return;
      }
      if (error instanceof ApiError && error.status === 403) {
        showStatus(forbiddenMessage(error), "error");
        closeDetail();
        return;
      }
      if (!(error instanceof NetworkError)) report(error, "The handoff could not be loaded.");
    }
    // The transcript refreshes while the handoff is open; an ended one does not change any more.
    if (!state.detail || OPEN_STATUSES.has(state.detail.status)) scheduleDetail(DETAIL_POLL_MS);
  }

  function section(title, ...children) {
    return el("section", { class: "detail-section" }, el("h3", { text: title }), ...children);
  }

  function buildDetailSkeleton(id) {
    const title = el("h2", { class: "detail-title", tabindex: "-1", text: `Handoff #${id}` });
    const statusBadge = el("span", { class: "badge badge-status", "data-testid": "detail-status" });
    const channelBadge = el("span", { class: "badge badge-channel" });
    const meta = el("p", { class: "detail-meta" });
    const back = el("button", {
      type: "button",
      class: "btn btn-ghost only-narrow",
      "data-testid": "back-to-list",
      text: "← Back to the list",
      onclick: () => closeDetail(),
    });
    const claim = el("button", {
      type: "button",
      class: "btn btn-primary",
      "data-testid": "claim",
      hidden: true,
      text: "Claim",
      onclick: claimHandoff,
    });
    const ownership = el("p", { class: "detail-ownership", hidden: true });

    const summary = el("p", { class: "detail-summary" });
    const llmBlock = el(
      "div",
      { class: "ai-summary", hidden: true },
      el("span", { class: "ai-label", text: "AI summary" }),
      el("p", { class: "ai-text" }),
    );
    const noteBlock = el(
      "div",
      { class: "detail-note", hidden: true },
      el("span", { class: "note-label", text: "Note" }),
      el("p", { class: "note-text" }),
    );
    const facts = el("dl", { class: "facts" });

    const slots = el("div", { class: "slots" });
    const transcript = el("ol", {
      class: "transcript",
      "data-testid": "transcript",
      role: "log",
      "aria-live": "polite",
      "aria-relevant": "additions",
      "aria-label": "Transcript",
      tabindex: "0",
    });

    // Reply
    const replyText = el("textarea", {
      id: "reply-text",
      class: "reply-text",
      rows: "3",
      maxlength: String(MAX_REPLY),
      placeholder: "Write to the customer… (Enter sends, Shift+Enter for a new line)",
      "data-testid": "reply-text",
    });
    const replyCounter = el("span", { class: "counter", "aria-live": "off" });
    const replySend = el("button", { type: "submit", class: "btn btn-primary", "data-testid": "reply-send", text: "Send" });
    const composer = el(
      "form",
      { class: "composer", hidden: true, "aria-label": "Reply to the customer" },
      el("label", { for: "reply-text", class: "field-label", text: "Reply" }),
      replyText,
      el("div", { class: "composer-bar" }, replyCounter, replySend),
    );
    composer.addEventListener("submit", (event) => {
      event.preventDefault();
      sendReply();
    });
    replyText.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
        sendReply();
      }
    });
    replyText.addEventListener("input", () => updateCounter());

    // Wrap up
    const resolveNote = el("textarea", {
      id: "resolve-note",
      class: "resolve-note",
      rows: "2",
      maxlength: "2000",
      placeholder: "Internal note (optional)",
      "data-testid": "resolve-note",
    });
    const outcome = el(
      "select",
      { id: "resolve-outcome", "data-testid": "resolve-outcome" },
      el("option", { value: "solved", text: "Solved" }),
      el("option", { value: "unsolved", text: "Not solved" }),
    );
    const resolve = el("button", {
      type: "button",
      class: "btn btn-success",
      "data-testid": "resolve",
      text: "Resolve",
      onclick: resolveHandoff,
    });
    const close = el("button", {
      type: "button",
      class: "btn btn-secondary",
      "data-testid": "close",
      text: "Close",
      title: "End the handoff without the hand-back message",
      onclick: closeHandoff,
    });
    const outcomeField = el(
      "div",
      { class: "field field-inline" },
      el("label", { for: "resolve-outcome", text: "Outcome" }),
      outcome,
    );
    const wrapup = el(
      "div",
      { class: "wrapup", hidden: true, role: "group", "aria-label": "Resolve or close" },
      el("label", { for: "resolve-note", class: "field-label", text: "Note" }),
      resolveNote,
      el("div", { class: "wrapup-bar" }, outcomeField, el("div", { class: "wrapup-buttons" }, resolve, close)),
    );

    const events = el("ol", { class: "events" });
    const eventsBlock = el(
      "details",
      { class: "detail-section events-block" },
      el("summary", { text: "Events" }),
      events,
    );

    detailRoot.replaceChildren(
      el(
        "header",
        { class: "detail-head" },
        back,
        el("div", { class: "detail-heading" }, title, el("div", { class: "badges" }, statusBadge, channelBadge)),
        meta,
        el("div", { class: "detail-actions" }, claim, ownership),
      ),
      section("Summary", summary, llmBlock, noteBlock, facts),
      section("Slots", slots),
      section("Transcript", transcript),
      composer,
      wrapup,
      eventsBlock,
    );
    detailRoot.dataset.id = String(id);
    delete detailRoot.dataset.status;
    state.detailNodes = {
      title,
      statusBadge,
      channelBadge,
      meta,
      claim,
      ownership,
      summary,
      llmBlock,
      noteBlock,
      facts,
      slots,
      transcript,
      composer,
      replyText,
      replySend,
      replyCounter,
      wrapup,
      resolveNote,
      outcome,
      outcomeField,
      resolve,
      close,
      events,
    };
    updateCounter();
  }

  function updateCounter() {
    const nodes = state.detailNodes;
    if (!nodes) return;
    const length = nodes.replyText.value.length;
    nodes.replyCounter.textContent = length > MAX_REPLY - 500 ? `${length} / ${MAX_REPLY}` : "";
  }

  function renderDetail(handoff) {
    const nodes = state.detailNodes;
    if (!handoff || !nodes || !sameId(handoff.id, state.selectedId)) return;
    state.detail = handoff;
    const mine = isMine(handoff);
    const admin = state.agent && state.agent.role === "admin";
    const status = handoff.status || "unknown";

    detailRoot.dataset.status = status;
    nodes.title.textContent = `Handoff #${handoff.id}`;
    nodes.statusBadge.textContent = humanize(status);
    nodes.statusBadge.dataset.status = status;
    nodes.channelBadge.textContent = handoff.channel || "—";
    nodes.channelBadge.dataset.channel = handoff.channel || "";

    const meta = [el("span", { text: humanize(handoff.reason) }), " · opened ", timeEl(handoff.created_at)];
    if (handoff.assigned_at) meta.push(" · claimed ", timeEl(handoff.assigned_at));
    if (handoff.ended_at) meta.push(" · ended ", timeEl(handoff.ended_at));
    nodes.meta.replaceChildren(...meta);

    // Actions by status. The server decides in the end (403/409 are shown), these only hide what cannot work.
    nodes.claim.hidden = status !== "queued";
    nodes.claim.disabled = state.busy.has("claim");
    let ownership = "";
    if (status === "assigned" && !mine) ownership = `Assigned to ${handoff.agent_name || "another agent"}.`;
    else if (status === "assigned" && mine) ownership = "You have this handoff.";
    else if (!OPEN_STATUSES.has(status)) ownership = `This handoff is ${humanize(status).toLowerCase()}.`;
    nodes.ownership.textContent = ownership;
    nodes.ownership.hidden = !ownership;

    nodes.composer.hidden = !(status === "assigned" && mine);
    const canResolve = status === "assigned" && (mine || admin);
    const canClose = status === "queued" || canResolve;
    nodes.wrapup.hidden = !canClose;
    nodes.resolve.hidden = !canResolve;
    nodes.outcomeField.hidden = !canResolve;
    nodes.close.hidden = !canClose;
    const wrapping = state.busy.has("resolve") || state.busy.has("close");
    nodes.resolve.disabled = wrapping;
    nodes.close.disabled = wrapping;

    // Summary, AI summary, note, facts
    nodes.summary.textContent = handoff.summary || "No summary.";
    nodes.llmBlock.hidden = !handoff.llm_summary;
    nodes.llmBlock.querySelector(".ai-text").textContent = handoff.llm_summary || "";
    nodes.noteBlock.hidden = !handoff.note;
    nodes.noteBlock.querySelector(".note-text").textContent = handoff.note || "";
    const facts = [
      ["Reason", humanize(handoff.reason)],
      ["Channel", handoff.channel || "—"],
      ["Status", humanize(status)],
      ["Agent", handoff.agent_name || "—"],
    ];
    nodes.facts.replaceChildren(
      ...facts.map(([term, value]) => el("div", { class: "fact" }, el("dt", { text: term }), el("dd", { text: value }))),
    );

    renderSlots(handoff.slots);
    renderTranscript(Array.isArray(handoff.transcript) ? handoff.transcript : []);
    renderEvents(Array.isArray(handoff.events) ? handoff.events : [], handoff);
  }

  function renderSlots(slots) {
    const nodes = state.detailNodes;
    const entries = Object.entries(slots && typeof slots === "object" ? slots : {}).filter(
      ([, value]) => value !== null && value !== undefined && value !== "" && !(Array.isArray(value) && !value.length),
    );
    const signature = JSON.stringify(entries);
    if (nodes.slots.dataset.signature === signature) return;
    nodes.slots.dataset.signature = signature;
    if (!entries.length) {
      nodes.slots.replaceChildren(el("p", { class: "muted", text: "No slots are set." }));
      return;
    }
    entries.sort(([a], [b]) => a.localeCompare(b));
    nodes.slots.replaceChildren(
      el(
        "table",
        { class: "kv", "data-testid": "slots" },
        el("caption", { class: "sr-only", text: "Slots" }),
        el("thead", null, el("tr", null, el("th", { scope: "col", text: "Slot" }), el("th", { scope: "col", text: "Value" }))),
        el(
          "tbody",
          null,
          ...entries.map(([key, value]) =>
            el("tr", { "data-slot": key }, el("th", { scope: "row", text: key }), el("td", { text: slotValue(value) })),
          ),
        ),
      ),
    );
  }

  function transcriptItems(messages) {
    const before = messages.filter((m) => m.phase !== "after");
    const after = messages.filter((m) => m.phase === "after");
    const key = (m, i) => (m.id !== null && m.id !== undefined ? `${m.phase}:${m.id}` : `${m.phase}#${i}`);
    return [
      ...before.map((m, i) => ({ key: key(m, i), message: m })),
      { key: "divider", divider: true },
      ...after.map((m, i) => ({ key: key(m, i), message: m })),
    ];
  }

  function messageNode(message) {
    const undelivered = message.id !== null && message.id !== undefined && state.undelivered.has(String(message.id));
    const role = message.role || "unknown";
    const mineAgent = role === "agent" && state.agent && message.agent_name === state.agent.display_name;
    return el(
      "li",
      {
        class: `msg msg-${role}${mineAgent ? " msg-own" : ""}`,
        "data-testid": "transcript-message",
        "data-role": role,
        "data-phase": message.phase || "",
        "data-id": message.id ?? null,
      },
      el(
        "div",
        { class: "msg-meta" },
        el("span", { class: "msg-who", text: roleLabel(message) }),
        message.at ? el("time", { datetime: message.at, title: absFormat.format(parseTime(message.at) || new Date()), text: shortTime(message.at) }) : null,
      ),
      el("div", { class: "msg-text", text: message.text || "" }),
      undelivered ? el("span", { class: "msg-flag", "data-testid": "not-delivered", text: "Not delivered" }) : null,
    );
  }

  function dividerNode() {
    const handoff = state.detail;
    return el(
      "li",
      { class: "transcript-divider", "data-testid": "transcript-divider", "aria-label": "Handed off to a person" },
      el("span", { text: handoff && handoff.created_at ? `Handed off · ${shortTime(handoff.created_at)}` : "Handed off" }),
    );
  }

  function itemNode(item) {
    return item.divider ? dividerNode() : messageNode(item.message);
  }

  function renderTranscript(messages, { force = false } = {}) {
    const nodes = state.detailNodes;
    const list = nodes.transcript;
    const items = transcriptItems(messages);
    const keys = items.map((item) => item.key);
    const old = state.transcriptKeys;
    const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
    const first = old.length === 0;
    const isPrefix = !force && old.length <= keys.length && old.every((k, i) => k === keys[i]);
    if (isPrefix && old.length === keys.length) return;
    if (isPrefix && !first) {
      for (const item of items.slice(old.length)) list.append(itemNode(item));
    } else {
      list.replaceChildren(...items.map(itemNode));
    }
    state.transcriptKeys = keys;
    if (first || nearBottom) list.scrollTop = list.scrollHeight;
  }

  function describeActor(actor, handoff) {
    if (!actor) return "—";
    const agent = /^agent:(.+)$/.exec(actor);
    if (agent) {
      if (state.agent && sameId(agent[1], state.agent.id)) return "you";
      if (handoff && sameId(agent[1], handoff.agent_id) && handoff.agent_name) return handoff.agent_name;
      return `agent ${agent[1]}`;
    }
    return actor;
  }

  function renderEvents(events, handoff) {
    const nodes = state.detailNodes;
    const signature = JSON.stringify(events);
    if (nodes.events.dataset.signature === signature) return;
    nodes.events.dataset.signature = signature;
    if (!events.length) {
      nodes.events.replaceChildren(el("li", { class: "muted", text: "No events yet." }));
      return;
    }
    nodes.events.replaceChildren(
      ...events.map((event) =>
        el(
          "li",
          { class: "event" },
          timeEl(event.at, { relative: false, cls: "event-time" }),
          el("span", {
            class: "event-change",
            text: event.from ? `${humanize(event.from)} → ${humanize(event.to)}` : humanize(event.to),
          }),
          el("span", { class: "event-actor", text: describeActor(event.actor, handoff) }),
        ),
      ),
    );
  }

  // ---------------------------------------------------------------- detail actions
  async function detailAction(kind, path, body, onSuccess) {
    const id = state.selectedId;
    if (id === null || state.busy.has(kind)) return;
    state.busy.add(kind);
    if (state.detail) renderDetail(state.detail);
    try {
      const result = await api("POST", `/handoffs/${encodeURIComponent(id)}${path}`, body);
      if (!sameId(id, state.selectedId)) return;
      state.detailVersion += 1; // an older poll's answer must not overwrite this one
      onSuccess(result || {});
    } catch (error) {
      if (error instanceof SessionEnded) return;
      reportAction(error, "That did not work. Please try again.");
      if (sameId(id, state.selectedId)) state.detailVersion += 1;
    } finally {
      state.busy.delete(kind);
      if (state.detail && sameId(id, state.selectedId)) renderDetail(state.detail);
    }
    if (sameId(id, state.selectedId)) loadDetail();
    state.listSignature = "";
    refreshLists();
  }

  function claimHandoff() {
    detailAction("claim", "/claim", undefined, (result) => {
      if (result.handoff) renderDetail(result.handoff);
      showStatus(`You claimed handoff #${state.selectedId}.`, "success");
      const nodes = state.detailNodes;
      if (nodes && !nodes.composer.hidden) nodes.replyText.focus();
    });
  }

  async function sendReply() {
    const nodes = state.detailNodes;
    const id = state.selectedId;
    if (!nodes || id === null || state.busy.has("send")) return;
    const text = nodes.replyText.value.trim();
    if (!text) {
      nodes.replyText.focus();
      return;
    }
    if (text.length > MAX_REPLY) {
      showStatus(`A reply has at most ${MAX_REPLY} characters.`, "error");
      return;
    }
    state.busy.add("send");
    nodes.replyText.disabled = true;
    nodes.replySend.disabled = true;
    nodes.replySend.textContent = "Sending…";
    try {
      const result = await api("POST", `/handoffs/${encodeURIComponent(id)}/messages`, { text });
      if (!sameId(id, state.selectedId) || state.detailNodes !== nodes) return;
      nodes.replyText.value = "";
      updateCounter();
      const message = result && result.message;
      if (result && result.delivered === false) {
        if (message && message.id !== null && message.id !== undefined) state.undelivered.add(String(message.id));
        showStatus("Saved, but not delivered to the customer's channel.", "error");
      }
      if (message && state.detail) {
        const transcript = Array.isArray(state.detail.transcript) ? state.detail.transcript.slice() : [];
        if (!transcript.some((m) => m.id !== null && m.id !== undefined && sameId(m.id, message.id))) {
          transcript.push({ phase: "after", ...message });
        }
        state.detail = { ...state.detail, transcript };
        state.detailVersion += 1;
        renderTranscript(transcript);
        nodes.transcript.scrollTop = nodes.transcript.scrollHeight;
      }
    } catch (error) {
      if (error instanceof SessionEnded) return;
      if (error instanceof ApiError && error.status === 403 && error.code !== "csrf_failed") {
        showStatus("This handoff belongs to another agent.", "error");
      } else reportAction(error, "The reply could not be sent.");
    } finally {
      state.busy.delete("send");
      if (state.detailNodes === nodes) {
        nodes.replyText.disabled = false;
        nodes.replySend.disabled = false;
        nodes.replySend.textContent = "Send";
        if (!nodes.composer.hidden) nodes.replyText.focus();
      }
    }
    if (sameId(id, state.selectedId)) loadDetail();
  }

  function wrapupBody(withOutcome) {
    const nodes = state.detailNodes;
    const body = {};
    const note = nodes.resolveNote.value.trim();
    if (note) body.note = note;
    if (withOutcome) body.outcome = nodes.outcome.value === "unsolved" ? "unsolved" : "solved";
    return body;
  }

  function resolveHandoff() {
    const id = state.selectedId;
    detailAction("resolve", "/resolve", wrapupBody(true), (result) => {
      if (state.detailNodes) state.detailNodes.resolveNote.value = "";
      if (result.handoff) renderDetail(result.handoff);
      const n = Number(result.bot_messages || 0);
      const sent = n ? ` The bot sent ${n} message${n === 1 ? "" : "s"}.` : "";
      showStatus(`Handoff #${id} is resolved: the customer is back with the bot.${sent}`, "success");
    });
  }

  function closeHandoff() {
    const id = state.selectedId;
    detailAction("close", "/close", wrapupBody(false), (result) => {
      if (state.detailNodes) state.detailNodes.resolveNote.value = "";
      if (result.handoff) renderDetail(result.handoff);
      showStatus(`Handoff #${id} is closed.`, "success");
    });
  }

  // ---------------------------------------------------------------- visibility: pause polling while hidden
  document.addEventListener("visibilitychange", () => {
    if (document.hidden || !state.agent) return;
    refreshLists();
    if (state.selectedId !== null) loadDetail();
  });

  // ---------------------------------------------------------------- start: resume a session, or log in
  async function boot() {
    try {
      const me = await rawCall("GET", "/me", undefined, false);
      startSession(me || {});
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) showLogin("");
      else if (error instanceof NetworkError) showLogin(`${error.message} Check your connection and reload the page.`);
      else showLogin((error && error.message) || "The console could not start. Please reload the page.");
    }
  }

  detailPane.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && layout.dataset.view === "detail" && !event.target.closest("textarea, select")) {
      closeDetail();
    }
  });

  boot();
})();
