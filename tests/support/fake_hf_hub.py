"""A local Hugging Face Hub that speaks what huggingface_hub calls for a download:
`GET /api/models/{repo}/revision/{rev}?blobs=true` (the commit and each file's size,
git blob id and LFS SHA-256), then `HEAD` and `GET /{repo}/resolve/{rev}/{file}` with
`X-Repo-Commit`, `ETag`, and for large (LFS) files `X-Linked-Etag` / `X-Linked-Size`;
`Range` requests answer 206. Misbehaviours, by file name: `corrupt` (same size, one byte
changed), `short` (always fewer bytes than announced), `cut` (the first GET stops half-way
and drops the connection; later ones are whole)."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_ABOVE = 1000  # bytes: larger files are "LFS" (SHA-256 etag), smaller ones git blobs (sha1 etag)


def git_oid(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


class FakeHfHub:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.corrupt: set[str] = set()
        self.short: set[str] = set()
        self.cut: set[str] = set()
        self.ranges: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self._cut_done: set[str] = set()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str], send_body: bool = True,
                      length: int | None = None) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def _error(self, status: int, code: str, head: bool) -> None:
                body = json.dumps({"error": code}).encode()
                self._send(status, body, {"Content-Type": "application/json", "X-Error-Code": code}, not head)

            def _handle(self, head: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                hub.requests.append((self.command, path))
                if path.startswith("/api/models/") and "/revision/" in path:
                    repo = path[len("/api/models/"):].rsplit("/revision/", 1)[0]
                    files = hub.repos.get(repo)
                    if files is None:
                        return self._error(404, "RepoNotFound", head)
                    siblings = []
                    for name, data in files.items():
                        item: dict = {"rfilename": name, "size": len(data), "blobId": git_oid(data)}
                        if len(data) > LFS_ABOVE:
                            item["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                           "pointerSize": 134}
                        siblings.append(item)
                    body = json.dumps({"id": repo, "modelId": repo, "sha": COMMIT, "siblings": siblings}).encode()
                    return self._send(200, body, {"Content-Type": "application/json"}, not head)
                if "/resolve/" in path:
                    repo, _, rest = path.lstrip("/").partition("/resolve/")
                    name = rest.split("/", 1)[1]
                    data = hub.repos.get(repo, {}).get(name)
                    if data is None:
                        return self._error(404, "EntryNotFound", head)
                    headers = {"Content-Type": "application/octet-stream", "X-Repo-Commit": COMMIT,
                               "Accept-Ranges": "bytes"}
                    if len(data) > LFS_ABOVE:
                        headers |= {"ETag": f'"{git_oid(data)}"',
                                    "X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"',
                                    "X-Linked-Size": str(len(data))}
                    else:
                        headers["ETag"] = f'"{git_oid(data)}"'
                    if head:
                        return self._send(200, b"", headers, False, len(data))
                    served = data
                    if name in hub.corrupt:
                        served = data[:-1] + bytes([data[-1] ^ 1])
                    if name in hub.short:
                        served = data[: len(data) // 2]
                    start = 0
                    if wanted := self.headers.get("Range"):
                        hub.ranges.append(wanted)
                        start = int(wanted.split("=")[1].split("-")[0])
                        headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                    body = served[start:]
                    if name in hub.cut and name not in hub._cut_done:
                        hub._cut_done.add(name)
                        self._send(206 if start else 200, body[: len(body) // 2], headers, length=len(body))
                        self.close_connection = True
                        return None
                    return self._send(206 if start else 200, body, headers)
                return self._error(404, "NotFound", head)

            def do_GET(self) -> None:  # noqa: N802
                self._handle(False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._handle(True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def downloads(self, name: str) -> int:
        """How many GETs of the file `name`."""
        return sum(1 for method, path in self.requests if method == "GET" and path.endswith(f"/{name}"))

    def __enter__(self) -> FakeHfHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
