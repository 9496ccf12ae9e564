"""Local HTTP servers that speak the outside services' wire formats (REFERENCE.md).

Each runs on 127.0.0.1 in a thread, records what it was sent, and answers like
the real service, including its error formats; `script` queues one-off answers
(a 20429, a 500) ahead of the normal behaviour.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FakeService:
    def __init__(self):
        self.requests: list[dict] = []
        self.script: list[tuple[int, dict | str]] = []
        self._lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                request = {"method": self.command, "path": parts.path, "query": parse_qs(parts.query),
                           "form": parse_qs(body), "headers": dict(self.headers)}
                with service._lock:
                    service.requests.append(request)
                    scripted = service.script.pop(0) if service.script else None
                result = scripted if scripted else service.answer(request)
                status, payload = result[:2]
                extra = result[2] if len(result) > 2 else {}
                if isinstance(payload, bytes):
                    data, kind = payload, "application/octet-stream"
                else:
                    data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                    kind = "application/json"
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, request: dict) -> tuple[int, dict]:
        raise NotImplementedError

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def twilio_error(code: int, message: str, status: int) -> tuple[int, dict]:
    return status, {"code": code, "message": message,
                    "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


class FakeTwilio(FakeService):
    """POST /2010-04-01/Accounts/{AccountSid}/Messages.json with HTTP Basic auth.
    Twilio's magic test numbers fail as they do there: +15005550001 invalid (21211),
    +15005550004 opted out (21610), +15005550009 not SMS-capable (21614)."""

    MAGIC = {
        "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
        "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
        "+15005550009": (21614, "'To' number is not a valid mobile number"),
    }

    def __init__(self, account_sid="AC" + "1" * 32, auth_token="secret-token"):
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.sent: list[dict] = []

    def answer(self, request):
        expected_path = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        if request["method"] != "POST" or request["path"] != expected_path:
            return twilio_error(20404, "The requested resource was not found", 404)
        auth = request["headers"].get("Authorization", "")
        good = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if auth != good:
            return twilio_error(20003, "Authenticate", 401)
        form = {k: v[0] for k, v in request["form"].items()}
        if not form.get("To") or not form.get("Body") or not (form.get("From") or form.get("MessagingServiceSid")):
            return twilio_error(21604, "A 'To' phone number is required.", 400)
        if form["To"] in self.MAGIC:
            code, message = self.MAGIC[form["To"]]
            return twilio_error(code, message, 400)
        sid = f"SM{len(self.sent) + 1:032x}"
        self.sent.append({"sid": sid, **form})
        return 201, {"sid": sid, "status": "queued", "to": form["To"], "from": form.get("From"),
                     "body": form["Body"], "account_sid": self.account_sid, "error_code": None}


class FakeGeocoder(FakeService):
    """GET /?locate=H2X1Y4&json=1[&auth=TOKEN] -> {"latt", "longt"} as strings, or
    {"error": {"code", "description"}} (008: no result)."""

    KNOWN = {"H2X1Y4": ("45.514278", "-73.570102"), "H2J2X7": ("45.528800", "-73.583000"),
             "G1R4P5": ("46.810000", "-71.215000")}

    def answer(self, request):
        code = (request["query"].get("locate") or [""])[0].upper().replace(" ", "")
        if code in self.KNOWN:
            lat, lng = self.KNOWN[code]
            return 200, {"latt": lat, "longt": lng, "postal": code, "standard": {"city": "Montréal"}}
        return 200, {"error": {"code": "008", "description": "Your request did not produce any results."}}


class FakeVoipms(FakeService):
    """GET rest.php?api_username&api_password&method=... like VoIP.ms: status "success" or an
    error code; the message file as base64, sometimes an object and sometimes a one-item list."""

    def __init__(self, username="owner@example.com", password="api-secret"):
        super().__init__()
        self.username, self.password = username, password
        self.mailboxes: dict[str, list[dict]] = {}
        self.audio: dict[str, bytes] = {}  # message_num -> file
        self.deleted: list[str] = []
        self.list_style_file = False

    def answer(self, request):
        q = {k: v[0] for k, v in request["query"].items()}
        if q.get("api_username") != self.username or q.get("api_password") != self.password:
            return 200, {"status": "invalid_credentials"}
        method, mailbox = q.get("method"), q.get("mailbox", "")
        if method == "getVoicemailMessages":
            messages = self.mailboxes.get(mailbox, [])
            return 200, ({"status": "success", "messages": messages} if messages else {"status": "no_messages"})
        if method == "getVoicemailMessageFile":
            data = self.audio.get(q.get("message_num", ""))
            if data is None:
                return 200, {"status": "invalid_message"}
            message = {"data": base64.b64encode(data).decode()}
            return 200, {"status": "success", "message": [message] if self.list_style_file else message}
        if method == "delMessages":
            num = q.get("message_num", "")
            self.deleted.append(num)
            self.mailboxes[mailbox] = [m for m in self.mailboxes.get(mailbox, []) if m["message_num"] != num]
            return 200, {"status": "success"}
        return 200, {"status": "invalid_method"}
