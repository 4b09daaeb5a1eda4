/*
 * tandem chat widget: one <script> tag, no build step, no dependencies.
 *
 *   <script src="https://chat.example.com/widget/tandem-widget.js" defer
 *           data-gateway="https://chat.example.com" data-title="Andaman Air"
 *           data-accent="#0b4f8a" data-accent-text="#ffffff"
 *           data-greeting="Sawasdee! How can I help?"></script>
 *
 * Safety: bot and visitor text is never inserted as HTML. Everything is built with
 * createElement/textContent; the small markdown subset (bold, italic, code, lists, links) becomes
 * DOM nodes, and links are http(s) only, opened with rel="noopener noreferrer".
 * The session is an HttpOnly cookie set by the gateway: this script never sees it.
 */
(() => {
  "use strict";

  const script = document.currentScript || document.querySelector("script[data-tandem-widget]");
  if (!script || window.__tandemWidget) return;
  window.__tandemWidget = true;

  const data = script.dataset;
  const scriptUrl = new URL(script.src, document.baseURI);
  const config = {
    gateway: (data.gateway || scriptUrl.origin).replace(/\/+$/, ""),
    title: data.title || "Andaman Air",
    subtitle: data.subtitle || "Virtual assistant",
    accent: data.accent || "#0b4f8a",
    accentText: data.accentText || "#ffffff",
    greeting:
      data.greeting ||
      "Sawasdee! I'm the Andaman Air assistant. I can book flights, check or cancel a booking, give flight status and answer travel questions.",
    open: data.open === "true",
    maxChars: Number(data.maxChars || 1000),
    stylesheet: data.stylesheet || new URL("tandem-widget.css", scriptUrl).href,
  };

  const API = `${config.gateway}/api/v1`;
  const REQUEST_TIMEOUT_MS = 45000;
  const RETRY_DELAYS_MS = [1000, 2500, 5000];
  // While a handoff is open: GET /handoff every 2 s (paused while the page is hidden), backing off
  // on errors up to 30 s. After it ends, the history is reloaded until the bot's hand-back is in it.
  const HANDOFF_POLL_MS = 2000;
  const HANDOFF_POLL_MAX_MS = 30000;
  const HAND_BACK_RETRIES = 5;
  const HAND_BACK_RETRY_MS = 1500;
  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short" });

  // ---------------------------------------------------------------- DOM helpers (nodes only, never HTML strings)
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function icon(pathData, size = 20) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", String(size));
    svg.setAttribute("height", String(size));
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", pathData);
    path.setAttribute("fill", "currentColor");
    svg.append(path);
    return svg;
  }
  const ICONS = {
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2zm3 6v2h2v-2H7zm4 0v2h2v-2h-2zm4 0v2h2v-2h-2z",
    close: "M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z",
    send: "M3 20.5V14l9-2-9-2V3.5L22 12z",
    restart: "M12 5V2L7 6l5 4V7a5 5 0 1 1-5 5H5a7 7 0 1 0 7-7z",
    plane: "M21 16v-2l-8-5V3.5a1.5 1.5 0 0 0-3 0V9l-8 5v2l8-2.5V19l-2 1.5V22l3.5-1 3.5 1v-1.5L13 19v-5.5z",
    agent: "M12 12a4 4 0 1 0-4-4 4 4 0 0 0 4 4zm0 2c-3.3 0-8 1.7-8 5v1h16v-1c0-3.3-4.7-5-8-5z",
    star: "M12 17.3 18.2 21l-1.6-7L22 9.2l-7.2-.6L12 2 9.2 8.6 2 9.2 7.4 14l-1.6 7z",
  };

  // ---------------------------------------------------------------- safe markdown
  function safeUrl(raw) {
    try {
      const url = new URL(raw);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch {
      return null;
    }
  }

  function link(label, href) {
    const url = safeUrl(href);
    if (!url) return document.createTextNode(label);
    return el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: label });
  }

  // `code` | **bold** | [label](url) | bare URL | *italic* | _italic_
  const INLINE =
    /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\[[^\]\n]+\]\([^)\s]+\))|(https?:\/\/[^\s<>"'`]+)|(\*[^*\s][^*\n]*\*)|((?<![\p{L}\p{N}_])_[^_\n]+_(?![\p{L}\p{N}_]))/gu;

  function inline(text) {
    const fragment = document.createDocumentFragment();
    let last = 0;
    for (const match of text.matchAll(INLINE)) {
      let token = match[0];
      let trailing = "";
      if (match[4]) {
        // A sentence's full stop or closing bracket is not part of the URL.
        const cut = token.match(/[.,;:!?)\]]+$/);
        if (cut) {
          trailing = cut[0];
          token = token.slice(0, -trailing.length);
        }
      }
      fragment.append(document.createTextNode(text.slice(last, match.index)));
      if (match[1]) fragment.append(el("code", { text: token.slice(1, -1) }));
      else if (match[2]) fragment.append(el("strong", { text: token.slice(2, -2) }));
      else if (match[3]) {
        const split = token.indexOf("](");
        fragment.append(link(token.slice(1, split), token.slice(split + 2, -1)));
      } else if (match[4]) fragment.append(link(token, token));
      else fragment.append(el("em", { text: token.slice(1, -1) }));
      if (trailing) fragment.append(document.createTextNode(trailing));
      last = match.index + match[0].length;
    }
    fragment.append(document.createTextNode(text.slice(last)));
    return fragment;
  }

  /** Paragraphs, line breaks, bulleted and numbered lists, inline marks: DOM nodes only. */
  function markdown(text) {
    const root = document.createDocumentFragment();
    let list = null;
    let paragraph = null;
    for (const line of text.split(/\r?\n/)) {
      const bullet = line.match(/^\s*[-*•]\s+(.*)$/);
      const numbered = line.match(/^\s*(\d{1,2})[.)]\s+(.*)$/);
      if (bullet || numbered) {
        const tag = bullet ? "ul" : "ol";
        if (!list || list.tagName.toLowerCase() !== tag) {
          list = el(tag);
          root.append(list);
        }
        list.append(el("li", null, inline(bullet ? bullet[1] : numbered[2])));
        paragraph = null;
      } else if (!line.trim()) {
        list = null;
        paragraph = null;
      } else {
        list = null;
        if (paragraph) paragraph.append(el("br"));
        else {
          paragraph = el("p");
          root.append(paragraph);
        }
        paragraph.append(inline(line));
      }
    }
    return root;
  }

  // ---------------------------------------------------------------- gateway calls
  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      const error = (body && body.error) || {};
      super(error.message || "Something went wrong. Please try again.");
      this.status = status;
      this.code = error.code || "http_" + status;
      this.retryAfter = Number(error.retry_after || retryAfter || 0);
    }
  }
  class NetworkError extends Error {}

  async function call(method, path, body) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    let response;
    try {
      response = await fetch(API + path, {
        method,
        credentials: "include",
        headers: body === undefined ? {} : { "Content-Type": "application/json" },
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

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // One id per message, kept across its retries (automatic and "Retry"): the gateway answers a
  // retry of a message it already got with the first answer instead of sending it to the bot twice.
  function newMessageId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // ---------------------------------------------------------------- the widget
  const host = el("div", { id: "tandem-chat", "data-ready": "false", "data-loaded": "false", "data-busy": "false" });
  const shadow = host.attachShadow({ mode: "open" });
  host.style.setProperty("--tw-accent", config.accent);
  host.style.setProperty("--tw-accent-text", config.accentText);

  const launcher = el(
    "button",
    {
      class: "tw-launcher",
      type: "button",
      "aria-expanded": "false",
      "aria-controls": "tw-panel",
      "aria-label": `Chat with ${config.title}`,
    },
    icon(ICONS.chat, 28),
  );
  const titleId = "tw-title";
  const subtitle = el("p", { class: "tw-subtitle", text: config.subtitle });
  const newButton = el(
    "button",
    { class: "tw-icon", type: "button", "aria-label": "New conversation", title: "New conversation" },
    icon(ICONS.restart),
  );
  const closeButton = el(
    "button",
    { class: "tw-icon", type: "button", "aria-label": "Close chat", title: "Close chat" },
    icon(ICONS.close),
  );
  const header = el(
    "header",
    { class: "tw-header" },
    el("div", { class: "tw-avatar", "aria-hidden": "true" }, icon(ICONS.plane, 22)),
    el("div", { class: "tw-heading" }, el("h2", { id: titleId, text: config.title }), subtitle),
    newButton,
    closeButton,
  );
  const banner = el("div", { class: "tw-banner", role: "status", hidden: true });
  const log = el("ol", {
    class: "tw-log",
    role: "log",
    "aria-live": "polite",
    "aria-relevant": "additions",
    "aria-label": "Conversation",
    tabindex: "0",
  });
  const typing = el(
    "div",
    { class: "tw-typing", hidden: true },
    el("span", { class: "tw-dots", "aria-hidden": "true" }, el("span"), el("span"), el("span")),
    el("span", { class: "tw-typing-label", text: `${config.title} is typing…` }),
  );
  const input = el("textarea", {
    id: "tw-input",
    class: "tw-input",
    rows: "1",
    maxlength: String(config.maxChars),
    placeholder: "Type your message…",
    "aria-label": "Message",
    autocomplete: "off",
  });
  const sendButton = el("button", { class: "tw-send", type: "submit", "aria-label": "Send" }, icon(ICONS.send));
  const composer = el("form", { class: "tw-composer", "aria-label": "Send a message" }, input, sendButton);
  const footer = el("p", { class: "tw-footer", text: "Replies are automated. Don't share card numbers or passwords." });
  const panel = el(
    "section",
    { id: "tw-panel", class: "tw-panel", role: "dialog", "aria-modal": "false", "aria-labelledby": titleId, hidden: true },
    header,
    banner,
    log,
    typing,
    composer,
    footer,
  );
  const stylesheet = el("link", { rel: "stylesheet", href: config.stylesheet });
  shadow.append(stylesheet, launcher, panel);

  const state = {
    busy: false,
    loaded: false,
    blockedUntil: 0,
    handoff: null, // null | {state, agent_name, ...}
    pollTimer: null,
    polling: false, // a GET /handoff in flight
    pollFailures: 0,
    handoffCursor: 0, // the latest handoff message id seen (GET /handoff?after=)
    endedTickets: new Set(), // tickets the gateway said have ended: their old "pending" markers are stale
    lastMarker: null, // the latest custom.handoff rendered (is the bot's hand-back in the history yet?)
    cancelling: false,
    handoffNote: null, // a line under the handoff banner (a failed "Back to the assistant")
    bannerSignature: "",
    rendered: new Set(), // ids of the bot and agent messages shown (a poll never shows one twice)
    epoch: 0, // bumped by "New conversation": answers for the old one are dropped
    reloadWhenIdle: false,
    pending: [], // user messages not yet delivered: {li, body}
  };
  const channel = "BroadcastChannel" in window ? new BroadcastChannel("tandem-widget") : null;

  function setBanner(kind, text, actions) {
    banner.replaceChildren();
    if (!kind) {
      banner.hidden = true;
      banner.removeAttribute("data-kind");
      return;
    }
    banner.dataset.kind = kind;
    banner.append(el("span", { class: "tw-banner-text", text }));
    for (const action of actions || []) banner.append(action);
    banner.hidden = false;
  }

  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
  }

  function timeNode(iso) {
    const date = iso ? new Date(iso) : new Date();
    const today = new Date().toDateString() === date.toDateString();
    const label = today ? timeFormat.format(date) : `${dayFormat.format(date)}, ${timeFormat.format(date)}`;
    return el("time", { datetime: date.toISOString(), text: label });
  }

  function ratingLabel(payload) {
    const match = /^\/rate\{"rating":\s*(\d)\}$/.exec(payload || "");
    return match ? Number(match[1]) : null;
  }

  function renderUser(text, { timestamp, payload, pending } = {}) {
    const stars = ratingLabel(payload);
    const bubble = el("div", { class: "tw-bubble" });
    if (stars) {
      bubble.append(el("span", { class: "tw-stars", "aria-hidden": "true", text: "★".repeat(stars) + "☆".repeat(5 - stars) }));
      bubble.append(el("span", { class: "tw-sr", text: `Rated ${stars} out of 5` }));
    } else {
      bubble.textContent = text; // plain text, never HTML; CSS keeps the line breaks
    }
    const meta = el("div", { class: "tw-meta" }, el("span", { class: "tw-sr", text: "You: " }));
    const status = el("span", { class: "tw-status" });
    if (pending) status.textContent = "Sending…";
    else meta.append(timeNode(timestamp));
    meta.append(status);
    const li = el("li", { class: "tw-msg tw-user" + (pending ? " tw-pending" : "") }, bubble, meta);
    log.append(li);
    scrollToEnd();
    return li;
  }

  function renderBot(message) {
    const custom = message.custom || {};
    const agent = typeof custom.agent_name === "string" ? custom.agent_name : null;
    const li = el("li", { class: "tw-msg tw-bot" + (agent ? " tw-agent" : "") });
    const who = agent || config.title;
    if (typeof message.id === "string" && message.id) state.rendered.add(message.id);
    if (message.text) li.append(el("div", { class: "tw-bubble" }, markdown(message.text)));
    const image = message.image && safeUrl(message.image);
    if (image) {
      li.append(
        el("img", {
          class: "tw-image",
          src: image,
          alt: typeof custom.alt === "string" ? custom.alt : `Image from ${who}`,
          loading: "lazy",
          referrerpolicy: "no-referrer",
        }),
      );
    }
    if (custom.handoff && typeof custom.handoff === "object") setHandoff(custom.handoff);
    if (li.childElementCount === 0) return null; // a marker only ({"handoff": ...}): no empty bubble
    // A person's message shows their name; the bot's name is for screen readers only.
    const meta = el("div", { class: "tw-meta" });
    if (agent) meta.append(el("span", { class: "tw-who", text: agent }), el("span", { class: "tw-sr", text: ": " }));
    else meta.append(el("span", { class: "tw-sr", text: `${who}: ` }));
    meta.append(timeNode(message.timestamp));
    li.append(meta);
    log.append(li);
    scrollToEnd();
    return li;
  }

  function clearChoices() {
    for (const node of log.querySelectorAll(".tw-choices")) node.remove();
  }

  function renderChoices(buttons) {
    clearChoices();
    if (!buttons.length) return;
    const ratings = buttons.every((b) => ratingLabel(b.payload) !== null);
    const group = el("li", {
      class: "tw-choices" + (ratings ? " tw-rating" : ""),
      role: "group",
      "aria-label": ratings ? "Rate this conversation from 1 (poor) to 5 (excellent)" : "Suggested replies",
    });
    for (const button of buttons) {
      const stars = ratingLabel(button.payload);
      const attrs = {
        class: "tw-choice",
        type: "button",
        onclick: () => choose(button),
      };
      if (stars) {
        attrs["aria-label"] = `Rate ${stars} out of 5`;
        attrs.title = `${stars} out of 5`;
        group.append(el("button", attrs, icon(ICONS.star, 22), el("span", { text: String(stars) })));
      } else {
        attrs.text = button.title;
        group.append(el("button", attrs));
      }
    }
    if (ratings) group.append(el("p", { class: "tw-rating-scale", "aria-hidden": "true", text: "1 = poor · 5 = excellent" }));
    log.append(group);
    scrollToEnd();
  }

  function renderGreeting() {
    renderBot({ text: config.greeting, timestamp: null, custom: { local: true } });
  }

  function renderHistory(messages) {
    log.replaceChildren();
    const previous = state.handoff;
    state.handoff = null;
    state.lastMarker = null;
    state.rendered = new Set();
    renderGreeting();
    let lastUser = -1;
    messages.forEach((m, i) => {
      if (m.role === "user") lastUser = i;
    });
    for (const message of messages) {
      // The handoff's messages have the ids "h<id>": the poll goes on after the latest.
      const handoffId = /^h(\d+)$/.exec(typeof message.id === "string" ? message.id : "");
      if (handoffId) state.handoffCursor = Math.max(state.handoffCursor, Number(handoffId[1]));
      if (message.role === "user") renderUser(message.text || "", { timestamp: message.timestamp, payload: message.payload });
      else renderBot(message);
    }
    // The tracker only has the bot's "pending" marker: an agent who joined since is known from the poll.
    const current = state.handoff;
    if (current && previous && previous.state === "agent_joined" && previous.ticket_id === current.ticket_id) {
      state.handoff = previous;
    }
    const offered = messages.slice(lastUser + 1).flatMap((m) => m.buttons || []);
    renderChoices(offered);
    updateHandoffUi();
  }

  // ---------------------------------------------------------------- handoff ("an agent will join")
  function setHandoff(handoff) {
    state.lastMarker = handoff;
    const stale = Number.isInteger(handoff.ticket_id) && state.endedTickets.has(handoff.ticket_id);
    state.handoff = handoff.state === "ended" || stale ? null : handoff;
    updateHandoffUi();
  }

  function updateHandoffUi() {
    const handoff = state.handoff;
    host.dataset.handoff = handoff ? handoff.state : "none";
    syncHandoffPolling();
    if (!handoff) {
      subtitle.textContent = config.subtitle;
      if (banner.dataset.kind === "handoff") setBanner(null);
      state.handoffNote = null;
      return;
    }
    const joined = handoff.state === "agent_joined";
    const name = handoff.agent_name ? String(handoff.agent_name) : "An agent";
    subtitle.textContent = joined ? `${name} is chatting with you` : "Waiting for an agent…";
    if (banner.dataset.kind === "confirm") return; // its "Cancel" brings this banner back
    // Rebuilt only when it changes: a poll every 2 s must not take the focus off its button.
    const signature = JSON.stringify([handoff.state, name, state.cancelling, state.handoffNote]);
    if (banner.dataset.kind === "handoff" && state.bannerSignature === signature) return;
    const actions = [];
    if (!joined) {
      actions.push(
        el("button", {
          class: "tw-link-button tw-strong tw-handoff-cancel",
          type: "button",
          text: "Back to the assistant",
          disabled: state.cancelling,
          onclick: cancelHandoff,
        }),
      );
    }
    if (state.handoffNote) actions.push(el("span", { class: "tw-banner-note", text: state.handoffNote }));
    setBanner(
      "handoff",
      joined
        ? `${name} from our support team has joined the conversation.`
        : "An agent will join this conversation soon. You can keep writing here; we'll keep your place.",
      actions,
    );
    banner.prepend(icon(ICONS.agent, 18));
    state.bannerSignature = signature;
  }

  // Agents' replies and the handoff's state come from GET /handoff?after=<cursor>: one request in
  // flight at most, every HANDOFF_POLL_MS while a handoff is open, slower after errors.
  function syncHandoffPolling() {
    if (!state.handoff) {
      clearTimeout(state.pollTimer);
      state.pollTimer = null;
      return;
    }
    if (state.pollTimer === null && !state.polling) schedulePoll(0);
  }

  function schedulePoll(delay) {
    clearTimeout(state.pollTimer);
    state.pollTimer = state.handoff ? setTimeout(pollHandoff, delay) : null;
  }

  async function pollHandoff() {
    state.pollTimer = null;
    if (!state.handoff || state.polling) return;
    if (document.hidden) {
      schedulePoll(HANDOFF_POLL_MS); // no request while nobody looks
      return;
    }
    state.polling = true;
    const epoch = state.epoch;
    let next = HANDOFF_POLL_MS;
    let open = true;
    try {
      const view = await call("GET", `/handoff?after=${encodeURIComponent(state.handoffCursor)}`);
      if (epoch !== state.epoch) return;
      state.pollFailures = 0;
      open = applyHandoffView(view || {});
    } catch (error) {
      if (epoch !== state.epoch) return;
      if (error.status === 401) {
        open = false;
        loadHistory(); // renews the session; the history says whether a handoff is still open
      } else {
        state.pollFailures += 1;
        next = Math.min(HANDOFF_POLL_MAX_MS, HANDOFF_POLL_MS * 2 ** state.pollFailures);
        if (error.status === 429 && error.retryAfter) next = Math.max(next, error.retryAfter * 1000);
      }
    } finally {
      state.polling = false;
    }
    if (open && epoch === state.epoch) schedulePoll(next);
  }

  /** A poll's answer: new agents' messages, the banner; false when the handoff is over. */
  function applyHandoffView(view) {
    for (const message of Array.isArray(view.messages) ? view.messages : []) {
      if (typeof message.id === "string" && state.rendered.has(message.id)) continue;
      renderBot(message);
    }
    const cursor = Number(view.cursor);
    if (Number.isSafeInteger(cursor)) state.handoffCursor = Math.max(state.handoffCursor, cursor);
    const seen = view.handoff || {};
    if (seen.state === "pending" || seen.state === "agent_joined") {
      const current = state.handoff || {};
      const agentName = seen.agent_name || undefined;
      if (current.state !== seen.state || current.agent_name !== agentName || current.ticket_id !== seen.ticket_id) {
        state.handoff = { state: seen.state, ticket_id: seen.ticket_id, agent_name: agentName };
        state.handoffNote = null;
        updateHandoffUi();
      }
      return true;
    }
    handoffEnded(seen.ticket_id); // "ended" or "none"
    return false;
  }

  function handoffEnded(ticketId) {
    if (Number.isInteger(ticketId)) state.endedTickets.add(ticketId);
    if (state.handoff && Number.isInteger(state.handoff.ticket_id)) state.endedTickets.add(state.handoff.ticket_id);
    state.handoff = null;
    updateHandoffUi();
    reloadAfterHandBack(0);
  }

  // The bot's hand-back (and its rating prompt) is in the tracker, so the history shows it. The
  // ticket ends a moment before the bot has said so: reload until the history has it (a few tries).
  async function reloadAfterHandBack(attempt) {
    if (state.busy) {
      state.reloadWhenIdle = true; // the turn in flight renders its own replies; reload after it
      return;
    }
    const epoch = state.epoch;
    await loadHistory();
    if (epoch !== state.epoch || state.handoff) return;
    const marker = state.lastMarker;
    const waiting = marker && marker.state !== "ended" && state.endedTickets.has(marker.ticket_id);
    if (waiting && attempt < HAND_BACK_RETRIES) {
      setTimeout(() => {
        if (epoch === state.epoch && !state.handoff) reloadAfterHandBack(attempt + 1);
      }, HAND_BACK_RETRY_MS);
    }
  }

  // "Back to the assistant" while waiting: POST /handoff/cancel, the bot's replies.
  async function cancelHandoff() {
    if (state.busy || state.cancelling || !state.handoff) return;
    const ticketId = state.handoff.ticket_id;
    const epoch = state.epoch;
    state.cancelling = true;
    state.handoffNote = null;
    updateHandoffUi();
    setBusy(true);
    try {
      const turn = await call("POST", "/handoff/cancel", {});
      if (epoch !== state.epoch) return;
      if (Number.isInteger(ticketId)) state.endedTickets.add(ticketId);
      state.handoff = null; // the replies' marker says so too
      const messages = Array.isArray(turn && turn.messages) ? turn.messages : [];
      for (const message of messages) renderBot(message);
      renderChoices(messages.flatMap((m) => m.buttons || []));
      if (channel) channel.postMessage({ type: "updated" });
    } catch (error) {
      if (epoch !== state.epoch) return;
      if (error.code === "not_waiting") {
        state.handoffNote = "An agent has just picked up your request.";
        schedulePoll(0);
      } else if (error instanceof NetworkError) {
        state.handoffNote = "You seem to be offline. Please try again.";
      } else {
        state.handoffNote = error.message;
      }
    } finally {
      state.cancelling = false;
      setBusy(false);
      updateHandoffUi();
      if (panelOpen()) input.focus();
      if (state.reloadWhenIdle) {
        state.reloadWhenIdle = false;
        reloadAfterHandBack(0);
      }
    }
  }

  // ---------------------------------------------------------------- conversation
  async function ensureSession(fresh) {
    return call("POST", "/session", fresh ? { new: true } : {});
  }

  async function loadHistory() {
    try {
      const session = await ensureSession(false);
      if (session.created) {
        if (!state.busy) renderHistory([]);
      } else {
        const history = await call("GET", "/history");
        if (state.busy) return; // a turn in flight will render its own replies
        renderHistory(history.messages || []);
      }
      if (!banner.dataset.kind || banner.dataset.kind === "offline") setBanner(null);
      updateHandoffUi();
    } catch (error) {
      if (!state.loaded && !state.busy) renderHistory([]);
      if (error instanceof NetworkError) showOffline(() => loadHistory());
      else if (error.status === 401) {
        await ensureSession(true).catch(() => null);
        if (!state.busy) renderHistory([]);
      } else setBanner("error", "Earlier messages could not be loaded right now.");
    } finally {
      state.loaded = true;
      host.dataset.loaded = "true";
    }
  }

  function showOffline(retry) {
    const button = el("button", {
      class: "tw-link-button",
      type: "button",
      text: "Retry now",
      onclick: () => {
        setBanner("info", "Reconnecting…");
        retry();
      },
    });
    setBanner("offline", "You seem to be offline. Your message hasn't been sent.", [button]);
  }

  function setBusy(busy) {
    state.busy = busy;
    host.dataset.busy = busy ? "true" : "false";
    typing.hidden = !busy;
    sendButton.disabled = busy;
    log.setAttribute("aria-busy", busy ? "true" : "false");
    if (busy) scrollToEnd();
  }

  function markSent(li) {
    li.classList.remove("tw-pending", "tw-failed");
    const meta = li.querySelector(".tw-meta");
    const status = meta.querySelector(".tw-status");
    status.replaceChildren();
    if (!meta.querySelector("time")) meta.insertBefore(timeNode(), status);
  }

  function markFailed(li, body, reason, canRetry) {
    li.classList.remove("tw-pending");
    li.classList.add("tw-failed");
    const status = li.querySelector(".tw-status");
    status.replaceChildren(el("span", { text: reason }));
    if (canRetry) {
      status.append(
        el("button", {
          class: "tw-link-button",
          type: "button",
          text: "Retry",
          onclick: () => {
            li.remove();
            deliver(body, body.text || body.title);
          },
        }),
      );
    }
  }

  async function deliver(body, shownText) {
    if (state.busy) return;
    const payload = body.payload;
    const li = renderUser(shownText, { pending: true, payload });
    clearChoices();
    setBusy(true);
    if (!body.clientMessageId) body.clientMessageId = newMessageId();
    const request =
      body.payload !== undefined
        ? { payload: body.payload, client_message_id: body.clientMessageId }
        : { text: body.text, client_message_id: body.clientMessageId };
    let attempt = 0;
    let sessionRenewed = false;
    try {
      for (;;) {
        try {
          const turn = await call("POST", "/messages", request);
          markSent(li);
          setBanner(null);
          updateHandoffUi();
          for (const message of turn.messages) renderBot(message);
          renderChoices(turn.messages.flatMap((m) => m.buttons || []));
          if (channel) channel.postMessage({ type: "updated" });
          return;
        } catch (error) {
          if (error instanceof NetworkError && attempt < RETRY_DELAYS_MS.length) {
            setBanner("offline", error.message === "timeout" ? "The connection is slow. Retrying…" : "Connection lost. Retrying…");
            li.querySelector(".tw-status").textContent = "Retrying…";
            await sleep(RETRY_DELAYS_MS[attempt++]);
            continue;
          }
          if (error instanceof NetworkError) {
            markFailed(li, body, "Not sent.", true);
            showOffline(() => {
              li.remove();
              deliver(body, shownText);
            });
            return;
          }
          if (error.status === 401 && !sessionRenewed) {
            sessionRenewed = true;
            await ensureSession(error.code === "no_session" ? false : true);
            if (body.payload !== undefined) {
              markFailed(li, body, "Your session was renewed: please type your answer.", false);
              return;
            }
            continue;
          }
          if (error.status === 429) {
            state.blockedUntil = Date.now() + error.retryAfter * 1000;
            markFailed(li, body, "Not sent.", true);
            setBanner("warning", error.message);
            setTimeout(() => {
              if (banner.dataset.kind === "warning") setBanner(null);
            }, error.retryAfter * 1000);
            return;
          }
          if (error.code === "payload_not_offered") {
            li.remove();
            setBanner("warning", error.message);
            await loadHistory();
            return;
          }
          // Validation errors (400) are the visitor's to fix; upstream errors (5xx) can be retried, and
          // so can a message the gateway is still answering (409 duplicate_in_flight, same id).
          markFailed(li, body, error.message, error.status >= 500 || error.code === "duplicate_in_flight");
          return;
        }
      }
    } finally {
      setBusy(false);
      if (panelOpen() && !panel.contains(shadow.activeElement)) input.focus();
      if (state.reloadWhenIdle) {
        state.reloadWhenIdle = false;
        reloadAfterHandBack(0);
      }
    }
  }

  function choose(button) {
    clearChoices();
    input.focus(); // the clicked button is gone: keep the keyboard user in the composer
    deliver({ payload: button.payload, title: button.title }, button.title);
  }

  function submit(event) {
    if (event) event.preventDefault();
    const text = input.value.trim();
    if (!text || state.busy) return;
    if (Date.now() < state.blockedUntil) {
      const seconds = Math.ceil((state.blockedUntil - Date.now()) / 1000);
      setBanner("warning", `Please wait ${seconds} seconds before sending another message.`);
      return;
    }
    if (text.startsWith("/")) {
      setBanner("warning", 'Messages cannot start with "/". Please rephrase.');
      return;
    }
    input.value = "";
    autoresize();
    deliver({ text }, text);
  }

  function confirmNewConversation() {
    const yes = el("button", {
      class: "tw-link-button tw-strong",
      type: "button",
      text: "Start new",
      onclick: () => startNewConversation(),
    });
    const no = el("button", {
      class: "tw-link-button",
      type: "button",
      text: "Cancel",
      onclick: () => {
        setBanner(null);
        updateHandoffUi();
        newButton.focus();
      },
    });
    setBanner("confirm", "Start a new conversation? This one will be closed.", [yes, no]);
    yes.focus();
  }

  async function startNewConversation() {
    try {
      await ensureSession(true);
    } catch (error) {
      setBanner("error", error instanceof NetworkError ? "You seem to be offline. Try again later." : error.message);
      return;
    }
    state.epoch += 1; // a poll or a cancel of the old conversation answers into the void
    state.reloadWhenIdle = false;
    setBanner(null);
    renderHistory([]);
    if (channel) channel.postMessage({ type: "reset" });
    input.focus();
  }

  // ---------------------------------------------------------------- open / close, keyboard
  function panelOpen() {
    return !panel.hidden;
  }

  function openPanel(focus = true) {
    panel.hidden = false;
    host.dataset.open = "true";
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", `Close chat with ${config.title}`);
    try {
      sessionStorage.setItem("tandem-widget-open", "1");
    } catch {
      /* storage may be disabled */
    }
    if (!state.loaded) loadHistory();
    scrollToEnd();
    if (focus) input.focus();
  }

  function closePanel() {
    panel.hidden = true;
    host.dataset.open = "false";
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", `Chat with ${config.title}`);
    try {
      sessionStorage.removeItem("tandem-widget-open");
    } catch {
      /* storage may be disabled */
    }
    launcher.focus();
  }

  function autoresize() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 120)}px`;
  }

  launcher.addEventListener("click", () => (panelOpen() ? closePanel() : openPanel()));
  closeButton.addEventListener("click", closePanel);
  newButton.addEventListener("click", confirmNewConversation);
  composer.addEventListener("submit", submit);
  input.addEventListener("input", autoresize);
  input.addEventListener("keydown", (event) => {
    // Enter sends, Shift+Enter adds a line (IME composition must not send).
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) submit(event);
  });
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      closePanel();
    }
  });

  // Other tabs of the same session: refresh when one of them sends or starts over.
  if (channel) {
    channel.addEventListener("message", (event) => {
      if (!state.loaded || state.busy) return;
      if (event.data && (event.data.type === "updated" || event.data.type === "reset")) loadHistory();
    });
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.loaded && !state.busy) loadHistory();
  });
  window.addEventListener("online", () => {
    if (banner.dataset.kind === "offline") setBanner("info", "Back online.");
  });

  function mount() {
    document.body.append(host);
    let wasOpen = false;
    try {
      wasOpen = sessionStorage.getItem("tandem-widget-open") === "1";
    } catch {
      /* storage may be disabled */
    }
    // The history is fetched when the panel opens: a page view without a chat costs no request.
    if (config.open || wasOpen) openPanel(false);
    host.dataset.ready = "true";
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
