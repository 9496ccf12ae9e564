import re

import pytest
from litestar import get

from tests.support.app import csrf_token


@pytest.mark.parametrize("lang, title, switch", [
    ("fr", "Chaque demande de vos clients, captée. Aucune oubliée.", ('/en/', "English")),
    ("en", "Every client request, captured. None forgotten.", ('/fr/', "Français")),
])
def test_home_page_in_both_languages(client, lang, title, switch):
    r = client.get(f"/{lang}/")
    assert r.status_code == 200
    assert f'<html lang="{lang}">' in r.text
    assert title in r.text
    href, label = switch
    assert re.search(rf'<a class="lang-switch" href="{href}"[^>]*data-remember-lang="{href.strip("/")}"', r.text)
    assert f">{label}</a>" in r.text


def test_language_switch_keeps_the_page_and_query(client):
    r = client.get("/fr/login?next=/fr/app/leads")
    assert 'href="/en/login?next=/fr/app/leads"' in r.text


def test_unknown_language_is_404(client):
    assert client.get("/de/").status_code == 404
    assert client.get("/de/login").status_code == 404


def test_bare_single_segment_goes_to_the_chooser(client):
    r = client.get("/login")
    assert r.status_code == 200 and 'data-target="/login"' in r.text


def test_security_headers_on_pages_errors_and_static(client):
    for path in ("/fr/", "/en/does-not-exist", "/static/css/capteo.css", "/healthz"):
        r = client.get(path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
        assert r.headers["x-frame-options"] == "DENY"


def test_no_inline_script_and_no_third_party_request(client):
    html = client.get("/fr/").text
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith(("/", "#")), f"external URL on a public page: {url}"


def test_htmx_is_vendored(client):
    r = client.get("/static/vendor/htmx-2.0.11.min.js")
    assert r.status_code == 200 and "htmx" in r.text[:2000]


@pytest.mark.parametrize("lang, text", [("fr", "Page introuvable"), ("en", "Page not found")])
def test_translated_404(client, lang, text):
    r = client.get(f"/{lang}/nowhere")
    assert r.status_code == 404 and text in r.text and f'lang="{lang}"' in r.text


def test_translated_500_logs_and_hides_details(client, caplog):
    @get("/{lang:str}/explode", sync_to_thread=False)
    def explode() -> str:
        raise RuntimeError("secret internal detail")

    client.app.register(explode)
    for lang, text in (("fr", "Un problème est survenu de notre côté"), ("en", "Something went wrong on our side")):
        r = client.get(f"/{lang}/explode")
        assert r.status_code == 500
        assert text in r.text
        assert "secret internal detail" not in r.text
    assert "secret internal detail" in caplog.text


def test_post_without_csrf_token_is_refused(client):
    r = client.post("/fr/login", data={"email": "a@b.ca", "password": "x" * 12})
    assert r.status_code == 403
    assert "Requête refusée" in r.text
    r = client.post("/en/logout")
    assert r.status_code == 403 and "Request refused" in r.text


def test_post_with_a_wrong_csrf_token_is_refused(client):
    csrf_token(client)
    r = client.post("/fr/login", data={"email": "a@b.ca", "password": "x", "_csrf_token": "forged"})
    assert r.status_code == 403


def test_htmx_post_with_header_token_passes_csrf(client):
    token = csrf_token(client)
    r = client.post("/fr/logout", headers={"x-csrftoken": token, "HX-Request": "true"},
                    follow_redirects=False)
    assert r.status_code == 303


def test_csrf_cookie_is_httponly_and_not_a_language_cookie(client):
    r = client.get("/fr/")
    cookies = r.headers.get_list("set-cookie")
    assert len(cookies) == 1 and cookies[0].startswith("capteo_csrf=")
    assert "HttpOnly" in cookies[0] and "SameSite=lax" in cookies[0]
    assert not any("lang" in c.lower() for c in cookies)


@pytest.mark.parametrize("header, suggested", [(None, "fr"), ("en-US,en;q=0.9", "en"), ("fr-CA", "fr")])
def test_bare_url_suggests_language_and_lets_the_browser_decide(client, header, suggested):
    headers = {"accept-language": header} if header else {}
    r = client.get("/app/leads?status=new", headers=headers)
    assert r.status_code == 200
    assert f'data-suggested="{suggested}"' in r.text
    assert 'data-target="/app/leads?status=new"' in r.text
    assert 'href="/fr/app/leads?status=new"' in r.text  # works without JavaScript too


def test_healthz(client):
    body = client.get("/healthz").json()
    assert body["ok"] is True and body["database"] == "ok"
    assert body["queue_depth"] >= 0
    assert body["models"]["whisper"] == {"name": "small", "present": False, "usable": False, "problem": "missing"}
    assert body["models"]["llm"]["present"] is False


def test_healthz_sees_a_model_file(client, config):
    (config.models_dir / "qwen2.5-3b-instruct-q4_k_m.gguf").write_bytes(b"GGUF")
    assert client.get("/healthz").json()["models"]["llm"]["present"] is True
