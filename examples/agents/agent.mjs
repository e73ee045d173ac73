// List OpenAI models through airlock. No API key here: airlock injects it.
//
// Run: NODE_USE_ENV_PROXY=1 airlock run --agent research-bot -- node agent.mjs
//
// Node's built-in fetch ignores HTTPS_PROXY unless NODE_USE_ENV_PROXY=1
// (Node >= 22.21 / 24.5). On older Node, install undici and this script
// routes fetch through EnvHttpProxyAgent, which reads HTTPS_PROXY/NO_PROXY.
// NODE_EXTRA_CA_CERTS (set by airlock run) makes Node trust airlock's CA.
if (!process.env.NODE_USE_ENV_PROXY) {
  try {
    const { setGlobalDispatcher, EnvHttpProxyAgent } = await import("undici");
    setGlobalDispatcher(new EnvHttpProxyAgent());
  } catch {
    console.error("set NODE_USE_ENV_PROXY=1 (Node >= 22.21) or `npm install undici`");
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
