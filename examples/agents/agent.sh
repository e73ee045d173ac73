#!/bin/sh
# List OpenAI models through airlock. No API key here: airlock injects it.
# Run: airlock run --agent research-bot -- ./agent.sh
set -eu
curl -sS --fail-with-body --cacert "$SSL_CERT_FILE" https://api.openai.com/v1/models
