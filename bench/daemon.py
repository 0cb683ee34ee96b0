"""Shared by the API benchmarks: start `buildd serve` on a fresh data dir and serve a tiny
Procfile app's tarball from a loopback HTTP server."""
import http.server
import io
import os
import subprocess
import tarfile
import tempfile
import threading
import urllib.parse


def start_daemon(binary, *extra):
    """Returns (process, host:port, token)."""
    data = os.path.join(tempfile.mkdtemp(), "data")
    token = subprocess.check_output([binary, "tokens", "create", "--data-dir", data]).decode().strip()
    server = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data, *extra], stdout=subprocess.PIPE
    )
    host = urllib.parse.urlparse(server.stdout.readline().decode().split()[-1]).netloc
    return server, host, token


def serve_source():
    """Serves a small Procfile app as a .tgz; returns its URL."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in [("app/Procfile", b"web: bin/web\n"), ("app/bin/web", b"#!/bin/sh\necho hi\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(body))
    tarball = buf.getvalue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(tarball)))
            self.end_headers()
            self.wfile.write(tarball)

        def log_message(self, *args):
            pass

    src = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=src.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{src.server_address[1]}/app.tgz"


def headers(token):
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.heroku+json; version=3",
        "Content-Type": "application/json",
    }
