"""The embedded trace store: an OTLP/gRPC receiver and the part of Jaeger's
HTTP query API that tools use, for running without Docker or Jaeger."""
