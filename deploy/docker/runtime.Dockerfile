# pier-runtime: the node agent, run privileged with the host paths in
# deploy/kubernetes/runtime.yaml.
# Built from a context that deploy/docker/prepare-context.sh runtime DIR
# prepares (the binaries and the shared libraries they load); BASE is any
# image with a shell, e.g. Debian's busybox-static imported into a registry.
ARG BASE=localhost/busybox:latest
FROM ${BASE}
LABEL org.opencontainers.image.title="pier-runtime"
COPY rootfs/ /
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/pier-runtime"]
CMD ["--listen=unix:///run/pier/runtime.sock", "--root=/var/lib/pier/runtime"]
