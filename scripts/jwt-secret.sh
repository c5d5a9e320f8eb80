#!/usr/bin/env bash
# Gives the API a token-signing secret on first run: unless HEIMDEX_JWT_SECRET is set in the
# environment or the dotenv file (default .env), appends a random one (64 random bytes, as
# base64url, long enough for HS512) to that file, which is kept at mode 0600. The API and
# `python -m heimdex_api.core.security` read it there.
set -euo pipefail
file="${1:-.env}"
if [ -n "${HEIMDEX_JWT_SECRET:-}" ] || grep -qs '^HEIMDEX_JWT_SECRET=.' "$file"; then
  exit 0
fi
(umask 077 && touch "$file")
chmod 600 "$file"
# A file whose last line lacks its newline would swallow ours.
if [ -s "$file" ] && [ -n "$(tail -c 1 "$file")" ]; then echo >>"$file"; fi
echo "HEIMDEX_JWT_SECRET=$(head -c 64 /dev/urandom | base64 -w 0 | tr '+/' '-_' | tr -d '=')" >>"$file"
echo "heimdex: wrote a random HEIMDEX_JWT_SECRET to $file (mode 0600)" >&2
