// The procedure-room page: one card per stream, fed by the display server's WebSocket (pipeline/display).
// Message kinds: docs/DISPLAY.md. No library, no build step: this file is served as it is.
"use strict";

const HISTORY_S = 60;
// A stream that no frame and no heartbeat has mentioned for this long is silent (its monitor died behind a hub
// that still answers); the server's --silence, set in the page.
const SILENCE_S = Number(document.body.dataset.silence || 3);
const cards = new Map();      // endpoint + " " + stream (or endpoint alone before its first stream) -> card
const signals = new Map();    // endpoint -> {state, detail}
let socketOpen = false;

// What tests and operators can read back: every banner change with the page's clock (unix s).
window.neroDisplay = { changes: [], received: 0 };

const QUALITY = {
  "quality:dark": "input quality: dark (lens covered, no light?)",
  "quality:bright": "input quality: over-exposed",
  "quality:uniform": "input quality: no picture (uniform frame)",
  "quality:noise": "input quality: noise (no signal from the scope?)",
  "quality:blur": "input quality: heavily blurred",
};

function number(value, digits = 3) {
  return value === null || value === undefined ? "n/a" : Number(value).toPrecision(digits);
}

function card(endpoint, stream) {
  const key = stream === undefined ? endpoint : `${endpoint} ${stream}`;
  let found = cards.get(key);
  if (found) return found;
  if (stream !== undefined && cards.has(endpoint)) {   // the endpoint's placeholder becomes its first stream
    found = cards.get(endpoint);
    cards.delete(endpoint);
  } else {
    const node = document.getElementById("stream-card").content.firstElementChild.cloneNode(true);
    document.getElementById("streams").appendChild(node);
    found = { node, endpoint, frames: [], gaps: 0, alerts: 0, drops: 0, state: "starting", alert: false,
              reason: null, lastAlert: null, banner: null };
  }
  found.stream = stream;
  found.key = key;
  found.node.dataset.stream = stream ?? "";
  found.node.querySelector(".name").textContent = stream ?? "waiting for the monitor";
  found.node.querySelector(".endpoint").textContent = endpoint;
  cards.set(key, found);
  return found;
}

function streamsOf(endpoint) {
  return [...cards.values()].filter((c) => c.endpoint === endpoint);
}

function bannerOf(c) {
  const signal = signals.get(c.endpoint) || { state: "connecting", detail: "" };
  if (!socketOpen) return ["nosignal", "NO SIGNAL", "the display server does not answer; retrying"];
  if (signal.state === "refused") return ["refused", "REFUSED", signal.detail];
  if (signal.state === "no signal") return ["nosignal", "NO SIGNAL", `monitor silent: ${signal.detail}`];
  if (signal.state === "connecting" || c.stream === undefined) return ["connecting", "CONNECTING", c.endpoint];
  if (c.state !== "stopped" && c.seenAt && Date.now() / 1000 - c.seenAt > SILENCE_S) {
    return ["nosignal", "NO SIGNAL", `nothing from this stream for ${SILENCE_S} s`];
  }
  if (c.state === "stopped") return ["nosignal", "NO SIGNAL", `stream stopped (${c.stopReason || "stopped"})`];
  if (c.state === "reconnecting") return ["reconnecting", "RECONNECTING", c.reconnectReason || ""];
  if (c.alert) {
    const reason = c.reason || "score";
    if (reason.startsWith("quality:")) return ["quality", "OUT OF DISTRIBUTION", QUALITY[reason] || reason];
    const a = c.lastAlert;
    const detail = a ? `${a.detector} ${number(a.score)}, alert threshold ${number(a.alert_threshold)}` : "score";
    return ["alert", "OUT OF DISTRIBUTION", detail];
  }
  return ["ok", "IN DISTRIBUTION", ""];
}

function showBanner(c) {
  const [state, text, detail] = bannerOf(c);
  const banner = c.node.querySelector(".banner");
  if (c.banner !== state) {
    c.banner = state;
    banner.dataset.state = state;
    window.neroDisplay.changes.push({ t: Date.now() / 1000, stream: c.stream ?? null, endpoint: c.endpoint, state });
  }
  banner.querySelector(".banner-state").textContent = text;
  banner.querySelector(".banner-detail").textContent = detail;
}

function onFrame(c, m) {
  c.frames.push({ t: m.t_publish, score: m.score, threshold: m.threshold, alert: m.alert, ood: m.ood });
  while (c.frames.length && c.frames[0].t < m.t_publish - HISTORY_S) c.frames.shift();
  c.detector = m.detector;
  c.threshold = m.threshold;
  c.alertThreshold = m.alert_threshold;
  c.state = "running";
  if (m.alert && !c.alert) c.reason = m.reason || c.reason;
  c.alert = m.alert;
  c.lastFrame = m;
  c.seenAt = Date.now() / 1000;
}

