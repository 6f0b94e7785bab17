// The voice-agent page: pick a transport, engine and voice, stream text in, hear it, talk over it.
import { WebRtcTransport, WebSocketTransport } from "./transports.js";

const $ = (id) => document.getElementById(id);

const PARAGRAPH =
  "Sure, I can help with that. The fastest way to get there is to take the train to the central station, " +
  "then walk two blocks north along the river. The museum opens at nine, and it is usually quiet before ten, " +
  "so an early start pays off. If you get hungry, the small cafe on the corner serves a very good lunch, " +
  "and they have tables outside when the weather is kind. Would you like me to check the opening hours for the weekend?";

// State the page exposes for end-to-end tests (window.voiceApp) and the live panel.
const app = {
  transport: null,
  state: "idle",
  events: [],
  ttfaMs: [],
  lastMetrics: null,
  idle: true,
  simulating: false,
};
window.voiceApp = app;

function setState(state, label) {
  app.state = state;
  $("status").dataset.state = state;
  $("status").textContent = label || state;
  const connected = state === "connected";
  for (const id of ["send", "simulate", "cancel"]) $(id).disabled = !connected;
  $("connect").textContent = connected || state === "connecting" ? "Disconnect" : "Connect";
  for (const id of ["transport", "engine", "voice", "api-key", "open-mic"]) $(id).disabled = state !== "idle" && state !== "error";
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

async function api(path) {
  const key = $("api-key").value.trim();
  const response = await fetch(path, { headers: key ? { Authorization: `Bearer ${key}` } : {} });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : `${path}: ${response.status}`);
  return body;
}

async function loadEngines() {
  try {
    const info = await api("/v1/info");
    const engines = info.engines.filter((name) => name !== "tone" || info.engines.length === 1);
    $("engine").replaceChildren(...(engines.length ? engines : info.engines).map((n) => new Option(n, n)));
    $("engine").value = info.default_engine;
    await loadVoices();
    showError("");
  } catch (err) {
    showError(`Could not load engines: ${err.message}`);
  }
}

async function loadVoices() {
  const engine = $("engine").value;
  const body = await api(`/v1/audio/voices?model=${encodeURIComponent(engine)}`);
  const voices = body.voices.filter((v) => !v.alias_of);
  $("voice").replaceChildren(...voices.map((v) => new Option(v.language ? `${v.name} (${v.language})` : v.name, v.id)));
}

function log(event) {
  app.events.push(event);
  if (app.events.length > 1000) app.events.shift();
  const item = document.createElement("li");
  const { type, ...rest } = event;
  item.textContent = `${type} ${JSON.stringify(rest)}`.slice(0, 240);
  $("log").prepend(item);
  while ($("log").children.length > 60) $("log").lastChild.remove();
}

function onEvent(event) {
  log(event);
  if (event.type === "metrics") {
    app.lastMetrics = event;
    $("m-chunk").textContent = event.chunk != null ? `${event.chunk} chars` : "–";
    $("m-rtf").textContent = event.rtf != null ? event.rtf.toFixed(3) : "–";
    const notes = [event.degraded ? "fallback" : "", event.queue_depth ? `queue ${event.queue_depth}` : ""].filter(Boolean);
    $("m-engine").textContent = `${event.engine}${notes.length ? ` (${notes.join(", ")})` : ""}`;
  }
  if (event.type === "context.done" || event.type === "speech.interrupted") app.idle = true;
  if (event.type === "error") showError(`${event.code}: ${event.message}`);
}

// -- connecting ----------------------------------------------------------------------------------

async function connect() {
  showError("");
  setState("connecting", "connecting…");
  let micStream = null;
  try {
    if ($("open-mic").checked) {
      micStream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    }
    const options = { apiKey: $("api-key").value.trim(), engine: $("engine").value, voice: $("voice").value, micStream };
    const transport = $("transport").value === "webrtc" ? new WebRtcTransport(options) : new WebSocketTransport(options);
    transport.onEvent = onEvent;
    transport.onClose = (reason) => { if (app.transport === transport) disconnect(reason); };
    transport.onFirstSound = (at) => {
      if (app.sendStartedAt == null) return;
      const ms = at - app.sendStartedAt;
      app.sendStartedAt = null;
      app.ttfaMs.push(ms);
      $("m-ttfa").textContent = `${Math.round(ms)} ms`;
    };
    app.micStream = micStream;
    app.transport = transport;
    app.idle = true;
    await transport.connect();
    setState("connected", `connected · ${transport.name}`);
  } catch (err) {
    await disconnect();
    setState("error", "error");
    showError(err.message || String(err));
  }
}

