// drive.mjs plays a channel of the local stack in Debian's Chromium
// (headless, through playwright-core), one page per format at once, and
// prints one JSON line per format with what the player did:
//
//   node players/drive.mjs <edge URL> <channel> <seconds> [name=value...] hls dash smooth
//
// name=value arguments are more query parameters for each page (for
// example clearkey={KID hex}:{key hex}, the keys of an encrypted channel).
//
// Each page plays live for at least <seconds> of media time. Meanwhile the
// driver forces the lowest and then the highest video rendition and waits
// until the player reports each one rendered. The exit status is 0 when
// every format played without a player error and rendered both ends of
// the ladder.
//
// The cues mode plays one page per format and text track instead, and
// prints what each page's player put in its text tracks (cuesMode):
//
//   node players/drive.mjs cues <edge URL> <channel> <seconds> [name=value...] <format>:<text track>[@<channel>]...
//
// The --events mode plays each format live for <seconds> of media time
// without forcing renditions, and its line adds the ad markers the player
// reported (window.smoothcast.events: see reportEvents in the player
// page); the exit status is 0 when every format played without an error:
//
//   node players/drive.mjs --events <edge URL> <channel> <seconds> hls dash
import { chromium } from "playwright-core";

const cuesMode = process.argv[2] === "cues";
const eventsMode = process.argv[2] === "--events";
const [edge, channel, secondsArg, ...formats] = process.argv.slice(cuesMode || eventsMode ? 3 : 2);
const seconds = Number(secondsArg);
if (!cuesMode && (!edge || !channel || !(seconds > 0) || formats.length === 0)) {
  console.error("usage: node drive.mjs <edge URL> <channel> <seconds> <hls|dash|smooth>...");
  process.exit(2);
}

const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

async function waitFor(page, what, fn, arg, timeoutMs) {
  try {
    await page.waitForFunction(fn, arg, { timeout: timeoutMs, polling: 200 });
  } catch (e) {
    throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
  }
}

// pageParams are the name=value arguments, more query parameters for
// every page (play and playEvents).
const pageParams = Object.fromEntries(formats.filter((a) => a.includes("=")).map((a) => a.split(/=(.*)/s).slice(0, 2)));
const pageFormats = formats.filter((a) => !a.includes("="));

// pageURL is the player page playing channel in format.
function pageURL(format) {
  return `${edge}/player/?${new URLSearchParams({ channel, format, ...pageParams })}`;
}

async function play(browser, format) {
  const page = await browser.newPage();
  const console_ = [];
  page.on("console", (m) => { if (m.type() === "error") console_.push(m.text()); });
  page.on("pageerror", (e) => console_.push(String(e)));
  // Failed requests, with their URLs (the console says only "404").
  // Every media and manifest response, for the report of a failure.
  const failed = [], requests = [];
  page.on("response", (r) => {
    const line = `${new Date().toISOString().slice(11, 23)} ${r.status()} ${r.url().replace(edge, "")}`;
    if (r.status() >= 400) failed.push(line);
    if (r.url().includes("/live/")) requests.push(line);
  });
  const result = { format, ok: false };
  try {
    await page.goto(pageURL(format));
    await waitFor(page, "playback start", () => document.getElementById("video").currentTime > 0.5, null, 30000);
    result.start = await page.evaluate(() => document.getElementById("video").currentTime);
    const levels = await page.evaluate(() => window.smoothcast.levels);
    result.levels = levels;
    if (levels.length < 2) throw new Error(`the player offers ${levels.length} video renditions`);
    const lo = levels.indexOf(Math.min(...levels));
    const hi = levels.indexOf(Math.max(...levels));
    for (const [name, i] of [["lowest", lo], ["highest", hi]]) {
      await page.evaluate((i) => window.smoothcast.setLevel(i), i);
      await waitFor(page, `${name} rendition rendered`,
        (b) => window.smoothcast.rendered[window.smoothcast.rendered.length - 1] === b, levels[i], 30000);
    }
    await waitFor(page, `${seconds} s of playback`,
      ([t0, s]) => document.getElementById("video").currentTime - t0 >= s, [result.start, seconds], (seconds + 30) * 1000);
    Object.assign(result, await page.evaluate(() => ({
      end: document.getElementById("video").currentTime,
      rendered: window.smoothcast.rendered,
      errors: window.smoothcast.errors,
      latency: window.smoothcast.latency ? window.smoothcast.latency() : null,
      paused: document.getElementById("video").paused,
    })));
    result.ok = result.errors.length === 0 && !result.paused;
  } catch (e) {
    result.failure = e.message;
    try {
      Object.assign(result, await page.evaluate(() => {
        const v = document.getElementById("video");
        const ranges = [];
        for (let i = 0; i < v.buffered.length; i++) ranges.push([v.buffered.start(i), v.buffered.end(i)]);
        return {
          at: v.currentTime, paused: v.paused, readyState: v.readyState, buffered: ranges,
          rendered: window.smoothcast.rendered,
          errors: window.smoothcast.errors,
        };
      }));
    } catch {}
    result.requests = requests.slice(-40);
  }
  if (console_.length) result.console = console_.slice(0, 10);
  if (failed.length) result.failed = failed.slice(-20);
  await page.close();
  return result;
}

