// List OpenAI models through airlock. No API key here: airlock injects it.
//
// Run: airlock run --agent research-bot -- node agent.mjs
//
// airlock run sets HTTPS_PROXY, NODE_EXTRA_CA_CERTS (Node trusts airlock's
// CA) and NODE_USE_ENV_PROXY=1. Node's built-in fetch honours HTTPS_PROXY
// only from Node 22.21 / 24.5 on, and only with NODE_USE_ENV_PROXY=1; on
// older Node this script routes fetch through undici's EnvHttpProxyAgent
// (`npm install undici`), which reads HTTPS_PROXY and NO_PROXY.
import { createRequire } from "node:module";

function fetchHonoursProxy() {
  const [major, minor] = process.versions.node.split(".").map(Number);
  return process.env.NODE_USE_ENV_PROXY === "1" && (major > 24 || (major === 24 && minor >= 5) || (major === 22 && minor >= 21));
}

if (!fetchHonoursProxy()) {
  try {
    // createRequire honours NODE_PATH, which a dynamic import() ignores.
    const { setGlobalDispatcher, EnvHttpProxyAgent } = createRequire(import.meta.url)("undici");
    setGlobalDispatcher(new EnvHttpProxyAgent());
  } catch {
    console.error(`Node ${process.versions.node}: built-in fetch ignores HTTPS_PROXY; run \`npm install undici\` (or use Node >= 22.21)`);
    process.exit(2);
  }
}

const resp = await fetch("https://api.openai.com/v1/models");
if (!resp.ok) {
  console.error(resp.status, resp.headers.get("x-airlock-error") ?? "", await resp.text());
  process.exit(1);
}
const { data } = await resp.json();
for (const m of data.slice(0, 5)) console.log(m.id);
