// Drives the console in headless Chromium for TestConsoleInBrowser.
// Protocol on stdout, one line each: "ready" once signed in and the page is
// live; "approved" after the click; errors go to stderr with exit 1.
const puppeteer = require("puppeteer-core");
const readline = require("readline");

const { LOGIN_URL, CHROMIUM, USER_DATA_DIR, SHOT_DESKTOP, SHOT_PHONE, EVIL_URL } = process.env;

function log(line) { process.stdout.write(line + "\n"); }

// launch starts Chromium. On a fresh CI machine, beside the race suite's
// other packages on two cores, it once took longer than puppeteer's
// default 30 s to print its DevTools address: wait up to 2 minutes, and
// try a second time (a new profile) before giving up.
async function launch() {
  const opts = (dir) => ({
    executablePath: CHROMIUM,
    headless: false, // the flags below say --headless themselves
    userDataDir: dir,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    timeout: 120000,
    protocolTimeout: 60000,
  });
  try {
    return await puppeteer.launch(opts(USER_DATA_DIR + "/first"));
  } catch (e) {
    process.stderr.write("chromium did not start, trying once more: " + e.message + "\n");
    return await puppeteer.launch(opts(USER_DATA_DIR + "/second"));
  }
}

(async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    const external = [];
    page.on("request", (r) => { if (!r.url().startsWith(new URL(LOGIN_URL).origin) && !r.url().startsWith("data:")) external.push(r.url()); });
    page.on("pageerror", (e) => process.stderr.write("page error: " + e.message + "\n"));

    await page.goto(LOGIN_URL, { waitUntil: "load" });
    await page.waitForSelector("#main:not([hidden])", { timeout: 20000 });
    const cookies = await page.cookies();
    const c = cookies.find((c) => c.name === "airlock_console");
    if (!c || !c.httpOnly || c.sameSite !== "Strict") throw new Error("session cookie: " + JSON.stringify(c));
    if (await page.evaluate(() => document.cookie.includes("airlock_console"))) throw new Error("cookie readable by script");
    log("ready");

    // Wait (live update) for the request the Go test holds now.
    const approveOnce = 'button[data-verdict="approve"][data-remember="once"]';
    await page.waitForSelector(approveOnce, { timeout: 20000 });
    const text = await page.$eval("#pending li .req", (e) => e.textContent);
    if (!text.includes("api.openai.com") || !text.includes("<img")) throw new Error("pending row shows " + JSON.stringify(text));
    if (await page.evaluate(() => window.__xss !== undefined || document.querySelector("#pending img") !== null)) throw new Error("agent-supplied path became markup");
    // A hostile page on another site, in the same signed-in browser, tries
    // to approve it: a no-cors fetch and a form POST.
    const id = await page.$eval("#pending li", (e) => e.getAttribute("data-id"));
    const evil = await browser.newPage();
    await evil.goto(EVIL_URL + "?id=" + encodeURIComponent(id), { waitUntil: "load" });
    await evil.waitForFunction(() => document.title === "sent", { timeout: 20000 });
    await evil.close();
    log("attacked");
    await page.bringToFront();
    await page.waitForFunction((id) => document.querySelector('#pending li[data-id="' + id + '"]') !== null, { timeout: 5000 }, id);

    await page.waitForFunction(() => document.querySelector("#usage-agents .chart svg rect") !== null, { timeout: 20000 });
    await page.waitForFunction(() => document.querySelector("#budgets .bar .fill") !== null, { timeout: 20000 });
    await page.screenshot({ path: SHOT_DESKTOP, fullPage: true });

    const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    if (overflow) throw new Error("page wider than 1280 px");

    // Phone width: still readable, no sideways scroll, buttons usable.
    await page.setViewport({ width: 390, height: 844, isMobile: true });
    await page.waitForSelector(approveOnce, { visible: true, timeout: 10000 });
    if (await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1)) throw new Error("page wider than a phone");
    await page.screenshot({ path: SHOT_PHONE, fullPage: true });

    await page.click(approveOnce);
    await page.waitForFunction(() => document.querySelectorAll("#pending li").length === 0, { timeout: 10000 });
    log("approved");
    if (external.length) throw new Error("external requests: " + external.join(", "));
    log("done");
  } finally {
    await browser.close();
  }
})().catch((e) => { process.stderr.write(String(e && e.stack || e) + "\n"); process.exit(1); });