// playCues plays channel in format on a page of its own with text track
// text (a label or a language) selected, for seconds of media time, and
// returns what the player did and every cue its text tracks held
// (window.smoothcast.cues: {track, start, end, text}, media element
// times). params are more query parameters for the page (start=0 plays
// the archive from its start); pageChannel is the channel (the
// command's, unless the page's argument names another after an @). ok: no player error, playing, and some
// cue.
async function playCues(browser, format, text, params, pageChannel) {
  const page = await browser.newPage();
  const console_ = [], failed = [];
  page.on("console", (m) => { if (m.type() === "error") console_.push(m.text()); });
  page.on("pageerror", (e) => console_.push(String(e)));
  page.on("response", (r) => {
    if (r.status() >= 400) failed.push(`${r.status()} ${r.url().replace(edge, "")}`);
  });
  const result = { format, text, channel: pageChannel, ok: false };
  const q = new URLSearchParams({ channel: pageChannel, format, text, ...params });
  try {
    await page.goto(`${edge}/player/?${q}`);
    await waitFor(page, "playback start", () => document.getElementById("video").currentTime > 0.5, null, 30000);
    result.start = await page.evaluate(() => document.getElementById("video").currentTime);
    await waitFor(page, `${seconds} s of playback`,
      ([t0, s]) => document.getElementById("video").currentTime - t0 >= s, [result.start, seconds], (seconds + 30) * 1000);
  } catch (e) {
    result.failure = e.message;
  }
  try {
    Object.assign(result, await page.evaluate(() => ({
      end: document.getElementById("video").currentTime,
      paused: document.getElementById("video").paused,
      textTracks: window.smoothcast.textTracks,
      cues: window.smoothcast.cues,
      errors: window.smoothcast.errors,
    })));
    result.ok = !result.failure && result.errors.length === 0 && !result.paused && result.cues.length > 0;
  } catch {}
  if (console_.length) result.console = console_.slice(0, 10);
  if (failed.length) result.failed = failed.slice(-20);
  await page.close();
  return result;
}

// runAll launches Chromium, runs the pages start gives (promises of
// results), prints each result as a JSON line and exits: 0 when every
// result is ok.
async function runAll(start) {
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--disable-gpu", "--mute-audio"],
  });
  let ok = true;
  try {
    const results = await Promise.all(start(browser));
    for (const r of results) {
      ok &&= r.ok;
      console.log(JSON.stringify(r));
    }
  } finally {
    await browser.close();
  }
  process.exit(ok ? 0 : 1);
}

if (cuesMode) {
  const params = Object.fromEntries(formats.filter((a) => a.includes("=")).map((a) => a.split(/=(.*)/s).slice(0, 2)));
  const pages = formats.filter((a) => !a.includes("=")).map((a) => {
    const [spec, ch] = a.split("@");
    return [...spec.split(/:(.*)/s).slice(0, 2), ch || channel];
  });
  if (!edge || !channel || !(seconds > 0) || pages.length === 0 || pages.some(([f, t]) => !f || !t)) {
    console.error("usage: node drive.mjs cues <edge URL> <channel> <seconds> [name=value...] <hls|dash|smooth>:<text track>[@<channel>]...");
    process.exit(2);
  }
  await runAll((browser) => pages.map(([f, t, ch]) => playCues(browser, f, t, params, ch)));
}

// playEvents plays format live for the given seconds of media time and
// reports the ad markers the player saw (--events).
async function playEvents(browser, format) {
  const page = await browser.newPage();
  const console_ = [];
  page.on("pageerror", (e) => console_.push(String(e)));
  const result = { format, ok: false };
  try {
    await page.goto(pageURL(format));
    await waitFor(page, "playback start", () => document.getElementById("video").currentTime > 0.5, null, 30000);
    result.start = await page.evaluate(() => document.getElementById("video").currentTime);
    await waitFor(page, `${seconds} s of playback`,
      ([t0, s]) => document.getElementById("video").currentTime - t0 >= s, [result.start, seconds], (seconds + 30) * 1000);
  } catch (e) {
    result.failure = e.message;
  }
  Object.assign(result, await page.evaluate(() => ({
    end: document.getElementById("video").currentTime,
    events: window.smoothcast.events,
    errors: window.smoothcast.errors,
  })));
  result.ok = !result.failure && result.errors.length === 0;
  if (console_.length) result.console = console_.slice(0, 10);
  await page.close();
  return result;
}

if (eventsMode) {
  await runAll((browser) => pageFormats.map((f) => playEvents(browser, f)));
}

await runAll((browser) => pageFormats.map((f) => play(browser, f)));
