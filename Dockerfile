# syntax=docker/dockerfile:1.7
# tailfix: a multi-stage build. Dependencies and build outputs are cached between builds with
# BuildKit cache mounts; the runtime image holds the binary and CA certificates only.

FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY plugins ./plugins
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tailfix \
 && cp target/release/tailfix /usr/local/bin/tailfix

FROM debian:12.12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/tailfix tailfix \
 && mkdir -p /etc/tailfix /var/lib/tailfix \
 && chown tailfix /var/lib/tailfix
COPY --from=build /usr/local/bin/tailfix /usr/local/bin/tailfix
COPY conf/tailfix.toml /etc/tailfix/tailfix.toml
ENV TAILFIX_DATA_DIR=/var/lib/tailfix
USER 10001
EXPOSE 9598 5170 5514/udp
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
  CMD ["/usr/local/bin/tailfix", "health", "--address", "127.0.0.1:9598"]
ENTRYPOINT ["/usr/local/bin/tailfix"]
CMD ["run", "-c", "/etc/tailfix/tailfix.toml"]
