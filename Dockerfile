# perf-exporter in a container. Build: docker build -t perf-exporter .
# Run: mount the config at /etc/perf-exporter/perf-exporter.yml and the passwords under
# /run/secrets/perf-exporter/ (docs/deploy.md); nothing secret is baked into the image.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- build: a venv with perf-exporter and its dependencies, no compilers needed (all wheels) ---
FROM ${PYTHON_IMAGE} AS build
ARG PREFIX=/opt/perf-exporter
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY exporter/ exporter/
COPY alerts/ alerts/
COPY dashboards/ dashboards/
COPY docs/runbooks.md docs/
COPY examples/ examples/
RUN python -m venv "$PREFIX" \
 && "$PREFIX/bin/pip" install --no-cache-dir . \
 && "$PREFIX/bin/perf-exporter" --version

# --- run: the venv on the same base, as an unprivileged user ---
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 perf-exporter \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin perf-exporter
COPY --from=build /opt/perf-exporter /opt/perf-exporter
USER 10001:10001
EXPOSE 9839
# no curl in the image: the venv's own Python asks /healthz (non-2xx or no answer: exit 1)
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/opt/perf-exporter/bin/python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:9839/healthz', timeout=4)"]
ENTRYPOINT ["/opt/perf-exporter/bin/perf-exporter"]
CMD ["--config.file=/etc/perf-exporter/perf-exporter.yml"]
