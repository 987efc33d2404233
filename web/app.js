// The demo page: drives recur's wasm Session (web/src/lib.rs). One async loop trains; every
// call into the session awaits (readbacks are map_async futures), so the page never blocks.
// URL parameters preset the controls (cell, hidden, layers, seq, batch, lr, seed, max, log),
// sample_ms and flow_ms set how often a sample is drawn and a step is probed for its gradient
// flow (0: every step; -1: never), and autostart=1 starts at once: that is how web/test.sh
// drives it.
import init, { open, built_in_text } from "./pkg/recur_web.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const SAMPLE_EVERY_MS = Number(params.get("sample_ms") || 3000);
const LOG_EVERY = Number(params.get("log") || 5);
const FLOW_EVERY_MS = Number(params.get("flow_ms") || 2000);

// What the test (and a curious reader, in the console) can see.
const demo = (window.recurDemo = { losses: [], info: null, stepsPerSecond: 0, session: null, flow: null, flows: 0 });

let session = null;
let model = null; // the session's model description (JSON from Rust), null before Start/load
let running = false;
let loop = null; // the promise of the running training loop
let builtIn = null;
const rate = []; // [time ms, step] of recent steps, for the speed

function setState(s) { document.body.dataset.state = s; }
function status(s) { $("status").textContent = s; }
function fail(e) {
  running = false;
  status("error: " + (e && e.message ? e.message : e));
  setState("error");
  buttons();
}

function buttons() {
  $("start").disabled = running || !session;
  $("start").textContent = model ? "Resume" : "Start";
  $("pause").disabled = !running;
  $("reset").disabled = running || !session;
  $("download").disabled = running || !model;
  $("generate").disabled = running || !model;
  $("load").disabled = running || !session;
  for (const id of ["cell", "hidden", "layers", "seq", "batch", "seed"]) $(id).disabled = running || !!model;
}

for (const id of ["cell", "hidden", "layers", "seq", "batch", "lr", "seed", "max"]) {
  if (params.has(id)) $(id).value = params.get(id);
}

function ownText() {
  return document.querySelector("input[name=src]:checked").value === "own" ? $("text").value : null;
}

function describe(info) {
  $("s-model").textContent = `${info.cell.toUpperCase()} ${info.layers}×${info.hidden} ` +
    `(embedding ${info.embed}, ${info.params.toLocaleString()} parameters), vocabulary ` +
    `${info.vocab}, ${info.batch} streams × ${info.seq_len} characters a step`;
  $("s-step").textContent = info.step;
}

function absorb(flat) {
  for (let i = 0; i + 2 < flat.length; i += 3) demo.losses.push([flat[i], flat[i + 1]]);
  const last = demo.losses[demo.losses.length - 1];
  if (last) {
    $("s-step").textContent = last[0];
    $("s-loss").textContent = last[1].toFixed(3);
  }
}

function speed(step) {
  const now = performance.now();
  rate.push([now, step]);
  while (rate.length > 2 && now - rate[0][0] > 5000) rate.shift();
  if (rate.length < 2) return;
  const [t0, s0] = rate[0];
  const sps = ((step - s0) * 1000) / (now - t0);
  demo.stepsPerSecond = sps;
  $("s-sps").textContent = sps.toFixed(1);
  $("s-cps").textContent = Math.round(sps * model.chars_per_step).toLocaleString();
}

