// The two ways the page talks to the gateway, behind one interface:
//   connect(), send(message), close(), onEvent, onClose, analyser (for the meter),
//   clientStats() -> {bufferMs, underruns}, and onFirstSound (first audible output after a send).

const SAMPLE_RATE = 48000;

function authHeaders(apiKey) {
  return apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
}

class BaseTransport {
  constructor({ apiKey, engine, voice, micStream }) {
    this.apiKey = apiKey;
    this.engine = engine;
    this.voice = voice;
    this.micStream = micStream;
    this.onEvent = () => {};
    this.onClose = () => {};
    this.onFirstSound = () => {};
    this.audioContext = null;
    this.analyser = null;
    this.waitingForSound = false;
  }

  // The next audible output after this call is reported through onFirstSound.
  expectSound() { this.waitingForSound = true; }

  makeAnalyser(node) {
    this.analyser = this.audioContext.createAnalyser();
    this.analyser.fftSize = 1024;
    node.connect(this.analyser);
    // Watch the output for the first sound after a send (the page's time to first audio).
    const data = new Float32Array(this.analyser.fftSize);
    this.watch = setInterval(() => {
      if (!this.waitingForSound) return;
      this.analyser.getFloatTimeDomainData(data);
      let peak = 0;
      for (const v of data) peak = Math.max(peak, Math.abs(v));
      if (peak > 0.01) { this.waitingForSound = false; this.onFirstSound(performance.now()); }
    }, 5);
  }

  async closeAudio() {
    clearInterval(this.watch);
    if (this.audioContext) await this.audioContext.close().catch(() => {});
    this.audioContext = null;
  }
}

export class WebRtcTransport extends BaseTransport {
  name = "webrtc";

  async connect() {
    this.audioContext = new AudioContext({ sampleRate: SAMPLE_RATE });
    await this.audioContext.resume().catch(() => {});
    const pc = (this.pc = new RTCPeerConnection({ iceServers: [] }));
    if (this.micStream) {
      for (const track of this.micStream.getAudioTracks()) pc.addTrack(track, this.micStream);
    } else {
      pc.addTransceiver("audio", { direction: "recvonly" });
    }
    this.channel = pc.createDataChannel("events");
    this.channel.onmessage = (e) => this.onEvent(JSON.parse(e.data));
    const opened = new Promise((resolve, reject) => {
      this.channel.onopen = resolve;
      setTimeout(() => reject(new Error("the data channel did not open within 15 s")), 15000);
    });
    pc.ontrack = (e) => {
      const stream = e.streams[0] || new MediaStream([e.track]);
      // Chrome only feeds a remote WebRTC stream to Web Audio while a media element plays it.
      this.audio = new Audio();
      this.audio.srcObject = stream;
      this.audio.play().catch(() => {});
      this.makeAnalyser(this.audioContext.createMediaStreamSource(stream));
    };
    pc.onconnectionstatechange = () => {
      if (["failed", "closed"].includes(pc.connectionState)) this.onClose(`connection ${pc.connectionState}`);
    };

    const pending = [];
    pc.onicecandidate = (e) => {
      if (!e.candidate) return;
      if (this.pcId) this.trickle([e.candidate]);
      else pending.push(e.candidate);
    };
    await pc.setLocalDescription(await pc.createOffer());
    await this.gathered(pc, 1000);
    pending.length = 0; // already in the offer's SDP
    const response = await fetch("/v1/webrtc/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders(this.apiKey) },
      body: JSON.stringify({
        sdp: pc.localDescription.sdp,
        type: "offer",
        session: { engine: this.engine, voice: this.voice, metrics: true },
      }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : `offer refused (${response.status})`);
    this.pcId = body.pc_id;
    this.sessionId = body.session_id;
    this.trickle(pending);
    await pc.setRemoteDescription({ type: "answer", sdp: body.sdp });
    await opened;
    this.statsTimer = setInterval(() => this.pollStats(), 250);
  }

  gathered(pc, timeoutMs) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, timeoutMs); // send what we have; the rest trickles
    });
  }

  trickle(candidates) {
    if (!candidates.length) return;
    fetch("/v1/webrtc/offer", {
      method: "PATCH",
      headers: { "Content-Type": "application/json", ...authHeaders(this.apiKey) },
      body: JSON.stringify({
        pc_id: this.pcId,
        candidates: candidates.map((c) => ({ candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex })),
      }),
    }).catch(() => {});
  }

  async pollStats() {
    if (!this.pc) return;
    const report = await this.pc.getStats();
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        this.inbound = s;
      }
    });
  }

  clientStats() {
    const s = this.inbound;
    if (!s) return {};
    const bufferMs = s.jitterBufferEmittedCount ? (s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000 : null;
    return { bufferMs, underruns: s.concealmentEvents ?? null, audioEnergy: s.totalAudioEnergy ?? 0 };
  }

  send(message) {
    if (this.channel && this.channel.readyState === "open") this.channel.send(JSON.stringify(message));
  }

  async close() {
    clearInterval(this.statsTimer);
    if (this.pcId) {
      await fetch(`/v1/webrtc/${this.pcId}`, { method: "DELETE", headers: authHeaders(this.apiKey) }).catch(() => {});
    }
    if (this.pc) this.pc.close();
    if (this.audio) this.audio.srcObject = null;
    this.pc = null;
    await this.closeAudio();
  }
}

