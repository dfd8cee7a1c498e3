# sessiond's image holds the statically linked binary and nothing else: no
# base image, so no registry is needed. Build the binary first (the README's
# "A cluster" section, or `make image`):
#   CGO_ENABLED=0 go build -o build/sessiond ./cmd/sessiond
FROM scratch
COPY build/sessiond /sessiond
# An empty data directory owned by the unprivileged user, so that a named
# volume mounted at /data starts out writable by it.
COPY --chown=65532:65532 build/data /data
USER 65532:65532
ENV SESSIOND_DATA_DIR=/data
EXPOSE 8080 7000 7946 7946/udp
ENTRYPOINT ["/sessiond"]
