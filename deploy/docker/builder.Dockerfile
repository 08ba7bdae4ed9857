# pier-builder: gRPC on 5051. Runs privileged (each RUN step is a container).
# Built from a context that deploy/docker/prepare-context.sh builder DIR
# prepares (the binaries and the shared libraries they load); BASE is any
# image with a shell, e.g. Debian's busybox-static imported into a registry.
ARG BASE=localhost/busybox:latest
FROM ${BASE}
LABEL org.opencontainers.image.title="pier-builder"
COPY rootfs/ /
EXPOSE 5051
VOLUME /var/lib/pier/builder
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/pier-builder"]
CMD ["--listen=0.0.0.0:5051", "--root=/var/lib/pier/builder"]