function draw() {
  const c = $("curve");
  const ctx = c.getContext("2d");
  const W = c.width, H = c.height, L = 48, R = 10, T = 10, B = 26;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#555";
  const pts = demo.losses;
  if (!pts.length || !model) {
    ctx.fillText("the loss curve appears here once training starts", L, H / 2);
    return;
  }
  const x0 = pts[0][0], x1 = Math.max(pts[pts.length - 1][0], x0 + 1);
  let lo = model.entropy, hi = model.entropy;
  for (const [, y] of pts) { lo = Math.min(lo, y); hi = Math.max(hi, y); }
  lo = Math.max(0, lo - 0.1); hi += 0.1;
  const X = (s) => L + ((s - x0) / (x1 - x0)) * (W - L - R);
  const Y = (v) => T + ((hi - v) / (hi - lo)) * (H - T - B);
  ctx.strokeStyle = "#ddd"; ctx.lineWidth = 1;
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    ctx.beginPath(); ctx.moveTo(L, Y(v)); ctx.lineTo(W - R, Y(v)); ctx.stroke();
    ctx.fillText(v.toFixed(2), 4, Y(v) + 4);
  }
  ctx.fillText(`step ${x0}`, L, H - 8);
  ctx.textAlign = "right"; ctx.fillText(`step ${x1}`, W - R, H - 8); ctx.textAlign = "left";
  ctx.strokeStyle = "#bbb"; ctx.beginPath();
  pts.forEach(([s, v], i) => (i ? ctx.lineTo(X(s), Y(v)) : ctx.moveTo(X(s), Y(v))));
  ctx.stroke();
  ctx.strokeStyle = "#1f5fbf"; ctx.lineWidth = 2; ctx.beginPath();
  let ema = pts[0][1];
  pts.forEach(([s, v], i) => { ema = i ? 0.9 * ema + 0.1 * v : v; i ? ctx.lineTo(X(s), Y(ema)) : ctx.moveTo(X(s), Y(ema)); });
  ctx.stroke();
  ctx.strokeStyle = "#c33"; ctx.setLineDash([6, 4]); ctx.beginPath();
  ctx.moveTo(L, Y(model.entropy)); ctx.lineTo(W - R, Y(model.entropy)); ctx.stroke();
  ctx.setLineDash([]); ctx.fillStyle = "#c33";
  ctx.fillText(`unigram entropy ${model.entropy.toFixed(3)}`, W - R - 160, Y(model.entropy) - 5);
}

// The gradient flow of the last probed step: ‖∂L/∂h_t‖ against t (log scale), one line per
// layer (and direction).
const FLOW_COLORS = ["#1f5fbf", "#d9730d", "#2a9d3a", "#9c3fbf", "#c33", "#0a9ba8"];
function drawFlow() {
  const c = $("flow");
  const ctx = c.getContext("2d");
  const W = c.width, H = c.height, L = 56, R = 10, T = 12, B = 26;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#555";
  const f = demo.flow;
  if (!f || !model) {
    ctx.fillText("the gradient flow appears here after the first probed step", L, H / 2);
    return;
  }
  const all = f.norms.flat().filter((v) => v > 0 && Number.isFinite(v));
  if (!all.length) {
    ctx.fillText(`step ${f.step}: no finite positive gradient to plot`, L, H / 2);
    return;
  }
  let lo = Math.log10(Math.min(...all)), hi = Math.log10(Math.max(...all));
  const pad = Math.max(0.1, (hi - lo) * 0.08);
  lo -= pad; hi += pad;
  const n = f.seq_len;
  const X = (t) => L + ((t - 1) / Math.max(n - 1, 1)) * (W - L - R);
  const Y = (v) => T + ((hi - Math.log10(v)) / (hi - lo)) * (H - T - B);
  // Grid: every decade in range, or five ticks when the range is under two decades.
  let ticks = [];
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) ticks.push(10 ** e);
  if (ticks.length < 2) ticks = [0, 1, 2, 3, 4].map((k) => 10 ** (lo + ((hi - lo) * (k + 0.5)) / 5));
  ctx.strokeStyle = "#ddd"; ctx.lineWidth = 1;
  for (const v of ticks) {
    ctx.beginPath(); ctx.moveTo(L, Y(v)); ctx.lineTo(W - R, Y(v)); ctx.stroke();
    ctx.fillText(v.toExponential(1), 4, Y(v) + 4);
  }
  ctx.fillText("t = 1", L, H - 8);
  ctx.textAlign = "right"; ctx.fillText(`t = ${n} (window of step ${f.step})`, W - R, H - 8); ctx.textAlign = "left";
  const legend = [];
  f.norms.forEach((ys, i) => {
    const layer = Math.floor(i / f.directions) + 1, dir = i % f.directions;
    const color = FLOW_COLORS[i % FLOW_COLORS.length];
    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
    ys.forEach((v, t) => (t ? ctx.lineTo(X(t + 1), Y(v)) : ctx.moveTo(X(t + 1), Y(v))));
    ctx.stroke();
    legend.push([color, `layer ${layer}${f.directions > 1 ? (dir ? " ←" : " →") : ""}`]);
  });
  ctx.textAlign = "right";
  legend.forEach(([color, label], i) => {
    const y = T + 12 + 16 * i;
    ctx.fillStyle = color; ctx.fillRect(W - R - 110, y - 8, 18, 4);
    ctx.fillText(label, W - R - 4, y - 2);
  });
  ctx.textAlign = "left";
}

