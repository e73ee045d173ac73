// Drives airlock's RPC door with the unmodified SanctumAI Node SDK, built
// by rpctest.BuildNodeSDK (npm ci && npx tsc in a copy of
// ../shared/peers/sanctum-sdk-node). Usage: node node_client.js SDK_DIR
// CONFIG_JSON. Prints one JSON line; secret values only as SHA-256.
"use strict";
const crypto = require("crypto");
const path = require("path");

const sdk = require(path.join(process.argv[2], "dist", "index.js"));
const cfg = JSON.parse(process.argv[3]);

function errName(e) {
  return e instanceof sdk.VaultError ? e.constructor.name + ":" + e.code : "not a VaultError: " + e;
}

async function main() {
  const out = {};
  const c = new sdk.SanctumClient(cfg.agent, { keyPath: cfg.key_path });
  await c.connect(cfg.socket ? cfg.socket : { host: cfg.host, port: cfg.port });
  out.list = (await c.list()).map((e) => e.path);
  const value = await c.retrieve(cfg.retrieve_path, cfg.ttl);
  out.value_sha256 = crypto.createHash("sha256").update(value, "utf8").digest("hex");
  try {
    await c.releaseLease("no-such-lease");
    out.unknown_lease = "none";
  } catch (e) {
    out.unknown_lease = errName(e);
  }
  const r = await c.use(cfg.http_path, "http_request", {
    method: "POST", url: cfg.url, body: "from-node", headers: { "X-Test": "1" }, header_type: "bearer",
  });
  out.http_status = r.status;
  out.http_body = r.body;
  out.signature = (await c.use(cfg.sign_path, "sign", { algorithm: "hmac-sha256", data: "sign me" })).signature;
  const enc = await c.use(cfg.crypt_path, "encrypt", { data: "round trip ✓" });
  out.decrypted = (await c.use(cfg.crypt_path, "decrypt", { data: enc.ciphertext })).plaintext;
  // The Node SDK README's form: refused, naming the parameter.
  try {
    await c.use(cfg.crypt_path, "encrypt", { plaintext: "sensitive data" });
    out.readme_encrypt = "accepted";
  } catch (e) {
    out.readme_encrypt = errName(e) + ":" + e.message;
  }
  try {
    await c.use(cfg.denied_path, "sign", { data: "x" });
    out.denied = "allowed";
  } catch (e) {
    out.denied = errName(e);
  }
  await c.close();
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error("node_client:", e && e.stack ? e.stack : e);
  process.exit(1);
});
