"""``python -m evsys_frontier.testing [--port N] [--latency S] [--api-key K]``: serve the fake provider
API until interrupted, e.g. to try a config offline (point base_url at the printed URL) or to keep
the server out of the client's process in a throughput benchmark. Prints the URL on its first line."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from evsys_frontier.testing._server import FakeProviderServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evsys_frontier.testing", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--api-key", default=None, help="answer 401 unless the request carries this key")
    args = parser.parse_args(argv)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with FakeProviderServer(latency_s=args.latency, api_key=args.api_key, port=args.port) as srv:
        sys.stdout.write(f"{srv.url}\n")
        sys.stdout.flush()
        try:
            done.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
