// Opens the page in headless Chromium with WebGPU (SwiftShader on machines without a GPU),
// waits for the generated text, and checks it against what `recur generate` wrote natively
// for the same checkpoint, prompt and seed.
// Usage: node check.mjs URL LENGTH PROMPT EXPECTED_FILE
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [url, length, prompt, expectedFile] = process.argv.slice(2);
const expected = readFileSync(expectedFile, "utf8").replace(/\n$/, "");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
  ],
});
let code = 1;
try {
  const page = await browser.newPage();
  page.on("console", (m) => console.log("page:", m.text()));
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.state, null, { timeout: 240000 });
  const state = await page.evaluate(() => document.body.dataset.state);
  const status = await page.textContent("#status");
  const text = await page.textContent("#out");
  console.log(await page.textContent("#adapter"));
  console.log("status:", status);
  console.log("text:", JSON.stringify(text));
  const want = prompt.length + Number(length);
  if (state !== "done") {
    console.error("FAIL: the page reported an error");
  } else if (!text.startsWith(prompt) || [...text].length !== want) {
    console.error(`FAIL: expected ${want} characters starting with ${JSON.stringify(prompt)}`);
  } else if (text !== expected) {
    console.error("FAIL: the native sample differs:", JSON.stringify(expected));
  } else {
    console.log("PASS: the page generated, on WebGPU, the text recur generates natively");
    code = 0;
  }
} finally {
  await browser.close();
}
process.exit(code);
