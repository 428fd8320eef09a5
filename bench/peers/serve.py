"""One peer server process: uvicorn serving `<module>:app` on a port that N such processes share
with SO_REUSEPORT, the way the gateway runs several processes (gateway/main.py).

    python -m bench.peers.serve <module> <port>

The same mechanism on both sides keeps the comparison fair: `uvicorn --workers` hands its
workers a listener created without IPPROTO_TCP, so asyncio leaves Nagle's algorithm on for their
connections, and a response written in two parts waits for the client's delayed ACK (~40 ms).
"""

from __future__ import annotations

import asyncio
import importlib
import socket
import sys

import uvicorn


def listener(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def main() -> None:
    module, port = sys.argv[1], int(sys.argv[2])
    app = importlib.import_module(module).app
    config = uvicorn.Config(app, loop="asyncio", http="httptools", access_log=False, log_level="info")
    asyncio.run(uvicorn.Server(config).serve(sockets=[listener(port)]))


if __name__ == "__main__":
    main()
