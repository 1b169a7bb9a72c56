// Opens a fallback landing page in a real headless Chromium (Debian's) at a
// phone's viewport, through the DevTools protocol (chrome-remote-interface),
// and reports what a recipient would see; saves a screenshot of the
// viewport. Used by tests/mms.rs, which judges the report and the pixels.
//
// Usage: node landing.js <chromium> <url> <screenshot.png>
//
// One JSON line on stdout:
//   {"viewport":{"width","height"},"scrollWidth","title","csp_errors",
//    "elements":[{"selector","text","box":{x,y,width,height},"visible",
//                 "loaded","font_px"}]}
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const CDP = require('chrome-remote-interface');

const [chromium, url, screenshot] = process.argv.slice(2);
const WIDTH = 390;
const HEIGHT = 844;

// Runs in the page (DevTools evaluation, not a page script: the page's CSP
// allows none).
const REPORT = `(() => {
  const out = [];
  for (const selector of ['.from', 'h1', '.text', '.text a', 'img', 'video']) {
    document.querySelectorAll(selector).forEach((el, i) => {
      const r = el.getBoundingClientRect();
      const style = getComputedStyle(el);
      out.push({
        selector: selector + '#' + i,
        text: (el.innerText || el.getAttribute('alt') || '').slice(0, 200),
        href: el.getAttribute('href'),
        box: { x: r.x, y: r.y, width: r.width, height: r.height },
        visible: r.width > 0 && r.height > 0 && style.visibility === 'visible'
          && style.display !== 'none' && Number(style.opacity) > 0,
        loaded: el.tagName === 'IMG' ? (el.complete && el.naturalWidth > 0) : null,
        font_px: parseFloat(style.fontSize),
      });
    });
  }
  return {
    viewport: { width: innerWidth, height: innerHeight },
    scrollWidth: document.documentElement.scrollWidth,
    title: document.title,
    elements: out,
  };
})()`;

function launch() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-chromium-'));
  const child = spawn(chromium, [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--no-default-browser-check',
    '--hide-scrollbars',
    '--remote-debugging-port=0',
    '--user-data-dir=' + profile,
    `--window-size=${WIDTH},${HEIGHT}`,
    'about:blank',
  // Its own process group: the browser's helper processes (renderer,
  // zygote, crashpad) are killed with it at the end.
  ], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error('chromium did not start: ' + seen)), 30000);
    child.stderr.on('data', (chunk) => {
      seen += chunk;
      const m = /DevTools listening on ws:\/\/[^:]+:(\d+)\//.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), profile });
      }
    });
    child.on('exit', (code) => reject(new Error('chromium exited ' + code + ': ' + seen)));
  });
}

async function main() {
  const { child, port, profile } = await launch();
  let client;
  try {
    client = await CDP({ port });
    const { Page, Runtime, Emulation, Log } = client;
    const cspErrors = [];
    await Log.enable();
    Log.entryAdded(({ entry }) => {
      if (/Content Security Policy/i.test(entry.text)) cspErrors.push(entry.text.slice(0, 300));
    });
    await Page.enable();
    await Emulation.setDeviceMetricsOverride({
      width: WIDTH, height: HEIGHT, deviceScaleFactor: 1, mobile: true,
    });
    const loaded = Page.loadEventFired();
    const nav = await Page.navigate({ url });
    if (nav.errorText) throw new Error('navigation failed: ' + nav.errorText);
    await loaded;
    const { result, exceptionDetails } = await Runtime.evaluate({
      expression: REPORT, returnByValue: true,
    });
    if (exceptionDetails) throw new Error('report failed: ' + JSON.stringify(exceptionDetails));
    const shot = await Page.captureScreenshot({ format: 'png' });
    fs.writeFileSync(screenshot, Buffer.from(shot.data, 'base64'));
    const report = result.value;
    report.csp_errors = cspErrors;
    process.stdout.write(JSON.stringify(report) + '\n');
  } finally {
    if (client) await client.close();
    const exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', resolve);
    });
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch (e) {
      child.kill('SIGKILL');
    }
    await exited;
    // A helper may still be writing into the profile for a moment: retried,
    // and a profile left behind is reported, never a failed check.
    try {
      fs.rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    } catch (e) {
      process.stderr.write('chromium profile not removed: ' + e.message + '\n');
    }
  }
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
