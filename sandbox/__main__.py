"""Run the Workspace sandbox: ``python -m sandbox --host 127.0.0.1 --port P --project ID``."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from sandbox.server import make_server


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve until SIGINT/SIGTERM, print one readiness line."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--project", default="demo-leadrun", help="Firebase/GCP project id")
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port, args.project)

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    print(f"workspace sandbox ready url={server.url} project={args.project}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close_connections()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
