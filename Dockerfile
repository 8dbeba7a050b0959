# Build stage: a release binary of tailfix.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY plugins ./plugins
COPY benches ./benches
RUN cargo build --release --locked --bin tailfix

# Runtime stage: the binary and CA certificates, as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/tailfix tailfix \
 && mkdir -p /etc/tailfix /var/lib/tailfix \
 && chown tailfix /var/lib/tailfix
COPY --from=build /src/target/release/tailfix /usr/local/bin/tailfix
COPY conf/tailfix.toml /etc/tailfix/tailfix.toml
ENV TAILFIX_DATA_DIR=/var/lib/tailfix
USER 10001
EXPOSE 9598 5170 5514/udp
ENTRYPOINT ["/usr/local/bin/tailfix"]
CMD ["run", "-c", "/etc/tailfix/tailfix.toml"]
