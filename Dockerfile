# Builds the auditwatch binary and ships it on a slim base.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY schemas ./schemas
RUN cargo build --release --locked --bin auditwatch

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/auditwatch /usr/local/bin/auditwatch
ENV AUDITWATCH_DATA_DIR=/data
VOLUME ["/data"]
ENTRYPOINT ["auditwatch"]
