#!/bin/bash
# Runs Debian's Chromium headless with DevTools on 127.0.0.1:9223, and socat exposing it on
# 0.0.0.0:9222 (Chromium ignores --remote-debugging-address). When either ends, the other is
# stopped and the container exits, so `restart:` brings back a clean browser.
#
# The flags are the ones session-warmer passes when it launches Chromium itself
# (src/browser/launch.rs), plus the DevTools port and a profile dir of its own (Chrome 136+
# refuses remote debugging with the default profile). The profile lives in /tmp: a warm
# session's state is the warmer's (in its store), not the browser's.
set -euo pipefail

profile="$(mktemp -d /tmp/chromium-profile.XXXXXX)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$profile"' EXIT

/usr/bin/chromium \
  --headless \
  --no-sandbox \
  --disable-setuid-sandbox \
  --disable-gpu \
  --disable-quic \
  --disable-dev-shm-usage \
  --disable-extensions \
  --no-first-run \
  --no-default-browser-check \
  --disable-background-networking \
  --disable-component-update \
  --disable-sync \
  --disable-breakpad \
  --disable-crash-reporter \
  --password-store=basic \
  --use-mock-keychain \
  --mute-audio \
  --hide-scrollbars \
  --no-startup-window \
  --disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup,SpareRendererForSitePerProcess \
  --remote-debugging-address=127.0.0.1 \
  --remote-debugging-port=9223 \
  --user-data-dir="$profile" &

socat TCP-LISTEN:9222,fork,reuseaddr,bind=0.0.0.0 TCP:127.0.0.1:9223 &

# Whichever ends first ends the container.
wait -n
