"""Offline testing for frontier clients: a loopback server speaking each provider's wire format.

    from evsys_frontier.testing import FakeProviderServer

    with FakeProviderServer(latency_s=0.05) as srv:
        srv.fail(429, retry_after=0)           # the next request is rate-limited
        client = ClaudeInference(base_url=srv.url)
        ...
        assert srv.requests[-1].headers["authorization"].startswith("Bearer ")

Stdlib only: importing it pulls in no provider SDK.
"""

from __future__ import annotations

from evsys_frontier.testing._server import FakePrompt, FakeProviderServer, Fault, RecordedRequest, echo_responder

__all__ = ["FakePrompt", "FakeProviderServer", "Fault", "RecordedRequest", "echo_responder"]