export class WebSocketTransport extends BaseTransport {
  name = "websocket";
  playerStats = {};

  async connect() {
    this.audioContext = new AudioContext({ sampleRate: SAMPLE_RATE });
    await this.audioContext.audioWorklet.addModule("/web/worklets.js");
    await this.audioContext.resume().catch(() => {});
    this.player = new AudioWorkletNode(this.audioContext, "pcm-player", {
      outputChannelCount: [1],
      processorOptions: { targetMs: 80 },
    });
    this.player.connect(this.audioContext.destination);
    this.makeAnalyser(this.player);
    this.player.port.onmessage = (e) => {
      if (e.data.type === "stats") this.playerStats = e.data;
    };

    const params = new URLSearchParams({ format: "pcm", sample_rate: String(SAMPLE_RATE) });
    if (this.engine) params.set("engine", this.engine);
    if (this.voice) params.set("voice", this.voice);
    if (this.apiKey) params.set("api_key", this.apiKey);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = (this.ws = new WebSocket(`${scheme}://${location.host}/v1/realtime?${params}`));
    ws.binaryType = "arraybuffer";
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error("the WebSocket could not connect"));
    });
    ws.onmessage = (e) => {
      if (typeof e.data === "string") {
        const event = JSON.parse(e.data);
        if (event.type === "speech.interrupted") this.player.port.postMessage({ type: "flush" });
        if (event.type === "context.done") this.player.port.postMessage({ type: "end" });
        this.onEvent(event);
      } else {
        this.player.port.postMessage({ type: "audio", buffer: e.data }, [e.data]);
      }
    };
    ws.onclose = (e) => this.onClose(e.reason || `closed (${e.code})`);
    const update = { type: "session.update", metrics: true, output: { lead_ms: 200 } };
    if (this.micStream) {
      update.input_audio = { encoding: "pcm", sample_rate: 16000 };
      const source = this.audioContext.createMediaStreamSource(this.micStream);
      this.mic = new AudioWorkletNode(this.audioContext, "mic-capture");
      this.mic.port.onmessage = (e) => { if (ws.readyState === WebSocket.OPEN) ws.send(e.data); };
      source.connect(this.mic);
    }
    ws.send(JSON.stringify(update));
  }

  clientStats() {
    return { bufferMs: this.playerStats.bufferMs ?? null, underruns: this.playerStats.underruns ?? null };
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  async close() {
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000, "bye");
    }
    this.ws = null;
    await this.closeAudio();
  }
}
