"""Panther lab web server: answers every GET on 127.0.0.1 with a fixed status.

Tells systemd it is ready (Type=notify) once it listens, so `systemctl start`
returns only when the port answers.
"""
import argparse
import http.server
import os
import socket


def notify(state):
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.sendall(state.encode())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--status", type=int, default=200)
    args = p.parse_args()
    body = ("panther lab web: status %d\n" % args.status).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(args.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()

        def do_GET(self):
            self.do_HEAD()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    notify("READY=1\nSTATUS=listening on 127.0.0.1:%d" % args.port)
    srv.serve_forever()


if __name__ == "__main__":
    main()