async function probe() {
  await session.train_probed();
  demo.flow = session.gradient_flow();
  demo.flows += 1;
  drawFlow();
}

// The sample's prompt: a newline when the text has one (as recur train does), else its first
// character.
function samplePrompt() {
  const text = ownText() ?? builtIn;
  return text.includes("\n") ? "\n" : [...text][0];
}

async function sample() {
  const s = await session.sample(samplePrompt(), 200, 0.8, BigInt($("seed").value));
  $("sample").textContent = s.replace(/^\n/, "");
  $("sample-at").textContent = `(at step ${$("s-step").textContent})`;
}

async function train() {
  const max = Number($("max").value);
  let step = model.step;
  let lastSample = performance.now();
  let lastFlow = -Infinity; // the run's first step is probed
  const t0 = performance.now(), first = step;
  let sampling = 0; // ms spent sampling, left out of the run's speed
  rate.length = 0;
  setState("training");
  status("training…");
  while (running) {
    if (max > 0 && step >= max) break;
    // Every FLOW_EVERY_MS one step is probed: it trains as the others do, and only it waits
    // for a readback (its norms).
    if (FLOW_EVERY_MS >= 0 && performance.now() - lastFlow >= FLOW_EVERY_MS) {
      await probe();
      lastFlow = performance.now();
    } else {
      await session.train(1);
    }
    step += 1;
    absorb(session.metrics());
    speed(step);
    draw();
    if (SAMPLE_EVERY_MS > 0 && performance.now() - lastSample > SAMPLE_EVERY_MS) {
      const s0 = performance.now();
      await sample();
      lastSample = performance.now();
      sampling += lastSample - s0;
    }
  }
  absorb(await session.flush());
  // Steps per second of this run, from Start to the last loss read back, samples left out.
  demo.lastRun = { steps: step - first, ms: performance.now() - t0 - sampling };
  model.step = step;
  draw();
  await sample();
  running = false;
  buttons();
  const done = max > 0 && step >= max;
  status(done ? `stopped at step ${step} (the "stop at step" setting)` : `paused at step ${step}`);
  setState(done ? "done" : "paused");
}

function start() {
  if (running) return;
  try {
    if (!model) {
      model = JSON.parse(session.start(ownText(), $("cell").value, Number($("hidden").value),
        Number($("layers").value), Number($("seq").value), Number($("batch").value),
        Number($("lr").value), BigInt($("seed").value), LOG_EVERY));
      demo.info = model;
      demo.losses = [];
      demo.flow = null;
      describe(model);
      drawFlow();
    } else {
      session.set_lr(Number($("lr").value));
    }
  } catch (e) { return fail(e); }
  running = true;
  buttons();
  loop = train().catch(fail);
}

async function pause() {
  running = false;
  await loop;
}

async function reset() {
  await pause();
  model = null;
  demo.losses = [];
  demo.flow = null;
  $("sample").textContent = "";
  $("s-step").textContent = $("s-loss").textContent = $("s-cps").textContent = $("s-sps").textContent = "–";
  $("s-model").textContent = "–";
  draw();
  drawFlow();
  buttons();
  status("reset: choose sizes and press Start");
  setState("ready");
}

async function download() {
  try {
    const bytes = await session.checkpoint();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    a.download = `charlm-step${model.step}.safetensors`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    status(`checkpoint at step ${model.step} written (${bytes.length.toLocaleString()} bytes): ` +
      "recur generate --checkpoint FILE reads it");
  } catch (e) { fail(e); }
}

async function load(file) {
  await pause();
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    model = JSON.parse(session.load(bytes, ownText()));
  } catch (e) { return fail(e); }
  demo.info = model;
  demo.losses = [];
  demo.flow = null;
  describe(model);
  for (const [id, key] of [["cell", "cell"], ["hidden", "hidden"], ["layers", "layers"], ["seq", "seq_len"], ["batch", "batch"], ["lr", "lr"]]) {
    $(id).value = model[key];
  }
  draw();
  drawFlow();
  buttons();
  await sample().catch(fail);
  status(`loaded ${file.name}: step ${model.step}; Resume continues its training`);
  setState("loaded");
}

