# postern, the TLS-terminating IMAP/POP3 proxy, as a container image.
#
#   make docker                          # podman or docker, whichever works here
#   docker build -t postern .            # the same by hand
#   docker run -d --name postern -p 993:993 -p 995:995 -p 4190:4190 \
#       -v /srv/postern/etc:/etc/postern:ro -v postern-state:/var/lib/postern \
#       --stop-timeout 15 postern
#
# Two stages on debian:bookworm-slim: "build" has the compiler and the -dev
# packages; the runtime stage has only the shared libraries `ldd postern`
# names (worked out in the build stage, so a new library needs no edit
# here), the binary, an entry point that explains a missing config, and the
# example config.  README.md "Running in Docker" documents the choices.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
# What `make` needs for the daemon (tests/deps.sh lists the test tools too).
# libhiredis-dev, libmicrohttpd-dev, libsystemd-dev, libcurl4-openssl-dev and
# libjansson-dev are for the Redis store, the metrics HTTP server, sd_notify
# and the HTTP user lookup; the runtime stage takes only what the binary
# really links.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends build-essential pkg-config \
        libssl-dev libev-dev libconfig-dev liblmdb-dev libhiredis-dev libmicrohttpd-dev \
        libsystemd-dev libcurl4-openssl-dev libjansson-dev; \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY lib lib
COPY policy policy
COPY proxy proxy
# POSTERN_VERSION is the -V output; the binary is stripped (the image is
# for running, not debugging).  runtime-packages: the Debian package of
# each library ldd finds; dpkg knows a file by the path its package ships
# (/lib or /usr/lib on a merged-/usr system), so both spellings are tried.
ARG VERSION=0.1.0
RUN set -eux; \
    make -j"$(nproc)" postern OPT="-O2" CFLAGS="-DPOSTERN_VERSION='\"${VERSION}\"'"; \
    mkdir /out; install -s -m 0755 postern /out/postern; \
    for lib in $(ldd /out/postern | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'); do \
        real=$(readlink -f "$lib"); \
        for p in "$lib" "$real" "/usr${real#/usr}" "${real#/usr}"; do \
            dpkg-query -S "$p" 2>/dev/null && break; \
        done; \
    done | cut -d: -f1 | sort -u >/out/runtime-packages; \
    cat /out/runtime-packages; \
    test -s /out/runtime-packages

FROM ${BASE}
COPY --from=build /out/postern /usr/local/bin/postern
COPY --from=build /out/runtime-packages /tmp/runtime-packages

# The user: uid and gid 10993, fixed so that files on volumes keep their
# owner across image versions (chown -R 10993:10993 a host directory to give
# it to postern).  cap_net_bind_service on the binary lets that user bind
# 993/995/143/110; setcap comes from libcap2-bin, removed again in this same
# layer.  /run/postern holds the admin socket (not world-writable, as
# postern requires); /var/lib/postern the LMDB state (0700).
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends $(cat /tmp/runtime-packages) libcap2-bin; \
    groupadd --system --gid 10993 postern; \
    useradd --system --uid 10993 --gid postern --no-create-home \
        --home-dir /var/lib/postern --shell /usr/sbin/nologin postern; \
    install -d -o postern -g postern -m 0700 /var/lib/postern; \
    install -d -o postern -g postern -m 0750 /run/postern; \
    install -d -m 0755 /etc/postern; \
    setcap cap_net_bind_service=+ep /usr/local/bin/postern; \
    getcap /usr/local/bin/postern | grep -q cap_net_bind_service; \
    apt-get purge -y --auto-remove libcap2-bin; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/*.log \
        /tmp/runtime-packages; \
    /usr/local/bin/postern -V
# After the RUN above, so that editing them rebuilds nothing else.
COPY etc/docker/entrypoint.sh /usr/local/bin/postern-entrypoint
COPY etc/docker/postern.conf /usr/share/postern/postern.conf

USER postern:postern
WORKDIR /var/lib/postern
VOLUME ["/etc/postern", "/var/lib/postern"]
EXPOSE 993/tcp 995/tcp 143/tcp 110/tcp 4190/tcp
# SIGTERM drains (listeners close, each session is ended at a quiet moment)
# within timeouts.drain: 7s in etc/docker/postern.conf, under Docker's
# default stop timeout of 10s; run with --stop-timeout 15 (compose:
# stop_grace_period: 15s) for headroom.  Kubernetes' default grace period
# (30s) covers it as is.
STOPSIGNAL SIGTERM
# `postern health` asks the daemon on its admin socket (admin.socket in the
# config): exit 0 when it accepts and has a backend up, else 1.  No curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/postern", "-c", "/etc/postern/postern.conf", "health"]
ENTRYPOINT ["/usr/local/bin/postern-entrypoint"]
CMD ["-c", "/etc/postern/postern.conf"]

# Last, so that a new revision or date reuses every layer above.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="postern" \
      org.opencontainers.image.description="TLS-terminating IMAP/POP3 proxy: routes each user to the backend holding the mailbox, then relays bytes untouched" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.documentation="README.md, section Running in Docker" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
