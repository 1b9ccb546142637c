# syntax=docker/dockerfile:1
#
# dynserver: authoritative DNS for a dynamic zone, with built-in health checks.
#
#   docker build -t dynserver .
#   docker run -d --name dynserver \
#     -p 53:53/udp -p 53:53/tcp -p 8080:8080 \
#     --cap-drop ALL --security-opt no-new-privileges \
#     -v "$PWD/zones:/config:ro" -v dynserver-data:/data dynserver
#
# The config is mounted at /config (dynserver.toml plus the master files it names; paths in
# it are relative to it). Without a mount, the example config from zones/ is served. The
# listeners come from the command line below and override the config's [server] dns/http.
#
# State (the SQLite database: target states, events, history, zone serials) is written to
# the /data volume by the container user (uid 10001), via --database below, so the config
# mount can stay read-only.
#
# The process runs as an unprivileged user and still binds port 53: Docker (20.10+) sets
# net.ipv4.ip_unprivileged_port_start=0 inside a container's own network namespace. So it
# needs no capability at all (--cap-drop ALL above), and [server] user, which is for a
# process started as root, is not needed here (docs/security.md). Where
# that is not so (--network host, some Kubernetes or Podman set-ups), either add
# `--sysctl net.ipv4.ip_unprivileged_port_start=53`, or listen on a high port
# (`serve --config /config/dynserver.toml --dns 0.0.0.0:5353 --http 0.0.0.0:8080`) and map 53
# to it. The HEALTHCHECK asks the web listener on 127.0.0.1:8080; keep that port if you
# override the command.

ARG PYTHON_VERSION=3.11

# --- builder: the wheel, built from this source tree, plus wheels of its dependencies ------
# The full image, not -slim: it has the C compiler for the optional C hit loop of the UDP
# reader (installing gcc on -slim would need pinned apt versions); only wheels leave it.
FROM python:${PYTHON_VERSION} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
# Only what the wheel is built from (see .dockerignore): the package, the web/ folder that
# the wheel carries as dynserver/_web, and the project metadata.
COPY pyproject.toml README.md ./
COPY dynserver/ dynserver/
COPY web/ web/
# The C hit loop is compiled here as the Makefile compiles it (a copy built on the host is
# dropped first), and the wheel carries it (pyproject: artifacts).
RUN rm -f dynserver/server/_hitloop*.so \
    && if [ -f dynserver/server/_hitloop.c ]; then \
        gcc -O2 -fPIC -shared -Wall -Wextra -fno-strict-aliasing -pthread \
            -I"$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
            -o "dynserver/server/_hitloop$(python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')" \
            dynserver/server/_hitloop.c; \
    fi \
    && pip wheel --wheel-dir /wheels . \
    && python -c "import glob, os, zipfile; \
names = zipfile.ZipFile(glob.glob('/wheels/dynserver-*.whl')[0]).namelist(); \
assert 'dynserver/_web/templates/base.html' in names, 'web/ is missing from the wheel'; \
assert not os.path.exists('dynserver/server/_hitloop.c') \
    or any(n.startswith('dynserver/server/_hitloop.') and n.endswith('.so') for n in names), \
    'the C hit loop is missing from the wheel'"

# --- runtime: a slim Python with only the installed wheel --------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The wheels are mounted for this one step, not copied, so they do not stay in a layer;
# --no-index: everything comes from the builder, nothing from the network.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/dynserver-*.whl \
    && groupadd --system --gid 10001 dynserver \
    && useradd --system --uid 10001 --gid dynserver --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin dynserver \
    && install -d -o dynserver -g dynserver -m 0750 /data

# The example config and zone, as the default content of the config volume; owned by the
# user so that the example's database (next to its config) can be created there.
COPY --chown=10001:10001 zones/ /config/
VOLUME ["/config", "/data"]

USER 10001:10001
WORKDIR /config

# DNS over UDP and TCP, and the web UI / health endpoints.
EXPOSE 53/udp 53/tcp 8080/tcp

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["dynserver"]
CMD ["serve", "--config", "/config/dynserver.toml", "--dns", "0.0.0.0:53", "--http", "0.0.0.0:8080", \
     "--database", "/data/dynserver.db"]
