# syntax=docker/dockerfile:1
#
# session-warmer: `warmer serve` with Debian's own Chromium (never a downloaded browser build).
#
#   openssl rand -hex 32 > deploy/warmer_token.txt   # the API token (a compose secret)
#   docker compose up --build
#
# Chromium runs with --no-sandbox and --disable-dev-shm-usage (the daemon passes both), so the
# container needs neither SYS_ADMIN nor a seccomp override nor a large /dev/shm.

############################ builder ############################
FROM rust:1.95-bookworm AS builder
WORKDIR /build

# Everything the release build reads: the manifest, the code, and the fingerprint data that
# src/fingerprint embeds with include_str!. (tests/, examples/ and bench/ are not needed.)
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY fingerprints ./fingerprints

# Registry and target dir are BuildKit cache mounts: rebuilds only recompile what changed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin warmer \
 && install -Dm0755 target/release/warmer /out/warmer

############################ runtime ############################
FROM debian:bookworm-slim AS runtime

# chromium: Debian's browser (bookworm-security tracks stable Chrome).
# chromium-headless-shell: the cheaper flavour (`[browser] flavor = "headless-shell"`).
# tini: PID 1 that forwards SIGTERM to warmer and reaps Chromium's children.
# curl: the healthcheck. fonts-liberation: metric-compatible fonts so pages lay out sanely.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates \
      chromium \
      chromium-headless-shell \
      curl \
      fonts-liberation \
      tini \
 && rm -rf /var/lib/apt/lists/*

# Non-root user owning the store volume. Home dir exists: Chromium writes under $HOME.
RUN groupadd --system --gid 10001 warmer \
 && useradd --system --uid 10001 --gid warmer --home-dir /home/warmer --create-home \
      --shell /usr/sbin/nologin warmer \
 && install -d -o warmer -g warmer -m 0700 /data \
 && install -d -o root -g root -m 0755 /etc/warmer

COPY --from=builder /out/warmer /usr/local/bin/warmer
COPY deploy/warmer.toml /etc/warmer/warmer.toml
COPY deploy/events.txt /etc/warmer/events.txt

ENV WARMER_CONFIG=/etc/warmer/warmer.toml \
    RUST_LOG=info \
    HOME=/home/warmer

USER warmer:warmer
WORKDIR /data
VOLUME ["/data"]
EXPOSE 3000

# /healthz is cheap and never launches a browser.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:3000/healthz || exit 1

ENTRYPOINT ["/usr/bin/tini", "--", "warmer"]
CMD ["serve", "--config", "/etc/warmer/warmer.toml"]
