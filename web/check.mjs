// Drives the demo page in headless Chromium (WebGPU; SwiftShader on machines without a GPU)
// and checks it against what recur did natively (web/test.sh made the native files in OUT):
// 1. the page trains STEPS steps from seed 0: the first step's loss equals the native one
//    within 1e-5 (that step is a probed one), the loss falls, the page is drawn (a
//    screenshot, not blank), and the gradient-flow panel has data (T finite positive norms
//    per layer, from Session.gradient_flow) and is drawn;
// 2. its "download checkpoint" file is the one `recur generate` reads: the same sample
//    natively and in the page;
// 3. the native checkpoint loads in the page: the same sample as natively, and MORE further
//    steps whose first loss equals the native resumed run's within 1e-5;
// 4. without WebGPU the page says so;
// 5. Start, Pause and Reset work, and a pasted text trains;
// and no page logs a console error.
// Usage: node check.mjs URL STEPS MORE OUT RECUR_BINARY
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { PNG } from "playwright-core/lib/utilsBundle";

const [url, stepsArg, moreArg, out, recur] = process.argv.slice(2);
const steps = Number(stepsArg), more = Number(moreArg);
const TOL = 1e-5;
const failures = [];
const errors = [];
function check(ok, what) {
  console.log(ok ? "ok  " : "FAIL", what);
  if (!ok) failures.push(what);
}
function csv(path) {
  return readFileSync(path, "utf8").trim().split("\n").slice(1)
    .map((l) => l.split(",").map(Number)).map(([step, loss]) => [step, loss]);
}
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const GEN = ["fn ", 200, 0.8, 1]; // prompt, length, temperature, seed: as test.sh's recur generate
function nativeSample(ckpt) {
  return execFileSync(recur, ["generate", "--checkpoint", ckpt, "--prompt", GEN[0], "--length",
    String(GEN[1]), "--temperature", String(GEN[2]), "--seed", String(GEN[3])],
  { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).replace(/\n$/, "");
}
async function settle(page, states) {
  await page.waitForFunction((s) => s.includes(document.body.dataset.state), states, { timeout: 600000 });
  return page.evaluate(() => document.body.dataset.state);
}
async function generateIn(page) {
  const n = await page.evaluate(() => Number(document.body.dataset.generated || 0));
  await page.fill("#prompt", GEN[0]);
  await page.fill("#length", String(GEN[1]));
  await page.fill("#temperature", String(GEN[2]));
  await page.fill("#gseed", String(GEN[3]));
  await page.click("#generate");
  await page.waitForFunction((k) => Number(document.body.dataset.generated || 0) > k
    || document.body.dataset.state === "error", n, { timeout: 120000 });
  return page.textContent("#out");
}
function watch(page, name) {
  page.on("console", (m) => {
    console.log(`${name}: [${m.type()}] ${m.text()}`);
    if (m.type() === "error") errors.push(`${name}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`${name}: ${e}`));
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
  ],
});
try {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  watch(page, "page");

  // 1. Train from seed 0 for `steps` steps.
  await page.goto(`${url}&max=${steps}&log=1&flow_ms=500&autostart=1`);
  let state = await settle(page, ["done", "error", "no-webgpu"]);
  console.log("adapter:", await page.textContent("#adapter"));
  check(state === "done", `the page trains ${steps} steps (${await page.textContent("#status")})`);
  const run = await page.evaluate(() => ({ losses: recurDemo.losses, last: recurDemo.lastRun, info: recurDemo.info }));
  const native = csv(`${out}/native.csv`);
  const got = run.losses;
  check(got.length === steps && got.every(([s], i) => s === i + 1), `the page read back the loss of steps 1..${steps}`);
  if (got.length && native.length) {
    const d = Math.abs(got[0][1] - native[0][1]);
    check(d <= TOL, `step 1 loss: page ${got[0][1]}, native ${native[0][1]}, |diff| ${d.toExponential(2)} <= ${TOL}`);
    const n = Math.min(got.length, native.length);
    const worst = Math.max(...got.slice(0, n).map(([, l], i) => Math.abs(l - native[i][1])));
    console.log(`info: largest |page - native| loss over ${n} steps: ${worst.toExponential(2)}`);
    const head = mean(got.slice(0, 5).map((p) => p[1])), tail = mean(got.slice(-5).map((p) => p[1]));
    check(tail < head - 0.3, `the loss falls: mean of the first 5 steps ${head.toFixed(3)}, of the last 5 ${tail.toFixed(3)}`);
  }
  if (run.last) {
    const sps = run.last.steps / (run.last.ms / 1000);
    const cps = sps * run.info.chars_per_step;
    console.log(`speed: ${sps.toFixed(2)} steps/s, ${cps.toFixed(0)} characters/s in the page (samples left out)`);
    writeFileSync(`${out}/page-speed.json`, JSON.stringify({ steps_per_s: sps, chars_per_s: cps, ...run.last }));
  }
  const shot = await page.screenshot({ path: `${out}/page-after-training.png`, fullPage: true });
  const img = PNG.sync.read(shot);
  const colors = new Set();
  for (let i = 0; i < img.data.length; i += 4) colors.add(img.data.readUInt32BE(i));
  check(colors.size > 64, `screenshot ${out}/page-after-training.png (${img.width}x${img.height}) has ${colors.size} colours`);
  // The curve itself: the running mean (blue) and the entropy line (red) are drawn.
  const canvas = PNG.sync.read(await page.locator("#curve").screenshot());
  let blue = 0, red = 0;
  for (let i = 0; i < canvas.data.length; i += 4) {
    const [r, g, b] = canvas.data.subarray(i, i + 3);
    if (b > 150 && r < 90 && g < 130) blue++;
    if (r > 160 && g < 90 && b < 90) red++;
  }
  check(blue > 100 && red > 100, `the loss curve is drawn (${blue} blue, ${red} red pixels)`);

  // The gradient-flow panel: the norms of the last probed step, and their plot.
  const fl = await page.evaluate(() => ({ shown: recurDemo.flow, probed: recurDemo.flows,
    now: recurDemo.session.gradient_flow() }));
  const f = fl.shown;
  const series = f ? f.layers * f.directions : 0;
  check(fl.probed >= 1 && f && f.step >= 1 && f.step <= steps && JSON.stringify(f) === JSON.stringify(fl.now),
    `the page probed ${fl.probed} step(s) for the gradient flow (last: step ${f && f.step}), and Session.gradient_flow() returns what the panel shows`);
  check(f && series === run.info.layers && f.norms.length === series && f.seq_len === run.info.seq_len
    && f.norms.every((ys) => ys.length === run.info.seq_len && ys.every((v) => Number.isFinite(v) && v > 0)),
  `the gradient flow has ${run.info.seq_len} finite positive norms for each of ${run.info.layers} layer(s)`);
  if (f) console.log(`info: ‖∂L/∂h_t‖ at step ${f.step}, t = 1..${f.seq_len}: ${f.norms.map((ys) => ys.map((v) => v.toExponential(2)).join(" ")).join(" | ")}`);
  const flowPng = PNG.sync.read(await page.locator("#flow").screenshot());
  const flowColors = new Set();
  let line = 0;
  for (let i = 0; i < flowPng.data.length; i += 4) {
    const [r, g, b] = flowPng.data.subarray(i, i + 3);
    flowColors.add(flowPng.data.readUInt32BE(i));
    if (b > 150 && r < 90 && g < 130) line++;
  }
  check(line > 100 && flowColors.size > 16, `the gradient-flow panel is drawn (${line} pixels of its line, ${flowColors.size} colours)`);

  // 2. The page's checkpoint, read natively.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  await download.saveAs(`${out}/page.safetensors`);
  const fromPage = await generateIn(page);
  const nativeFromPage = nativeSample(`${out}/page.safetensors`);
  check(fromPage === nativeFromPage,
    `recur generate reads the page's checkpoint: the same ${GEN[1]} characters natively and in the page\n  page:   ${JSON.stringify(fromPage)}\n  native: ${JSON.stringify(nativeFromPage)}`);

  // 3. The native checkpoint, loaded and trained further in the page.
  await page.setInputFiles("#load", `${out}/native.safetensors`);
  state = await settle(page, ["loaded", "error"]);
  const info = await page.evaluate(() => recurDemo.info);
  check(state === "loaded" && info.step === steps, `the page loads the native checkpoint at step ${info && info.step}`);
  const sample = await generateIn(page);
  const expected = readFileSync(`${out}/native-sample.txt`, "utf8").replace(/\n$/, "");
  check(sample === expected, `the page generates from it what recur generates natively\n  page:   ${JSON.stringify(sample)}\n  native: ${JSON.stringify(expected)}`);
  await page.fill("#max", String(steps + more));
  await page.click("#start");
  state = await settle(page, ["done", "error"]);
  const resumed = await page.evaluate(() => recurDemo.losses);
  const nativeResumed = csv(`${out}/native-resumed.csv`);
  check(state === "done" && resumed.length === more && resumed[0][0] === steps + 1,
    `the page keeps training it: steps ${resumed.map((p) => p[0]).join(",")}`);
  if (resumed.length && nativeResumed.length) {
    const d = Math.abs(resumed[0][1] - nativeResumed[0][1]);
    check(d <= TOL, `step ${steps + 1} loss after loading: page ${resumed[0][1]}, native resumed ${nativeResumed[0][1]}, |diff| ${d.toExponential(2)} <= ${TOL}`);
  }

  // 4. A browser without WebGPU.
  const bare = await context.newPage();
  watch(bare, "no-webgpu page");
  await bare.addInitScript(() => { delete Navigator.prototype.gpu; });
  await bare.goto(url);
  state = await settle(bare, ["no-webgpu", "ready", "error"]);
  const said = await bare.textContent("#nogpu");
  check(state === "no-webgpu" && (await bare.isVisible("#nogpu")) && said.includes("enable-unsafe-webgpu"),
    "without WebGPU the page says so and how to enable it");

  // 5. The controls by hand: Start, Pause (no step after it), Reset, then a pasted text.
  const ui = await context.newPage();
  watch(ui, "controls page");
  await ui.goto(`${url}&log=1&sample_ms=0`);
  await settle(ui, ["ready", "error"]);
  await ui.click("#start");
  await ui.waitForFunction(() => recurDemo.losses.length >= 2 || document.body.dataset.state === "error",
    null, { timeout: 120000 });
  await ui.click("#pause");
  state = await settle(ui, ["paused", "error"]);
  const at = await ui.evaluate(() => recurDemo.losses.length);
  await ui.waitForTimeout(1000);
  const later = await ui.evaluate(() => recurDemo.losses.length);
  check(state === "paused" && at >= 2 && later === at, `Pause stops training (${at} steps, ${later} a second later)`);
  await ui.click("#reset");
  state = await settle(ui, ["ready", "error"]);
  check(state === "ready" && (await ui.evaluate(() => recurDemo.losses.length)) === 0, "Reset clears the model");
  const own = "hello recur, hello webgpu. ".repeat(20);
  await ui.check("input[name=src][value=own]");
  await ui.fill("#text", own);
  await ui.fill("#max", "4");
  await ui.click("#start");
  state = await settle(ui, ["done", "error"]);
  const mine = await ui.evaluate(() => ({ info: recurDemo.info, n: recurDemo.losses.length }));
  const distinct = new Set(own).size;
  check(state === "done" && mine.n === 4 && mine.info.vocab === distinct,
    `a pasted text trains: ${mine.n} steps, vocabulary ${mine.info && mine.info.vocab} (the text has ${distinct} characters)`);

  check(errors.length === 0, `no console errors${errors.length ? ":\n  " + errors.join("\n  ") : ""}`);
} finally {
  await browser.close();
}
if (failures.length) {
  console.error(`FAIL: ${failures.length} check(s) failed`);
  process.exit(1);
}
console.log("PASS: the page trains on WebGPU as recur does natively, and their checkpoints round-trip");
