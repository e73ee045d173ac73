#!/usr/bin/env python3
"""Drive airlock's SanctumAI door with the unmodified public Python SDK.

Usage: sdk_client.py CONFIG_JSON

CONFIG_JSON keys: host, port, agent, key_path, list_expect (paths that must
be listed), retrieve_path, ttl, http_path, url, sign_path, crypt_path,
denied_path. Prints one JSON line with what each step returned; secret
values are reported as SHA-256 digests only. Exits non-zero on an
unexpected exception (the JSON line then carries "error").
"""

import hashlib
import json
import sys
import traceback

from sanctum_ai import AccessDenied, LeaseExpired, SanctumClient, VaultError


def main() -> int:
    cfg = json.loads(sys.argv[1])
    out = {}
    try:
        client = SanctumClient(
            cfg["agent"], host=cfg["host"], port=int(cfg["port"]), key_path=cfg["key_path"]
        )
        client.connect()
        out["list"] = sorted(c["path"] for c in client.list())

        raw = client.retrieve_raw(cfg["retrieve_path"], ttl=int(cfg["ttl"]))
        value = bytes.fromhex(raw["value"])
        out["retrieve"] = {
            "value_sha256": hashlib.sha256(value).hexdigest(),
            "ttl": raw.get("ttl"),
            "has_expires_at": "expires_at" in raw,
        }
        client.release_lease(raw["lease_id"])
        client.release_lease(raw["lease_id"])  # idempotent
        try:
            client.release_lease("no-such-lease")
            out["unknown_lease"] = "no error"
        except LeaseExpired:
            out["unknown_lease"] = "LeaseExpired"

        r = client.use(
            cfg["http_path"],
            "http_request",
            {"method": "POST", "url": cfg["url"], "headers": {"X-Test": "1"}, "body": "from-sdk"},
        )
        out["http_request"] = {"status": r["status"], "body": r["body"], "headers": r["headers"]}

        s = client.use(cfg["sign_path"], "sign", {"algorithm": "hmac-sha256", "data": "sign me"})
        out["signature"] = s["signature"]

        enc = client.use(cfg["crypt_path"], "encrypt", {"data": "round trip \u2713"})
        dec = client.use(cfg["crypt_path"], "decrypt", {"data": enc["ciphertext"]})
        out["decrypted"] = dec["plaintext"]

        try:
            client.use(cfg["denied_path"], "sign", {"data": "x"})
            out["denied"] = "no error"
        except AccessDenied as e:
            out["denied"] = type(e).__name__ + ":" + e.code

        try:
            client.retrieve(cfg["http_path"])
            out["retrieve_denied"] = "no error"
        except VaultError as e:
            out["retrieve_denied"] = type(e).__name__ + ":" + e.code

        client.close()
    except Exception as e:  # report, then fail
        out["error"] = repr(e)
        out["traceback"] = traceback.format_exc()
        print(json.dumps(out, sort_keys=True))
        return 1
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