async function generate() {
  try {
    const t0 = performance.now();
    const text = await session.sample($("prompt").value, Number($("length").value),
      Number($("temperature").value), BigInt($("gseed").value));
    $("out").textContent = text;
    status(`generated ${[...text].length} characters in ${Math.round(performance.now() - t0)} ms`);
    document.body.dataset.generated = String(Number(document.body.dataset.generated || 0) + 1);
  } catch (e) { fail(e); }
}

// The adapter as the browser describes it (wgpu's name for it is the description, which
// browsers often leave empty for privacy; vendor and architecture are usually there).
async function adapterName() {
  const fromRecur = session.adapter();
  try {
    const a = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    const i = a && a.info;
    const parts = i ? [i.vendor, i.architecture, i.device, i.description].filter(Boolean) : [];
    // A CPU adapter (SwiftShader, WARP, lavapipe): workgroup memory only costs there.
    const cpu = a.isFallbackAdapter || /swiftshader|warp|llvmpipe|lavapipe/i.test(parts.join(" "));
    const want = params.has("direct") ? params.get("direct") === "1" : cpu;
    if (want !== session.direct_kernels()) session.set_direct_kernels(want);
    return parts.length ? `${parts.join(" · ")} (WebGPU${a.isFallbackAdapter ? ", fallback adapter" : ""})` : fromRecur;
  } catch {
    return fromRecur;
  }
}

function noWebGpu(detail) {
  const box = $("nogpu");
  box.style.display = "block";
  box.innerHTML = `<b>This browser does not offer WebGPU${detail ? ` (${detail})` : ""},
    so the demo cannot run here.</b> WebGPU is on by default in Chrome and Edge 113+ (Windows,
    macOS, ChromeOS, Android) and Safari 26+. Elsewhere:
    <ul>
    <li>Chrome/Chromium on Linux: open <code>chrome://flags/#enable-unsafe-webgpu</code>, enable
      it and restart (or start it with <code>--enable-unsafe-webgpu --enable-features=Vulkan</code>);</li>
    <li>Firefox: 141+ on Windows has it; elsewhere set <code>dom.webgpu.enabled</code> to true in
      <code>about:config</code> (Nightly);</li>
    <li>Safari before 26: Develop → Feature Flags → WebGPU;</li>
    <li>and check <code>chrome://gpu</code> (or your browser's equivalent): a blocklisted GPU
      driver also hides WebGPU.</li></ul>`;
  status("no WebGPU");
  setState("no-webgpu");
}

document.addEventListener("dragover", (e) => { e.preventDefault(); document.body.classList.add("drop"); });
document.addEventListener("dragleave", () => document.body.classList.remove("drop"));
document.addEventListener("drop", async (e) => {
  e.preventDefault();
  document.body.classList.remove("drop");
  const file = e.dataTransfer.files[0];
  if (!file) return;
  if (/\.(safetensors|ckpt)$/i.test(file.name)) return load(file);
  $("text").value = await file.text();
  document.querySelector("input[name=src][value=own]").checked = true;
  if (!running && model) await reset();
  status(`${file.name}: ${$("text").value.length.toLocaleString()} characters; press Start`);
});
$("start").onclick = start;
$("pause").onclick = pause;
$("reset").onclick = reset;
$("download").onclick = download;
$("generate").onclick = generate;
$("load").onchange = (e) => e.target.files[0] && load(e.target.files[0]);
$("lr").onchange = () => { if (model) try { session.set_lr(Number($("lr").value)); } catch (e) { fail(e); } };

buttons();
draw();
drawFlow();
if (!navigator.gpu) {
  noWebGpu("navigator.gpu is missing");
} else {
  try {
    await init();
    builtIn = built_in_text();
    $("builtin-size").textContent = `${Math.round(builtIn.length / 1024)} KB`;
    try {
      session = demo.session = await open();
    } catch (e) {
      noWebGpu(String(e && e.message ? e.message : e));
      throw null;
    }
    $("adapter").textContent = await adapterName();
    buttons();
    status("ready: press Start");
    setState("ready");
    if (params.get("autostart") === "1") start();
  } catch (e) {
    if (e !== null) fail(e);
  }
}
