"""List OpenAI models through airlock. No API key here: airlock injects it.

Run: airlock run --agent research-bot -- python3 agent.py
"""
import requests

resp = requests.get("https://api.openai.com/v1/models", timeout=30)
if resp.status_code != 200:
    # airlock's own refusals carry X-Airlock-Error and a JSON hint.
    print(resp.status_code, resp.headers.get("X-Airlock-Error", ""), resp.text)
    raise SystemExit(1)
for model in resp.json()["data"][:5]:
    print(model["id"])
