// Strand chat page. Plain JavaScript, no build step. User-supplied text
// (names, rooms, messages, server errors) only ever goes into the page
// through textContent, never as HTML.
"use strict";

(() => {
  const MAX_NAME_CHARS = 32;
  const MAX_TEXT_BYTES = 4096;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 15000;

  const $ = (id) => document.getElementById(id);
  const joinView = $("join-view");
  const chatView = $("chat-view");
  const joinForm = $("join-form");
  const joinError = $("join-error");
  const nameInput = $("name");
  const roomInput = $("room");
  const list = $("messages");
  const sendForm = $("send-form");
  const input = $("message");
  const sendBtn = $("send");
  const note = $("composer-note");
  const statusEl = $("status");
  const statusText = $("status-text");
  const retryBtn = $("retry");

  const encoder = new TextEncoder();

  let me = "";
  let room = "";
  let ws = null;
  let wanted = false;      // the user is in a room (reconnect when dropped)
  let attempt = 0;         // failed connection attempts in a row
  let everOpened = false;  // a connection to this room was open at least once
  let retryTimer = 0;
  let countdownTimer = 0;
  let seen = new Set();    // seq numbers (or cluster message ids) shown
  let members = new Map(); // cluster mode: name -> how many connections
  let lastSeq = 0;
  let selfJoinPending = false;
  let lastSender = null;   // for grouping consecutive messages

  // ---------- validation ----------

  function chars(s) { return [...s].length; }

  function checkName(what, v) {
    if (v === "") return `Please enter a ${what}.`;
    if (chars(v) > MAX_NAME_CHARS) return `The ${what} is over ${MAX_NAME_CHARS} characters.`;
    if (/[\u0000-\u001f\u007f-\u009f]/.test(v)) return `The ${what} contains control characters.`;
    return "";
  }

  // ---------- join / leave ----------

  function prefill() {
    const q = new URLSearchParams(location.search);
    nameInput.value = q.get("name") || localStorage.getItem("strand.chat.name") || "";
    roomInput.value = q.get("room") || localStorage.getItem("strand.chat.room") || "lobby";
    (nameInput.value ? roomInput : nameInput).focus();
  }

  joinForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = nameInput.value.trim();
    const r = roomInput.value.trim();
    const why = checkName("name", name) || checkName("room", r);
    if (why) {
      joinError.textContent = why;
      joinError.hidden = false;
      return;
    }
    joinError.hidden = true;
    try {
      localStorage.setItem("strand.chat.name", name);
      localStorage.setItem("strand.chat.room", r);
    } catch (_) { /* storage may be disabled */ }
    enter(name, r);
  });

  function enter(name, r) {
    me = name;
    room = r;
    wanted = true;
    attempt = 0;
    everOpened = false;
    seen = new Set();
    lastSeq = 0;
    lastSender = null;
    list.replaceChildren();
    $("room-name").textContent = room;
    $("me").textContent = me;
    input.placeholder = `Message #${room}`;
    document.title = `#${room} · Strand chat`;
    const url = new URL(location.href);
    url.searchParams.set("room", room);
    url.searchParams.delete("name");
    history.replaceState(null, "", url);
    joinView.hidden = true;
    chatView.hidden = false;
    connect();
    input.focus();
  }

  $("leave").addEventListener("click", () => {
    wanted = false;
    clearTimers();
    if (ws) ws.close(1000, "left");
    ws = null;
    chatView.hidden = true;
    joinView.hidden = false;
    document.title = "Strand chat";
    roomInput.focus();
  });

  // ---------- connection ----------

  function clearTimers() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    retryTimer = countdownTimer = 0;
  }

  function setStatus(state, text) {
    statusEl.dataset.state = state;
    statusText.textContent = text;
    retryBtn.hidden = state !== "closed";
    sendBtn.disabled = state !== "open";
  }

  function connect() {
    clearTimers();
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams({ room, name: me });
    setStatus("connecting", attempt ? `Reconnecting (attempt ${attempt + 1})…` : "Connecting…");
    const sock = new WebSocket(`${proto}//${location.host}/ws?${q}`);
    ws = sock;
    let opened = false;

    sock.addEventListener("open", () => {
      if (ws !== sock) return;
      opened = true;
      if (everOpened) addEvent("Reconnected.", "conn");
      everOpened = true;
      attempt = 0;
      setStatus("open", "Connected");
    });

    sock.addEventListener("message", (ev) => {
      if (ws !== sock) return;
      let m;
      try { m = JSON.parse(ev.data); } catch (_) { return; }
      handle(m);
    });

    sock.addEventListener("close", (ev) => {
      if (ws !== sock) return;
      ws = null;
      if (!wanted) return;
      let why = "Connection lost.";
      if (ev.code === 1008) why = `Disconnected by the server: ${ev.reason || "policy violation"}.`;
      else if (ev.code === 1001) why = "The server is restarting.";
      else if (!opened) why = everOpened ? "Cannot reach the server." : "Could not connect.";
      if (opened) addEvent(why, "conn");
      scheduleReconnect(why);
    });
  }

  function scheduleReconnect(why) {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
    const delay = Math.round(base / 2 + Math.random() * base / 2);
    attempt++;
    const until = Date.now() + delay;
    const tick = () => {
      const s = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      setStatus("closed", `${why} Reconnecting in ${s} s`);
    };
    tick();
    countdownTimer = setInterval(tick, 250);
    retryTimer = setTimeout(connect, delay);
  }

  retryBtn.addEventListener("click", () => { if (wanted && !ws) connect(); });
  window.addEventListener("online", () => { if (wanted && !ws) { attempt = 0; connect(); } });

  // ---------- protocol ----------

  function handle(m) {
    switch (m.type) {
      case "history": {
        const msgs = Array.isArray(m.messages) ? m.messages : [];
        const top = msgs.length ? msgs[msgs.length - 1].seq : 0;
        if (top < lastSeq) {
          // The server forgot the room (it restarted): numbering starts over.
          seen = new Set();
          lastSeq = 0;
          addDivider("The room's history was reset");
        }
        const fresh = msgs.filter((x) => !seen.has(keyOf(x)));
        if (fresh.length && list.children.length) addDivider("While you were away");
        fresh.forEach(addMessage);
        if (!msgs.length && !list.querySelector(".msg")) addEvent("No messages yet. Say hi!", "info");
        selfJoinPending = true;
        break;
      }
      case "message":
        addMessage(m);
        break;
      case "members":
        members = new Map();
        (Array.isArray(m.names) ? m.names : []).forEach((n) => countMember(String(n), 1));
        showMembers();
        break;
      case "system":
        addEvent(String(m.text ?? ""), "error");
        break;
      case "join":
        // The members list (cluster mode) already counts our own join.
        if (members.size && !(selfJoinPending && m.name === me)) { countMember(String(m.name), 1); showMembers(); }
        if (selfJoinPending && m.name === me) {
          selfJoinPending = false;
          addEvent(`You joined #${m.room}.`, "info");
        } else {
          addEvent(`${m.name} joined.`, "info");
        }
        break;
      case "leave":
        if (members.size) { countMember(String(m.name), -1); showMembers(); }
        addEvent(`${m.name} left.`, "info");
        break;
      case "error":
        addEvent(`Server: ${m.error}`, "error");
        break;
    }
  }

  // ---------- rendering (textContent only) ----------

  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function append(el) {
    const stick = nearBottom();
    list.append(el);
    if (stick) list.scrollTop = list.scrollHeight;
  }

  function colorOf(name) {
    let h = 0;
    for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return `hsl(${h % 360} 55% 48%)`;
  }

  // keyOf identifies a message: its seq (one server) or its id (cluster).
  function keyOf(m) {
    if (typeof m.seq === "number") return "s" + m.seq;
    if (typeof m.id === "string") return "i" + m.id;
    return null;
  }

  function countMember(name, d) {
    const n = (members.get(name) || 0) + d;
    if (n > 0) members.set(name, n); else members.delete(name);
  }

  function showMembers() {
    const el = $("members");
    if (!el) return;
    const names = [...members.keys()].sort();
    el.hidden = names.length === 0;
    el.textContent = names.length ? `In the room: ${names.join(", ")}` : "";
  }

  function addMessage(m) {
    const key = keyOf(m);
    if (key === null || seen.has(key)) return;
    seen.add(key);
    if (typeof m.seq === "number") lastSeq = Math.max(lastSeq, m.seq);
    const from = String(m.from ?? "");
    const li = document.createElement("li");
    li.className = "msg";
    if (from === me) li.classList.add("mine");
    if (lastSender === from) li.classList.add("cont");
    lastSender = from;
    li.dataset.seq = String(m.seq ?? m.id);
    li.dataset.from = from;

    const av = document.createElement("div");
    av.className = "avatar";
    av.style.background = colorOf(from);
    av.textContent = [...from][0]?.toUpperCase() ?? "?";
    av.setAttribute("aria-hidden", "true");

    const meta = document.createElement("div");
    meta.className = "meta";
    const who = document.createElement("span");
    who.className = "from";
    who.textContent = from;
    const when = document.createElement("time");
    when.className = "time";
    const d = new Date(m.ts);
    when.dateTime = d.toISOString();
    when.textContent = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    when.title = d.toLocaleString();
    meta.append(who, when);

    const text = document.createElement("div");
    text.className = "text";
    text.textContent = String(m.text ?? "");

    li.append(av, meta, text);
    append(li);
  }

  function addEvent(text, kind) {
    const li = document.createElement("li");
    li.className = `event ${kind}`;
    li.textContent = text;
    lastSender = null;
    append(li);
  }

  function addDivider(text) {
    const li = document.createElement("li");
    li.className = "divider";
    li.textContent = text;
    lastSender = null;
    append(li);
  }

  // ---------- composer ----------

  function updateNote() {
    const n = encoder.encode(input.value).length;
    if (n > MAX_TEXT_BYTES) {
      note.textContent = `Too long: ${n} of ${MAX_TEXT_BYTES} bytes.`;
      note.className = "composer-note error";
    } else {
      note.textContent = n > MAX_TEXT_BYTES * 0.8 ? `${n} / ${MAX_TEXT_BYTES} bytes` : "";
      note.className = "composer-note";
    }
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight + 2, 160)}px`;
  }

  input.addEventListener("input", updateNote);
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      sendForm.requestSubmit();
    }
  });

  sendForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    if (encoder.encode(text).length > MAX_TEXT_BYTES) { updateNote(); return; }
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      note.textContent = "Not connected: your message was not sent.";
      note.className = "composer-note error";
      return;
    }
    ws.send(JSON.stringify({ type: "message", text }));
    input.value = "";
    updateNote();
    input.focus();
  });

  prefill();
})();
