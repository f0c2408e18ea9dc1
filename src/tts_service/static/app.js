"use strict";

// The tts-service page: voices from /voices, speech streamed as JSON lines from /synthesize
// (each sentence's audio with its words, so the word being spoken can be marked), live
// figures from /health. Text from the server only ever reaches the page through
// textContent or new Option(), never as markup.
(() => {
  const $ = (id) => document.getElementById(id);
  const el = {
    form: $("speak-form"),
    text: $("text"),
    textCount: $("text-count"),
    voice: $("voice"),
    voiceInfo: $("voice-info"),
    speaker: $("speaker"),
    format: $("format"),
    formatInfo: $("format-info"),
    speed: $("speed"),
    speedValue: $("speed-value"),
    speedInfo: $("speed-info"),
    ssml: $("ssml"),
    clean: $("clean"),
    normalize: $("normalize"),
    pause: $("pause"),
    speak: $("speak"),
    stop: $("stop"),
    download: $("download"),
    captions: $("captions"),
    transcript: $("transcript"),
    error: $("error"),
    status: $("status"),
    player: $("player"),
    apiKey: $("api-key"),
    history: $("history"),
  };

  const MIME = {
    mp3: "audio/mpeg",
    aac: "audio/aac",
    wav: "audio/wav",
    opus: "audio/ogg",
    flac: "audio/flac",
  };
  const HEALTH_INTERVAL_MS = 1000;
  const HIDDEN_INTERVAL_MS = 5000; // a background tab polls less
  const HISTORY_SAMPLES = 60;

  let apiKey = ""; // page memory only: never written to storage or cookies
  let voices = [];
  let voicesLoaded = false;
  let errorFromVoices = false;
  let current = null; // the last playback, until stopped: { controller, sink, marker }
  let objectUrls = []; // blob URLs of the last result, revoked when the next one starts
  const history = [];

  // ------------------------------------------------------------------ helpers

  function authHeaders(extra) {
    const headers = new Headers(extra || {});
    if (apiKey) headers.set("Authorization", "Bearer " + apiKey);
    return headers;
  }

  function seconds(ms) {
    return (ms / 1000).toFixed(2) + " s";
  }

  function sentence(text) {
    const trimmed = String(text).trim();
    if (!trimmed) return "";
    const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
    return /[.!?)]$/.test(capital) ? capital : capital + ".";
  }

  function showError(message) {
    el.error.textContent = message;
    el.error.hidden = false;
  }

  function hideError() {
    el.error.textContent = "";
    el.error.hidden = true;
    errorFromVoices = false;
  }

  function setStatus(message) {
    el.status.textContent = message;
  }

  // One readable sentence from the server's JSON error body and status.
  async function errorMessage(response) {
    let code = "";
    let message = "";
    try {
      const body = await response.json();
      if (body && typeof body.error === "object" && body.error !== null) {
        code = String(body.error.code || "");
        message = String(body.error.message || "");
      }
    } catch {
      // not JSON (a proxy's page, say): fall back to the status line
    }
    const retry = response.headers.get("Retry-After");
    if (response.status === 401 || response.status === 403) {
      return (
        "The server needs a valid API key: paste it in the API key field at the top." +
        (message ? " (" + sentence(message) + ")" : "")
      );
    }
    if (response.status === 503 && code !== "shutting_down") {
      const wait = retry ? " Try again in " + retry + " s." : " Try again shortly.";
      return "The server is busy. " + sentence(message || "its queue is full") + wait;
    }
    if (response.status === 503) return "The server is shutting down. " + sentence(message);
    if (response.status === 413) return "Too long: " + sentence(message || "over the limit");
    if (response.status === 504) return "Timed out in the queue: " + sentence(message);
    if (message) return sentence(message);
    return "The request failed (HTTP " + response.status + ").";
  }

  function once(target, okEvent, badEvent) {
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        target.removeEventListener(okEvent, onOk);
        target.removeEventListener(badEvent, onBad);
      };
      const onOk = (event) => {
        cleanup();
        resolve(event);
      };
      const onBad = () => {
        cleanup();
        reject(new Error("the browser could not decode the audio"));
      };
      target.addEventListener(okEvent, onOk);
      target.addEventListener(badEvent, onBad);
    });
  }

  function fromBase64(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function concat(a, b) {
    if (!a.length) return b;
    const out = new Uint8Array(a.length + b.length);
    out.set(a, 0);
    out.set(b, a.length);
    return out;
  }

  function startPlayer() {
    el.player.play().catch((error) => {
      if (error && error.name === "NotAllowedError") {
        setStatus("The browser blocked autoplay: press play to listen.");
      }
    });
  }

  // ------------------------------------------------------------------ voices

  function speakerOptions(voice) {
    const names = Object.entries(voice.speakers || {}).sort((a, b) => a[1] - b[1]);
    if (names.length) return names.map(([name, id]) => [name + " (" + id + ")", name]);
    const count = Number(voice.num_speakers) || 1;
    if (count <= 1) return [];
    return Array.from({ length: count }, (_, id) => ["speaker " + id, String(id)]);
  }

  function selectedVoice() {
    return voices.find((voice) => voice.name === el.voice.value) || null;
  }

  function showSpeakers() {
    const voice = selectedVoice();
    el.speaker.replaceChildren();
    const options = voice ? speakerOptions(voice) : [];
    for (const [label, value] of options) el.speaker.add(new Option(label, value));
    if (!options.length) el.speaker.add(new Option("single speaker", ""));
    el.speaker.disabled = options.length === 0;
    if (!voice) {
      el.voiceInfo.textContent = "";
      return;
    }
    const parts = [voice.language, voice.sample_rate + " Hz", voice.quality];
    if (options.length) parts.push(options.length + " speakers");
    el.voiceInfo.textContent = parts.filter(Boolean).join(" · ");
  }

  async function loadVoices() {
    let response;
    try {
      response = await fetch("voices", { headers: authHeaders(), cache: "no-store" });
    } catch (error) {
      showError("Could not reach the server to list voices: " + error.message);
      errorFromVoices = true;
      return;
    }
    if (!response.ok) {
      showError("Could not list voices. " + (await errorMessage(response)));
      errorFromVoices = true;
      return;
    }
    const body = await response.json();
    voices = Array.isArray(body.voices) ? body.voices : [];
    const previous = el.voice.value;
    el.voice.replaceChildren();
    for (const voice of voices) {
      const label = voice.name + (voice.name === body.default ? " (default)" : "");
      el.voice.add(new Option(label, voice.name));
    }
    const wanted = voices.some((v) => v.name === previous) ? previous : body.default;
    if (voices.some((v) => v.name === wanted)) el.voice.value = wanted;
    voicesLoaded = true;
    if (errorFromVoices) hideError();
    showSpeakers();
    document.body.dataset.voices = "loaded";
  }

  // ------------------------------------------------------------------ playback sinks
  // Each sink takes the response bytes as they arrive and answers, at the end, the Blob
  // offered for download.

  function playbackMode(format) {
    const mime = MIME[format];
    if ((format === "mp3" || format === "aac") && window.MediaSource) {
      if (MediaSource.isTypeSupported(mime)) return "mediasource";
    }
    if (format === "wav" && window.AudioContext) return "webaudio";
    return "whole";
  }

  // MediaSource: every chunk is appended to the <audio> element's buffer as it arrives,
  // so playback starts with the first sentence.
  function mediaSourceSink(format) {
    const source = new MediaSource();
    const url = URL.createObjectURL(source);
    objectUrls.push(url);
    el.player.src = url;
    let buffer = null;
    let started = false;
    let failure = null;
    let chain = once(source, "sourceopen", "sourceclose");

    async function append(data) {
      if (!buffer) buffer = source.addSourceBuffer(MIME[format]);
      const done = once(buffer, "updateend", "error");
      buffer.appendBuffer(data);
      await done;
      if (!started) {
        started = true;
        startPlayer();
      }
    }

    return {
      push(data) {
        chain = chain.then(() => append(data));
        chain.catch((error) => {
          failure = failure || error;
        });
      },
      async end(parts) {
        await chain;
        if (failure) throw failure;
        if (source.readyState === "open") source.endOfStream();
        return new Blob(parts, { type: MIME[format] });
      },
      stop() {
        el.player.pause();
      },
      position() {
        return el.player.currentTime;
      },
    };
  }

  // The byte offset of PCM data and its format, once the header has fully arrived.
  function parseWavHeader(bytes) {
    if (bytes.length < 12) return null;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    const tag = (at) => String.fromCharCode(...bytes.subarray(at, at + 4));
    if (tag(0) !== "RIFF" || tag(8) !== "WAVE") throw new Error("the server sent no WAV header");
    let at = 12;
    let format = null;
    while (at + 8 <= bytes.length) {
      const id = tag(at);
      const size = view.getUint32(at + 4, true);
      if (id === "data") {
        if (!format) throw new Error("the WAV stream has no fmt chunk");
        return { ...format, dataOffset: at + 8 };
      }
      if (at + 8 + size > bytes.length) return null;
      if (id === "fmt ") {
        format = {
          channels: view.getUint16(at + 10, true),
          rate: view.getUint32(at + 12, true),
          bits: view.getUint16(at + 22, true),
        };
        if (format.bits !== 16) throw new Error("only 16-bit WAV can be streamed");
      }
      at += 8 + size + (size % 2);
    }
    return null;
  }

  // WAV: the PCM is played through Web Audio as it arrives (MediaSource cannot take WAV);
  // the finished file, with exact sizes in its header, then goes to the <audio> element.
  function webAudioSink(trace) {
    const context = new AudioContext();
    context.resume().catch(() => {});
    let pending = new Uint8Array(0);
    let format = null;
    let header = null;
    let next = 0;
    let queued = 0; // seconds of audio scheduled so far
    const segments = []; // { at: context time, from: audio time, duration }
    const pcmParts = [];

    function schedule(pcm) {
      const view = new DataView(pcm.buffer, pcm.byteOffset, pcm.length);
      const frames = pcm.length / 2 / format.channels;
      const audio = context.createBuffer(format.channels, frames, format.rate);
      for (let channel = 0; channel < format.channels; channel += 1) {
        const samples = audio.getChannelData(channel);
        for (let i = 0; i < frames; i += 1) {
          samples[i] = view.getInt16((i * format.channels + channel) * 2, true) / 32768;
        }
      }
      const node = context.createBufferSource();
      node.buffer = audio;
      node.connect(context.destination);
      const at = Math.max(next, context.currentTime + 0.05);
      node.start(at);
      next = at + audio.duration;
      segments.push({ at, from: queued, duration: audio.duration });
      queued += audio.duration;
      if (trace.playingAt === null) trace.playingAt = performance.now();
    }

    return {
      push(data) {
        pending = concat(pending, data);
        if (!format) {
          format = parseWavHeader(pending);
          if (!format) return;
          header = pending.slice(0, format.dataOffset);
          pending = pending.slice(format.dataOffset);
        }
        const frameBytes = 2 * format.channels;
        const usable = pending.length - (pending.length % frameBytes);
        if (!usable) return;
        const pcm = pending.slice(0, usable);
        pending = pending.slice(usable);
        pcmParts.push(pcm);
        schedule(pcm);
      },
      async end() {
        if (!format) throw new Error("the WAV stream ended before its header");
        const size = pcmParts.reduce((sum, part) => sum + part.length, 0);
        const fixed = header.slice();
        const view = new DataView(fixed.buffer);
        view.setUint32(4, fixed.length - 8 + size, true); // RIFF size
        view.setUint32(fixed.length - 4, size, true); // data size
        const blob = new Blob([fixed, ...pcmParts], { type: MIME.wav });
        const url = URL.createObjectURL(blob);
        objectUrls.push(url);
        el.player.src = url; // for replay; Web Audio is already playing it
        trace.audioSeconds = size / 2 / format.channels / format.rate;
        return blob;
      },
      stop() {
        context.close().catch(() => {});
      },
      // Where in the audio the listener is: Web Audio's clock through the scheduled
      // pieces (a late piece leaves a gap), or the player's once it replays the file.
      position() {
        if (!el.player.paused) return el.player.currentTime;
        const now = context.currentTime;
        let position = null;
        for (const piece of segments) {
          if (now < piece.at) break;
          position = piece.from + Math.min(now - piece.at, piece.duration);
        }
        return position;
      },
    };
  }

  // Opus in Ogg and FLAC: no streaming path into <audio> from a POST, so play when complete.
  function wholeSink(format) {
    return {
      push() {},
      async end(parts) {
        const blob = new Blob(parts, { type: MIME[format] });
        const url = URL.createObjectURL(blob);
        objectUrls.push(url);
        el.player.src = url;
        startPlayer();
        return blob;
      },
      stop() {
        el.player.pause();
      },
      position() {
        return el.player.currentTime;
      },
    };
  }

  function makeSink(trace) {
    if (trace.mode === "mediasource") return mediaSourceSink(trace.format);
    if (trace.mode === "webaudio") return webAudioSink(trace);
    return wholeSink(trace.format);
  }

  // ------------------------------------------------------------------ words
  // The request's text, each word in its own span as its sentence's words arrive; the word
  // being spoken is marked while the audio plays. Offsets from the server count code
  // points, so the text is cut as an array of code points, not UTF-16 units.

  function transcriptView(text) {
    const points = Array.from(text);
    const rest = document.createTextNode(text);
    el.transcript.replaceChildren(rest);
    el.transcript.hidden = false;
    const words = [];
    const spans = [];
    let done = 0;
    return {
      words,
      spans,
      add(list) {
        for (const word of list) {
          if (word.char_start < done) continue; // never the case: the server keeps order
          rest.before(points.slice(done, word.char_start).join(""));
          const span = document.createElement("span");
          span.className = "word";
          span.textContent = points.slice(word.char_start, word.char_end).join("");
          rest.before(span);
          words.push(word);
          spans.push(span);
          done = word.char_end;
        }
        rest.textContent = points.slice(done).join("");
      },
    };
  }

  // Scrolls the transcript box (never the page) so that the marked word shows.
  function keepInView(span) {
    const box = el.transcript.getBoundingClientRect();
    const word = span.getBoundingClientRect();
    if (word.top < box.top) el.transcript.scrollTop -= box.top - word.top;
    else if (word.bottom > box.bottom) el.transcript.scrollTop += word.bottom - box.bottom;
  }

  // The index of the last word that has started by the playback position (-1: none yet).
  function spokenIndex(words, position) {
    let low = 0;
    let high = words.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (words[middle].start <= position) low = middle + 1;
      else high = middle;
    }
    return low - 1;
  }

  // Follows the playback position every frame and moves the mark; the trace keeps each
  // move with the position it was made at (the browser tests read it).
  function wordMarker(view, position, trace) {
    let marked = -1;
    let frame = 0;
    function tick() {
      const at = position();
      const index = at === null ? -1 : spokenIndex(view.words, at);
      if (index !== marked && index >= 0) {
        if (marked >= 0) view.spans[marked].classList.remove("current");
        view.spans[index].classList.add("current");
        keepInView(view.spans[index]);
        marked = index;
        trace.marks.push({ index, position: at, at: performance.now() });
      }
      frame = requestAnimationFrame(tick);
    }
    frame = requestAnimationFrame(tick);
    return {
      stop() {
        cancelAnimationFrame(frame);
      },
    };
  }

  function hideTranscript() {
    el.transcript.hidden = true;
    el.transcript.replaceChildren();
  }

  // ------------------------------------------------------------------ speak

  function requestBody(format, timed) {
    const body = { text: el.text.value, format, stream: true };
    if (timed) {
      body.timestamps = true;
      body.captions = "vtt";
    }
    if (el.voice.value) body.voice = el.voice.value;
    if (!el.speaker.disabled && el.speaker.value !== "") {
      const voice = selectedVoice();
      const named = voice && Object.keys(voice.speakers || {}).length > 0;
      body.speaker = named ? el.speaker.value : Number(el.speaker.value);
    }
    const speed = Number(el.speed.value);
    if (speed !== 1) body.length_scale = Math.round(1000 / speed) / 1000;
    if (el.ssml.checked) body.ssml = true;
    if (el.clean.checked) body.clean = true;
    if (el.normalize.checked) body.normalize = true;
    return body;
  }

  // A pause where the cursor is: SSML's <break/> with the SSML box ticked, else [pause 1s].
  el.pause.addEventListener("click", () => {
    const mark = el.ssml.checked ? '<break time="1s"/>' : " [pause 1s] ";
    const at = el.text.selectionStart ?? el.text.value.length;
    el.text.setRangeText(mark, at, el.text.selectionEnd ?? at, "end");
    el.text.focus();
  });

  // A record of the last request's timing, read by the browser tests.
  function newTrace(format) {
    const trace = {
      format,
      mode: playbackMode(format),
      startedAt: performance.now(),
      responseAt: null,
      firstChunkAt: null,
      endAt: null,
      playingAt: null,
      status: null,
      sentences: null,
      chunks: 0,
      bytes: 0,
      audioSeconds: null,
      error: null,
      finished: false,
      timed: false,
      words: [],
      marks: [],
      captions: false,
    };
    window.ttsTrace = trace;
    return trace;
  }

  function revokeUrls() {
    for (const url of objectUrls) URL.revokeObjectURL(url);
    objectUrls = [];
    for (const link of [el.download, el.captions]) {
      link.hidden = true;
      link.removeAttribute("href");
    }
  }

  // Stops the download (which cancels the server's work) and any sound, Web Audio included.
  function stopPlayback() {
    el.player.pause();
    if (!current) return;
    current.controller.abort(); // a no-op once the response is complete
    if (current.sink) current.sink.stop();
    if (current.marker) current.marker.stop();
    current = null;
    el.stop.disabled = true;
  }

  function setBusy(busy) {
    el.form.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function offerDownload(blob, format) {
    const url = URL.createObjectURL(blob);
    objectUrls.push(url);
    el.download.href = url;
    el.download.download = "speech." + format;
    const size = blob.size < 1e6 ? (blob.size / 1e3).toFixed(1) + " kB" : (blob.size / 1e6).toFixed(2) + " MB";
    el.download.textContent = "Download " + format.toUpperCase() + " (" + size + ")";
    el.download.hidden = false;
  }

  function offerCaptions(text) {
    const url = URL.createObjectURL(new Blob([text], { type: "text/vtt" }));
    objectUrls.push(url);
    el.captions.href = url;
    el.captions.download = "speech.vtt";
    el.captions.textContent = "Download captions (VTT)";
    el.captions.hidden = false;
  }

  function summary(trace) {
    const audio = trace.audioSeconds ?? (Number.isFinite(el.player.duration) ? el.player.duration : null);
    const parts = [trace.sentences + (trace.sentences === 1 ? " sentence" : " sentences")];
    if (audio) parts.push(audio.toFixed(1) + " s of audio");
    parts.push("first audio after " + seconds(trace.firstChunkAt - trace.startedAt));
    parts.push("complete after " + seconds(trace.endAt - trace.startedAt));
    return "Done: " + parts.join(", ") + ".";
  }

  // The answer's JSON lines: `start`, then `audio` (base64, with that sentence's words)
  // as each sentence is made, then `end` (with the captions) or `error`.
  async function readLines(response, trace, sink, view) {
    const parts = [];
    let captions = null;
    const handle = (line) => {
      const message = JSON.parse(line);
      if (message.type === "error") throw new Error(sentence(message.error.message));
      if (message.type === "end") captions = message.captions || null;
      if (message.type !== "audio") return;
      if (view && message.words) view.add(message.words);
      const audio = fromBase64(message.audio);
      if (!audio.length) return;
      if (trace.firstChunkAt === null) {
        trace.firstChunkAt = performance.now();
        const what = trace.mode === "whole" ? "Receiving (plays when complete)" : "Playing";
        setStatus(what + "; first audio after " + seconds(trace.firstChunkAt - trace.startedAt) + "…");
      }
      trace.chunks += 1;
      trace.bytes += audio.length;
      parts.push(audio);
      sink.push(audio);
    };
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    try {
      for (;;) {
        const { done, value } = await reader.read();
        pending += done ? decoder.decode() : decoder.decode(value, { stream: true });
        const lines = pending.split("\n");
        pending = done ? "" : lines.pop();
        for (const line of lines) if (line.trim()) handle(line);
        if (done) break;
      }
    } catch (error) {
      reader.cancel().catch(() => {}); // an error line: the server's work ends with it
      throw error;
    }
    trace.endAt = performance.now();
    return { parts, captions };
  }

  function post(format, timed, signal) {
    return fetch("synthesize", {
      method: "POST",
      headers: authHeaders({ "Content-Type": "application/json" }),
      body: JSON.stringify(requestBody(format, timed)),
      signal,
      cache: "no-store",
    });
  }

  async function refusedTimestamps(response) {
    if (response.status !== 400) return false;
    try {
      const body = await response.clone().json();
      return body.error.code === "word_timestamps_unavailable";
    } catch {
      return false;
    }
  }

  // Words are asked for unless /voices said the voice cannot time them; a voice not loaded
  // yet may turn out unable: then it is asked again without them.
  async function send(format, trace, signal) {
    const voice = selectedVoice();
    trace.timed = !voice || voice.word_timestamps !== false;
    let response = await post(format, trace.timed, signal);
    if (trace.timed && (await refusedTimestamps(response))) {
      if (voice) voice.word_timestamps = false;
      trace.timed = false;
      response = await post(format, false, signal);
    }
    return response;
  }

  async function speak(event) {
    event.preventDefault();
    stopPlayback();
    hideError();
    revokeUrls();
    hideTranscript();
    el.player.removeAttribute("src");
    el.player.load(); // forget the previous audio
    const format = el.format.value;
    const trace = newTrace(format);
    const playback = { controller: new AbortController(), sink: null, marker: null };
    current = playback;
    el.stop.disabled = false;
    setBusy(true);
    setStatus("Sending…");
    try {
      const response = await send(format, trace, playback.controller.signal);
      trace.responseAt = performance.now();
      trace.status = response.status;
      if (!response.ok) {
        trace.error = await errorMessage(response);
        showError(trace.error);
        setStatus("");
        if (current === playback) stopPlayback();
        return;
      }
      trace.sentences = Number(response.headers.get("X-Sentences")) || null;
      setStatus("Synthesizing " + (trace.sentences || "") + " sentences…");
      playback.sink = makeSink(trace);
      const view = trace.timed ? transcriptView(el.text.value) : null;
      if (view) {
        trace.words = view.words;
        playback.marker = wordMarker(view, playback.sink.position, trace);
      }
      const { parts, captions } = await readLines(response, trace, playback.sink, view);
      const blob = await playback.sink.end(parts);
      offerDownload(blob, format);
      if (captions) {
        offerCaptions(captions);
        trace.captions = true;
      }
      setStatus(summary(trace));
    } catch (error) {
      if (playback.controller.signal.aborted) {
        trace.error = "stopped";
        if (current === null) setStatus("Stopped."); // not when a newer Speak took over
        return;
      }
      trace.error = String((error && error.message) || error);
      showError("The audio stream failed: " + trace.error);
      setStatus("");
    } finally {
      trace.finished = true;
      if (current === playback || current === null) setBusy(false);
    }
  }

  // ------------------------------------------------------------------ live panel

  function show(id, value) {
    $(id).textContent = value === null || value === undefined ? "–" : String(value);
  }

  function showLatency(prefix, summaryBody) {
    const pick = (q) => {
      const value = summaryBody && summaryBody[q];
      return typeof value === "number" ? value.toFixed(2) + " s" : "–";
    };
    show(prefix + "-p50", pick("p50"));
    show(prefix + "-p95", pick("p95"));
  }

  function setPill(text, state) {
    const pill = $("health-status");
    pill.textContent = text;
    pill.dataset.state = state;
  }

  function renderHealth(body) {
    const queued = Number(body.queued_requests) || 0;
    const active = Number(body.active_requests) || 0;
    setPill(String(body.status || "unknown"), body.status === "ok" ? "ok" : "warn");
    show("stat-queued", queued);
    show("stat-active", active);
    show("stat-workers", body.busy_workers + " / " + body.workers);
    show("stat-sentences", body.queued_sentences);
    show("stat-policy", body.policy);
    const capacity = Number(body.capacity_requests) || 1;
    const meter = $("stat-capacity");
    meter.max = capacity;
    meter.high = capacity * 0.75;
    meter.value = queued + active;
    show("stat-capacity-text", queued + active + " / " + capacity);
    showLatency("lat-first", body.first_audio_seconds);
    showLatency("lat-total", body.latency_seconds);
    showLatency("lat-wait", body.queue_wait_seconds);
    const totals = body.totals || {};
    for (const name of ["submitted", "completed", "rejected", "timed_out", "cancelled", "failed", "sentences"]) {
      show("total-" + name, totals[name]);
    }
    history.push({ active, queued });
    if (history.length > HISTORY_SAMPLES) history.shift();
    drawHistory();
  }

  function drawHistory() {
    const canvas = el.history;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const styles = getComputedStyle(document.documentElement);
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    const peak = Math.max(4, ...history.map((s) => s.active + s.queued));
    const bar = width / HISTORY_SAMPLES;
    const offset = HISTORY_SAMPLES - history.length;
    history.forEach((sample, i) => {
      const x = (offset + i) * bar;
      const activeHeight = (sample.active / peak) * height;
      const queuedHeight = (sample.queued / peak) * height;
      ctx.fillStyle = styles.getPropertyValue("--accent").trim() || "#2563eb";
      ctx.fillRect(x, height - activeHeight, Math.max(1, bar - 1), activeHeight);
      ctx.fillStyle = styles.getPropertyValue("--warn").trim() || "#d97706";
      ctx.fillRect(x, height - activeHeight - queuedHeight, Math.max(1, bar - 1), queuedHeight);
    });
    const last = history[history.length - 1] || { active: 0, queued: 0 };
    canvas.setAttribute(
      "aria-label",
      "Requests in the server over the last minute: now " + last.active + " active and " +
        last.queued + " queued; peak " + Math.max(...history.map((s) => s.active + s.queued)),
    );
  }

  async function pollHealth() {
    try {
      const response = await fetch("health", { headers: authHeaders(), cache: "no-store" });
      if (response.status === 401 || response.status === 403) {
        setPill("needs API key", "warn");
      } else {
        renderHealth(await response.json()); // 503 while starting or draining still has figures
      }
    } catch {
      setPill("unreachable", "down");
    } finally {
      setTimeout(pollHealth, document.hidden ? HIDDEN_INTERVAL_MS : HEALTH_INTERVAL_MS);
    }
  }

  // ------------------------------------------------------------------ wiring

  function showSpeed() {
    const speed = Number(el.speed.value);
    el.speedValue.textContent = speed.toFixed(1) + "×";
    el.speedInfo.textContent =
      speed === 1 ? "the voice's own pace" : "length_scale " + (1 / speed).toFixed(2);
  }

  function showFormat() {
    const hints = {
      mediasource: "Streams into the player as each sentence arrives.",
      webaudio: "Streams through Web Audio; the finished file then goes to the player.",
      whole: "This browser cannot stream it from a POST: it plays once complete.",
    };
    el.formatInfo.textContent = hints[playbackMode(el.format.value)];
  }

  function showCount() {
    const n = el.text.value.length;
    el.textCount.textContent = n + (n === 1 ? " character" : " characters");
  }

  el.form.addEventListener("submit", speak);
  el.stop.addEventListener("click", stopPlayback);
  el.voice.addEventListener("change", showSpeakers);
  el.speed.addEventListener("input", showSpeed);
  el.format.addEventListener("change", showFormat);
  el.text.addEventListener("input", showCount);
  el.text.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") el.form.requestSubmit();
  });
  el.apiKey.addEventListener("input", () => {
    apiKey = el.apiKey.value.trim();
  });
  el.apiKey.addEventListener("change", () => {
    apiKey = el.apiKey.value.trim();
    if (!voicesLoaded || errorFromVoices) loadVoices();
  });
  el.player.addEventListener("playing", () => {
    const trace = window.ttsTrace;
    if (trace && trace.playingAt === null) trace.playingAt = performance.now();
  });

  showSpeed();
  showFormat();
  showCount();
  loadVoices();
  pollHealth();
})();
