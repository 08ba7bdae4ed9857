# pier-registry: the OCI Distribution HTTP API on 5000 and gRPC on 5050.
# Built from a context that deploy/docker/prepare-context.sh registry DIR
# prepares (the binaries and the shared libraries they load); BASE is any
# image with a shell, e.g. Debian's busybox-static imported into a registry.
ARG BASE=localhost/busybox:latest
FROM ${BASE}
LABEL org.opencontainers.image.title="pier-registry"
COPY rootfs/ /
EXPOSE 5000 5050
VOLUME /var/lib/pier/registry
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/pier-registry"]
CMD ["--listen=0.0.0.0:5050", "--http-listen=0.0.0.0:5000", "--root=/var/lib/pier/registry"]
