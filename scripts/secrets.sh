#!/usr/bin/env bash
# Gives the API its secrets on first run: for each of HEIMDEX_JWT_SECRET (signs tokens) and
# HEIMDEX_URL_SIGNING_KEY (signs the upload and download URLs the API serves), unless it is set
# in the environment or the dotenv file (default .env), appends a random one (64 random bytes,
# as base64url, long enough for HS512) to that file, which is kept at mode 0600. The API and
# `python -m heimdex_api.core.security` read them there. Running it again changes nothing.
set -euo pipefail
file="${1:-.env}"
for name in HEIMDEX_JWT_SECRET HEIMDEX_URL_SIGNING_KEY; do
  if [ -n "${!name:-}" ] || grep -qs "^$name=." "$file"; then
    continue
  fi
  (umask 077 && touch "$file")
  chmod 600 "$file"
  # A file whose last line lacks its newline would swallow ours.
  if [ -s "$file" ] && [ -n "$(tail -c 1 "$file")" ]; then echo >>"$file"; fi
  echo "$name=$(head -c 64 /dev/urandom | base64 -w 0 | tr '+/' '-_' | tr -d '=')" >>"$file"
  echo "heimdex: wrote a random $name to $file (mode 0600)" >&2
done
