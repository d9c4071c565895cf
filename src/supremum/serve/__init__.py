"""`supremum serve`: an HTTP inference server for any artifact (FastAPI + uvicorn), with
micro-batching, request limits, optional bearer-token auth and Prometheus metrics."""

from __future__ import annotations

from supremum.serve.config import LOOPBACK, ServeConfig, check_binding

__all__ = ["LOOPBACK", "ServeConfig", "check_binding", "serve"]


def serve(art, cfg: ServeConfig, on_ready=None) -> None:
    """Run until SIGINT/SIGTERM; in-flight requests get `graceful_s` to finish."""
    import uvicorn

    from supremum.serve.app import create_app

    check_binding(cfg)
    app = create_app(art, cfg)
    if on_ready:
        on_ready()
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning",
                timeout_graceful_shutdown=cfg.graceful_s)
