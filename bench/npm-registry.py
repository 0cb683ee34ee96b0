#!/usr/bin/env python3
"""Serves a directory made by bench/npm-mirror.py as an npm registry on loopback.

    bench/npm-registry.py MIRROR [PORT]    # prints http://127.0.0.1:PORT/ when ready

/NAME (and /@scope%2fname) answers NAME/index.json with registry.npmjs.org URLs rewritten to this
server; anything else is a file. ETag and Last-Modified are sent and honoured (304), as a real
registry does, so clients can revalidate instead of downloading.
"""
import hashlib, http.server, os, sys, urllib.parse

MIRROR = os.path.abspath(sys.argv[1])
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = urllib.parse.unquote(self.path.split("?")[0]).lstrip("/")
        full = os.path.normpath(os.path.join(MIRROR, path))
        if not full.startswith(MIRROR):
            return self.answer(404, b"not found")
        if os.path.isdir(full):
            full = os.path.join(full, "index.json")
        if not os.path.isfile(full):
            return self.answer(404, b"not found")
        body = open(full, "rb").read()
        if full.endswith("index.json"):
            base = f"http://127.0.0.1:{self.server.server_port}/"
            body = body.replace(b"https://registry.npmjs.org/", base.encode())
        etag = '"%s"' % hashlib.sha256(body).hexdigest()[:16]
        if self.headers.get("If-None-Match") == etag:
            return self.answer(304, b"", etag)
        self.answer(200, body, etag)

    def answer(self, status, body, etag=None):
        self.send_response(status)
        if etag:
            self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print(f"http://127.0.0.1:{server.server_port}/", flush=True)
server.serve_forever()
