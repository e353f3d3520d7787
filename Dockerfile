# Builds the auditwatch binary and ships it on a slim base. The build context is the
# repository (see .dockerignore): build.rs embeds rules/, the crate embeds schemas/,
# rules/fields.yml and detectors/, and Cargo.toml names the benches.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin auditwatch

FROM debian:bookworm-slim
# librdkafka links OpenSSL 3 and zlib dynamically
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/auditwatch /usr/local/bin/auditwatch
# the rule pack, for [detect] rules = ["/usr/share/auditwatch/rules"]
COPY --from=build /src/rules /usr/share/auditwatch/rules
ENV AUDITWATCH_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["auditwatch"]
