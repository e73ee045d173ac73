// Drives the console of a real `airlock serve` in headless Chromium for
// TestConsoleServeBrowser. Protocol on stdout, one line each: "ready" once
// signed in with the one-time URL; "approved" after clicking Approve on the
// held request and seeing it leave the list; "feed" once the live feed shows
// the released request's decision. Errors go to stderr with exit 1.
const puppeteer = require("puppeteer-core");

const { LOGIN_URL, CHROMIUM, USER_DATA_DIR, SHOT, SECRET } = process.env;

function log(line) { process.stdout.write(line + "\n"); }

(async () => {
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: false, // the flags below say --headless themselves
    userDataDir: USER_DATA_DIR,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    protocolTimeout: 60000,
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    page.on("pageerror", (e) => process.stderr.write("page error: " + e.message + "\n"));
    await page.goto(LOGIN_URL, { waitUntil: "load" });
    await page.waitForSelector("#main:not([hidden])", { timeout: 20000 });
    log("ready");

    const approveOnce = 'button[data-verdict="approve"][data-remember="once"]';
    await page.waitForSelector(approveOnce, { timeout: 20000 });
    const text = await page.$eval("#pending li .req", (e) => e.textContent);
    if (!text.includes("/v1/console-held")) throw new Error("pending row shows " + JSON.stringify(text));
    await page.click(approveOnce);
    await page.waitForFunction(() => document.querySelectorAll("#pending li").length === 0, { timeout: 10000 });
    log("approved");

    await page.waitForFunction(() => {
      const t = document.querySelector("#feed tbody");
      return t && t.textContent.includes("/v1/console-held") && t.textContent.includes("inject");
    }, { timeout: 20000 });
    const html = await page.content();
    if (SECRET && html.includes(SECRET)) throw new Error("the secret is in the page");
    await page.screenshot({ path: SHOT, fullPage: true });
    log("feed");
  } finally {
    await browser.close();
  }
})().catch((e) => { process.stderr.write(String(e && e.stack || e) + "\n"); process.exit(1); });
