"""``python -m tandem.gateway [--host H] [--port P]``: run the gateway with uvicorn (one process)."""

from __future__ import annotations

import argparse

import uvicorn

from tandem.gateway.app import create_app
from tandem.gateway.logs import configure_logging
from tandem.settings import load_gateway_settings
from tandem.tracing import GATEWAY_SERVICE, configure_tracing


def main(argv: list[str] | None = None) -> None:
    settings = load_gateway_settings()
    parser = argparse.ArgumentParser(prog="python -m tandem.gateway", description=__doc__)
    parser.add_argument("--host", default=settings.gateway.gateway_host)
    parser.add_argument("--port", type=int, default=settings.gateway.gateway_port)
    args = parser.parse_args(argv)
    configure_logging(settings.log.log_level)
    # Spans by OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set; else nothing is installed (no-ops).
    tracer_provider = configure_tracing(GATEWAY_SERVICE, settings.tracing)
    app = create_app(settings)
    # log_config=None keeps our JSON logging; proxy headers are handled by the app (GATEWAY_TRUSTED_PROXIES).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    if tracer_provider is not None:
        tracer_provider.shutdown()  # the last spans, bounded by the export timeout


if __name__ == "__main__":
    main()
