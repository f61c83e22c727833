"""download_url against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tools import ArtifactStore, Modality, Registry, ToolContext, ToolError, ToolSettings


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from PIL import Image

    png = tmp_path_factory.mktemp("srv") / "cat.png"
    Image.new("RGB", (12, 8), "orange").save(png)
    body = png.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, code, data=b"", headers=()):
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            routes = {
                "/cat.png": lambda: self.send(200, body, [("Content-Type", "image/png")]),
                "/hop": lambda: self.send(302, headers=[("Location", "/cat.png")]),
                "/loop": lambda: self.send(302, headers=[("Location", "/loop")]),
                "/story": lambda: self.send(
                    200,
                    b"Once upon a time.",
                    [("Content-Disposition", 'attachment; filename="story.txt"')],
                ),
                "/big": lambda: self.send(200, b"x" * 5000),
                "/missing": lambda: self.send(404),
            }
            if self.path == "/slow":
                time.sleep(2)
                return self.send(200, b"late")
            routes.get(self.path, lambda: self.send(404))()

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture
def fetch(tmp_path):
    tool = Registry.discover().get("download_url")

    def call(url, **settings):
        settings.setdefault("allow_local_network", True)
        ctx = ToolContext(
            store=ArtifactStore(tmp_path / "s"),
            workspace=tmp_path / "w",
            settings=ToolSettings(**settings),
        )
        return tool(ctx, url=url)

    return call


def test_downloads_an_image_and_sniffs_its_modality(fetch, server):
    result = fetch(server + "/hop")  # one redirect, then the PNG
    art = result.artifacts[0]
    assert (art.modality, art.mime, art.name) == (Modality.IMAGE, "image/png", "cat.png")
    assert art.metadata["url"].endswith("/cat.png")
    from PIL import Image

    assert Image.open(art.path).size == (12, 8)


def test_content_disposition_names_text(fetch, server):
    art = fetch(server + "/story").artifacts[0]
    assert art.modality is Modality.TEXT and art.name == "story.txt"
    assert art.read_text() == "Once upon a time."


def test_local_network_is_refused_by_default(fetch, server):
    with pytest.raises(ToolError, match="local-network address .127.0.0.1."):
        fetch(server + "/cat.png", allow_local_network=False)


@pytest.mark.parametrize(
    ("path", "settings", "message"),
    [
        ("/loop", {"download_max_redirects": 3}, "redirected more than 3 times"),
        ("/big", {"download_max_bytes": 1000}, "the file is 5000 bytes; the limit is 1000"),
        ("/slow", {"download_timeout": 0.3}, "did not answer within 0.3s"),
        ("/missing", {}, "answered HTTP 404"),
    ],
)
def test_limits_and_errors(fetch, server, path, settings, message):
    with pytest.raises(ToolError, match=message):
        fetch(server + path, **settings)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/hostname", "file:// URLs are not allowed"),
        ("ftp://example.com/x", "only http:// and https://"),
        ("http://169.254.169.254/latest", "local-network address"),
    ],
)
def test_schemes_and_metadata_addresses_refused(fetch, url, message):
    with pytest.raises(ToolError, match=message):
        fetch(url, allow_local_network=False)
