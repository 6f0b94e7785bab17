// AudioWorklet processors for the WebSocket transport: the player and the microphone capture.
// PCM player with its own jitter buffer.
// The main thread posts Int16 frames; playback starts once `targetMs` is buffered
// (or the stream ended), and an empty buffer mid-stream counts as an underrun.
class PcmPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.targetSamples = Math.round(((opts.targetMs ?? 80) / 1000) * sampleRate);
    this.chunks = [];
    this.offset = 0;
    this.buffered = 0;
    this.playing = false;
    this.ended = false;
    this.underruns = 0;
    this.fade = 0;
    this.firstSound = false;
    this.lastReport = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(msg) {
    if (msg.type === "audio") {
      const pcm = new Int16Array(msg.buffer);
      const samples = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
      this.chunks.push(samples);
      this.buffered += samples.length;
      this.ended = false;
    } else if (msg.type === "end") {
      this.ended = true; // play out what is left without waiting for the target depth
    } else if (msg.type === "flush") {
      this.fade = Math.round(0.01 * sampleRate); // barge-in: 10 ms fade, then drop the rest
    }
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    if (!this.playing && (this.buffered >= this.targetSamples || (this.ended && this.buffered > 0))) {
      this.playing = true;
    }
    let i = 0;
    if (this.playing) {
      while (i < out.length && this.chunks.length) {
        const chunk = this.chunks[0];
        let sample = chunk[this.offset++];
        if (this.fade > 0) {
          sample *= this.fade / Math.round(0.01 * sampleRate);
          if (--this.fade === 0) { this.chunks = []; this.buffered = 0; this.offset = 0; }
        }
        if (!this.firstSound && Math.abs(sample) > 0.003) {
          this.firstSound = true;
          this.port.postMessage({ type: "first-sound", time: currentTime });
        }
        out[i++] = sample;
        this.buffered--;
        if (this.offset >= chunk.length) { this.chunks.shift(); this.offset = 0; }
      }
      if (i < out.length && this.chunks.length === 0) {
        if (!this.ended && this.fade === 0) this.underruns++;
        this.playing = false;
        this.buffered = 0;
      }
    }
    for (; i < out.length; i++) out[i] = 0;
    if (currentTime - this.lastReport > 0.1) {
      this.lastReport = currentTime;
      this.port.postMessage({ type: "stats", bufferMs: (this.buffered / sampleRate) * 1000, underruns: this.underruns });
    }
    return true;
  }
}

// Microphone capture: posts 20 ms of 16 kHz Int16 PCM at a time (what the server's VAD reads).
class MicCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / 16000;
    this.pos = 0;
    this.out = new Int16Array(320);
    this.fill = 0;
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    // Averaging decimator: good enough for a VAD that only looks below 4 kHz.
    for (let i = 0; i < input.length; i++) {
      this.acc = (this.acc || 0) + input[i];
      this.n = (this.n || 0) + 1;
      this.pos += 1;
      if (this.pos >= this.ratio) {
        this.pos -= this.ratio;
        const v = Math.max(-1, Math.min(1, this.acc / this.n));
        this.acc = 0; this.n = 0;
        this.out[this.fill++] = v * 32767;
        if (this.fill === this.out.length) {
          this.port.postMessage(this.out.buffer, [this.out.buffer]);
          this.out = new Int16Array(320);
          this.fill = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm-player", PcmPlayer);
registerProcessor("mic-capture", MicCapture);