function onEvent(c, m) {
  if (m.event === "start") { c.state = "running"; c.source = m; }
  if (m.event === "stop") { c.state = "stopped"; c.stopReason = m.reason; c.alert = false; }
  if (m.event === "reconnecting") { c.state = "reconnecting"; c.reconnectReason = m.reason; }
  if (m.event === "alert_on") {
    c.alert = true; c.reason = m.reason; c.lastAlert = m; c.alerts += 1;
    c.heatmap = null; c.nearest = null;
    showExplanation(c);
  }
  if (m.event === "alert_off") c.alert = false;
}

function showExplanation(c) {
  const a = c.lastAlert;
  const box = c.node.querySelector(".explanation");
  if (!a) return;
  const when = new Date(a.t * 1000).toLocaleTimeString();
  const reason = (a.reason || "").startsWith("quality:") ? QUALITY[a.reason] || a.reason : "score over threshold";
  box.querySelector(".summary").textContent =
    `${when}, frame ${a.frame} (${number(a.pts, 4)} s): ${reason}; ${a.detector} ${number(a.score)} ` +
    `(per-frame threshold ${number(a.threshold)}, alert threshold ${number(a.alert_threshold)})` +
    partsOf(a.explain) + nearestOf(a.explain);
  const list = box.querySelector(".neurons");
  list.replaceChildren();
  const neurons = (a.explain && a.explain.neurons) || [];
  const largest = Math.max(1e-12, ...neurons.map(([, v]) => Math.abs(v || 0)));
  for (const [index, value] of neurons) {
    const item = document.createElement("li");
    item.textContent = `neuron ${index}: ${number(value)}`;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.round(120 * Math.abs(value || 0) / largest)}px`;
    item.appendChild(bar);
    list.appendChild(item);
  }
  box.querySelector(".neurons-caption").textContent = !neurons.length ? "" : a.explain.window === undefined &&
    a.explain.distance !== undefined ? "the neurons whose relevance departs most from the nearest class's mean:"
    : a.explain.patches !== undefined ? "the neurons that carry its relevance part, with their share of it:"
    : "the neurons that carry the score, with their share of it:";
  showPicture(box.querySelector(".heatmap"), c.heatmap);
  showPicture(box.querySelector(".nearest"), c.nearest, c.nearestCaption);
}

// A combined score's parts, each over its in-distribution scale (relevance-patch: the larger one is the score).
function partsOf(explain) {
  if (!explain || !explain.parts) return "";
  return "; parts " + Object.entries(explain.parts).map(([name, value]) => `${name} ${number(value)}`).join(", ");
}

function nearestOf(explain) {
  if (!explain) return "";
  if (explain.window !== undefined) return `; nearest training window ${explain.window}`;
  return explain.nearest ? `; nearest class centroid: ${explain.nearest}` : "";
}

function showPicture(figure, source, caption) {
  figure.hidden = !source;
  if (source) figure.querySelector("img").src = source;
  if (caption) figure.querySelector("figcaption").textContent = caption;
}

function showStats(c) {
  const now = Date.now() / 1000;
  const recent = c.frames.filter((f) => f.t > (c.lastFrame ? c.lastFrame.t_publish : now) - 2);
  const fps = recent.length > 1 ? (recent.length - 1) / (recent[recent.length - 1].t - recent[0].t) : 0;
  const m = c.lastFrame;
  const parts = [`${fps.toFixed(1)} fps`];
  if (m) {
    parts.push(`latency decode→publish ${Math.round(1000 * (m.t_publish - m.t_capture))} ms`);
  }
  parts.push(`dropped ${c.drops}`);
  const gaps = c.gaps ? `<span class="warn">missed messages ${c.gaps}</span>` : "missed messages 0";
  c.node.querySelector(".stats").innerHTML = `${parts.join(" · ")} · ${gaps} · alerts ${c.alerts}`;
  c.node.querySelector(".stats").dataset.gaps = c.gaps;
}

function drawChart(c) {
  const canvas = c.node.querySelector(".chart");
  const width = canvas.clientWidth || 900;
  const height = canvas.clientHeight || 200;
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, width, height);
  const frames = c.frames;
  const right = frames.length ? frames[frames.length - 1].t : Date.now() / 1000;
  const x = (t) => width - ((right - t) / HISTORY_S) * width;
  const scores = frames.map((f) => f.score).filter((s) => s !== null);
  const top = Math.max((c.alertThreshold || c.threshold || 1) * 1.5, ...scores.map((s) => s * 1.05));
  const y = (v) => height - 18 - (Math.min(v, top) / top) * (height - 30);
  g.fillStyle = "rgba(198, 40, 40, 0.45)";            // alert intervals
  for (let i = 0; i < frames.length; i++) {
    if (frames[i].alert) {
      const next = i + 1 < frames.length ? frames[i + 1].t : frames[i].t + 0.04;
      g.fillRect(Math.floor(x(frames[i].t)), 0, Math.ceil(x(next) - x(frames[i].t)) + 1, height - 18);
    }
  }
  const level = (value, colour, dash) => {
    if (value === null || value === undefined) return;
    g.strokeStyle = colour; g.setLineDash(dash); g.beginPath();
    g.moveTo(0, y(value)); g.lineTo(width, y(value)); g.stroke(); g.setLineDash([]);
    g.fillStyle = colour; g.fillText(number(value), labelAt, y(value) - 3);
  };
  let labelAt = width - 44;
  g.font = "13px system-ui, sans-serif";
  level(c.threshold, "#bbb", [6, 4]);
  labelAt = 8;
  level(c.alertThreshold, "#ffb74d", []);
  g.strokeStyle = "#4fc3f7"; g.lineWidth = 2; g.beginPath();
  let drawing = false;
  for (const f of frames) {
    if (f.score === null) { drawing = false; continue; }
    if (drawing) g.lineTo(x(f.t), y(f.score)); else g.moveTo(x(f.t), y(f.score));
    drawing = true;
  }
  g.stroke(); g.lineWidth = 1;
  g.fillStyle = "#ccc"; g.font = "13px system-ui, sans-serif";
  g.fillText(`${c.detector || "score"} (blue); per-frame threshold (dashed): the frame is out of distribution; ` +
             "alert threshold (orange): the alert counts frames over it; red: alert on", 8, 16);
  g.fillText("−60 s", 4, height - 4); g.fillText("−30 s", width / 2 - 16, height - 4);
  g.fillText("latest", width - 42, height - 4);
}

function handle(m) {
  window.neroDisplay.received += 1;
  if (m.type === "signal") {
    signals.set(m.endpoint, { state: m.state, detail: m.detail });
    if (!streamsOf(m.endpoint).length) card(m.endpoint);
    streamsOf(m.endpoint).forEach(showBanner);
    return;
  }
  if (m.type === "heartbeat") {
    for (const [name, health] of Object.entries(m.streams)) {
      const c = card(m.endpoint, name);
      c.drops = health.drops;
      c.seenAt = Date.now() / 1000;
      if (health.state !== "starting") c.state = health.state;
      showBanner(c);
    }
    return;
  }
  if (m.type === "hub") {
    document.getElementById("hub").textContent = `through a hub: ${m.monitors} monitor(s) connected`;
    return;
  }
  if (m.stream === undefined) return;     // lag: shown through the latency figures
  const c = card(m.endpoint, m.stream);
  if (m.type === "frame") onFrame(c, m);
  else if (m.type === "event") { onEvent(c, m); showStats(c); }
  else if (m.type === "gap") c.gaps += m.missing;
  else if (m.type === "restart") { c.frames = []; }
  else if (m.type === "explain" && c.lastAlert && m.seq === c.lastAlert.last_seq) { c.heatmap = m.picture; showExplanation(c); }
  else if (m.type === "nearest" && c.lastAlert && m.seq === c.lastAlert.last_seq) {
    c.nearest = m.picture; c.nearestCaption = `nearest training window: ${m.class_name} (${m.window})`;
    showExplanation(c);
  } else if (m.type === "preview") showPicture(c.node.querySelector(".preview"), m.picture);
  showBanner(c);
}

function connect() {
  const connection = document.getElementById("connection");
  const socket = new WebSocket(`ws://${location.host}/ws`);
  socket.onopen = () => {
    socketOpen = true;
    cards.forEach((c) => c.node.remove());
    cards.clear(); signals.clear();
    connection.dataset.state = "open";
    connection.textContent = "display server connected";
  };
  socket.onmessage = (event) => handle(JSON.parse(event.data));
  socket.onclose = () => {
    socketOpen = false;
    connection.dataset.state = "closed";
    connection.textContent = "display server not answering: retrying";
    cards.forEach(showBanner);
    setTimeout(connect, 1000);
  };
}

setInterval(() => cards.forEach((c) => { drawChart(c); showStats(c); showBanner(c); }), 250);
connect();
