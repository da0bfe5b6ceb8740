# One image for every pktflow service; the command picks the layer:
#   python -m pktflow.services.<socket|transport|ip|link|nic|tracestore>, pktflow traffic, pktflow ...
# Dependencies are installed before the source is copied, so editing the code
# rebuilds only the last layers.
ARG PYTHON_IMAGE=python:3.12-slim
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# Build stage: generates the protobuf modules (grpcio-tools) and builds the wheel.
FROM base AS build
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -m venv /opt/build \
 && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires']))" \
      > /tmp/build-requires.txt \
 && /opt/build/bin/pip install -q -r /tmp/build-requires.txt
COPY setup.py README.md ./
COPY protos ./protos
COPY services ./services
RUN /opt/build/bin/pip wheel -q --no-deps --no-build-isolation -w /wheels .

# Runtime: the dependencies (cached while pyproject.toml does not change), then the wheel.
FROM base
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin pktflow
COPY pyproject.toml /tmp/pyproject.toml
RUN python3 -m venv /opt/venv \
 && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -q -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt /tmp/pyproject.toml
COPY --from=build /wheels /tmp/wheels
RUN /opt/venv/bin/pip install -q --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels
ENV PATH=/opt/venv/bin:$PATH
USER 10001:10001
# socket, transport, ip, link, nic; the trace store's OTLP and query ports; the layers' /metrics (9464-9468)
EXPOSE 50051 50052 50053 50054 50055 4317 16686 9464 9465 9466 9467 9468
CMD ["pktflow", "--help"]
