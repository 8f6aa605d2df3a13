# raygate: one static binary (webhook, controller, CLI) on a distroless, non-root base.
#   docker build -t raygate:dev .
FROM rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl \
    && apt-get update && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The CRD fixtures the tests read live beside the repository, not in it; the build needs none.
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin raygate \
    && cp target/x86_64-unknown-linux-musl/release/raygate /raygate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /raygate /usr/local/bin/raygate
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/raygate"]
CMD ["--help"]