async function disconnect(reason) {
  const transport = app.transport;
  app.transport = null;
  app.simulating = false;
  if (transport) await transport.close();
  if (app.micStream) app.micStream.getTracks().forEach((t) => t.stop());
  app.micStream = null;
  setState("idle", reason ? `disconnected: ${reason}` : "disconnected");
}

// -- sending text --------------------------------------------------------------------------------

function send(message) {
  if (!app.transport) return;
  if (message.type === "text.append" && app.idle) {
    // Time to first audio: from the first text of an utterance to the first sound out.
    app.idle = false;
    app.sendStartedAt = performance.now();
    app.transport.expectSound();
  }
  app.transport.send(message);
}

let typed = "";
$("text").addEventListener("input", () => {
  if (!$("stream-typing").checked || !app.transport) return;
  const value = $("text").value;
  if (value.startsWith(typed)) {
    const added = value.slice(typed.length);
    if (added) send({ type: "text.append", text: added });
  }
  typed = value;
});

$("text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    sendTyped();
  }
});

function sendTyped() {
  const value = $("text").value;
  if (!$("stream-typing").checked && value.trim()) send({ type: "text.append", text: value });
  send({ type: "text.done" });
  $("text").value = "";
  typed = "";
}

async function simulate() {
  if (app.simulating) return;
  app.simulating = true;
  const rate = Math.max(1, Math.min(200, Number($("token-rate").value) || 30));
  const tokens = PARAGRAPH.match(/\S+\s*/g).flatMap((w) => (w.length > 7 ? [w.slice(0, 4), w.slice(4)] : [w]));
  for (const token of tokens) {
    if (!app.simulating || !app.transport) return;
    send({ type: "text.append", text: token });
    await new Promise((r) => setTimeout(r, 1000 / rate));
  }
  send({ type: "text.done" });
  app.simulating = false;
}

$("send").addEventListener("click", sendTyped);
$("simulate").addEventListener("click", simulate);
$("cancel").addEventListener("click", () => {
  app.simulating = false;
  send({ type: "context.cancel" });
});
$("connect").addEventListener("click", () => (app.transport ? disconnect() : connect()));
$("engine").addEventListener("change", () => loadVoices().catch((err) => showError(err.message)));
$("api-key").addEventListener("change", loadEngines);

// -- the live panel and the meter ------------------------------------------------------------------

setInterval(() => {
  if (!app.transport) return;
  const stats = app.transport.clientStats();
  const server = app.lastMetrics;
  const buffer = stats.bufferMs ?? server?.buffer_ms;
  $("m-buffer").textContent = buffer != null ? `${Math.round(buffer)} ms` : "–";
  const underruns = [stats.underruns != null ? `${stats.underruns} here` : null, server ? `${server.underruns} server` : null];
  $("m-underruns").textContent = underruns.filter(Boolean).join(" · ") || "–";
}, 250);

function drawMeter() {
  const canvas = $("meter");
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.fillStyle = "#0f1420";
  ctx.fillRect(0, 0, width, height);
  const analyser = app.transport && app.transport.analyser;
  if (analyser) {
    const data = new Float32Array(analyser.fftSize);
    analyser.getFloatTimeDomainData(data);
    let sum = 0;
    ctx.strokeStyle = "#5b8cff";
    ctx.lineWidth = 2;
    ctx.beginPath();
    for (let i = 0; i < data.length; i++) {
      sum += data[i] * data[i];
      const x = (i / (data.length - 1)) * width;
      const y = height / 2 - data[i] * (height / 2) * 0.95;
      i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
    }
    ctx.stroke();
    const level = Math.min(1, Math.sqrt(sum / data.length) * 4);
    ctx.fillStyle = "#1f9d55";
    ctx.fillRect(0, height - 5, level * width, 5);
    app.level = level;
  }
  requestAnimationFrame(drawMeter);
}

setState("idle", "disconnected");
loadEngines();
requestAnimationFrame(drawMeter);
