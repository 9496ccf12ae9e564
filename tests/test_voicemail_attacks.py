"""Attacks on the voicemail doors that once worked (issue 10), kept as tests: a network
description posted as audio, a recording cut off, the business's own name taken as
the caller's."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from app import leads, voicemail
from app.businesses import auth
from app.voicemail import audio
from app.voicemail.engine import ModelEngine, not_the_business
from tests.support.app import csrf_token
from tests.support.audio import encode, speak
from tests.support.people import make_business, phone_shop
from tests.support.tiny_models import FAST, install_models, tiny_models_dir

# An SDP file: FFmpeg's format guessing takes it for a stream description and opens
# RTP/UDP sockets on the ports it names (here 5004 and 5005), then waits for packets.
SDP = b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 5004 RTP/AVP 0\n"
SDP_PORTS = {5004, 5005}
PBX = {"authorization": "Bearer pbx-secret-token", "accept-language": "fr-CA"}
NOT_AUDIO_FR = "Ce fichier n'est pas un enregistrement audio."


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    d = tmp_path_factory.mktemp("speech")
    return speak("Bonjour, c'est Hélène Côté. Rappelez-moi au 514 555 0101.", "fr", d / "fr.wav").read_bytes()


@pytest.fixture
def shop(db):
    return phone_shop(db)


def _udp_ports() -> set[int]:
    ports = set()
    for table in ("/proc/self/net/udp", "/proc/self/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        ports |= {int(line.split()[1].rsplit(":", 1)[1], 16) for line in lines}
    return ports


class UdpWatch:
    """Records every UDP port bound on this machine while the block runs."""

    def __enter__(self):
        self.seen: set[int] = set()
        self._before = _udp_ports()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        self.started = time.monotonic()
        return self

    def _watch(self):
        while not self._stop.is_set():
            self.seen |= _udp_ports() - self._before
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.started
        self._stop.set()
        self._thread.join()


def nothing_kept(db, config):
    return list(config.audio_dir.iterdir()) == [] and db.query("SELECT * FROM voicemails") == []


def test_sdp_posted_to_the_pbx_door_is_refused_at_once_and_opens_no_socket(client, db, config, shop):
    with UdpWatch() as watch:
        r = client.post("/api/voicemail", files={"audio": ("message.wav", SDP, "audio/wav")}, headers=PBX)
    assert r.status_code == 400 and r.json() == {"error": NOT_AUDIO_FR}
    assert watch.seconds < 1.0, f"the decoder waited {watch.seconds:.1f} s on the network"
    assert not watch.seen & SDP_PORTS, f"UDP ports opened: {watch.seen}"
    assert nothing_kept(db, config)


def test_sdp_uploaded_on_the_dashboard_is_refused_at_once(client, db, config, shop):
    token = csrf_token(client)
    client.cookies.set("capteo_session", auth.start_session(db, user_id=shop[1], business_id=shop[0]))
    with UdpWatch() as watch:
        r = client.post("/en/app/voicemail", files={"audio": ("x.mp3", SDP, "audio/mpeg")},
                        data={"_csrf_token": token})
    assert r.status_code == 422 and "This file is not an audio recording." in r.text
    assert watch.seconds < 1.0 and not watch.seen & SDP_PORTS
    assert nothing_kept(db, config)


@pytest.mark.parametrize("data", [
    SDP,
    b"#EXTM3U\n#EXTINF:1,\nudp://127.0.0.1:5004\n",  # a playlist naming a network stream
    b"ffconcat version 1.0\nfile 'udp://127.0.0.1:5004'\n",  # FFmpeg's concat list
    b"\xff\xf1\x50\x80" + b"\0" * 200,  # ADTS AAC: audio, but not a format Capteo accepts
], ids=["sdp", "m3u", "ffconcat", "adts"])
def test_only_the_accepted_formats_reach_the_decoder(data):
    started = time.monotonic()
    with pytest.raises(audio.AudioRejected, match="not an audio recording"):
        audio.probe(data, 120, 10_000_000)
    assert time.monotonic() - started < 0.5


def test_a_truncated_wav_is_refused_at_the_pbx_door_and_nothing_is_kept(client, db, config, shop, speech):
    cut = speech[:len(speech) // 2]  # the header still declares the whole recording
    r = client.post("/api/voicemail", files={"audio": ("message.wav", cut, "audio/wav")},
                    data={"caller_id": "514-555-0101"}, headers=PBX)
    assert r.status_code == 400 and r.json() == {"error": NOT_AUDIO_FR}
    assert nothing_kept(db, config)
    assert client.post("/api/voicemail", files={"audio": ("message.wav", speech, "audio/wav")},
                       headers=PBX).status_code == 201  # the whole recording is welcome


def test_a_truncated_wav_is_refused_on_the_dashboard_and_nothing_is_kept(client, db, config, shop, speech):
    token = csrf_token(client)
    client.cookies.set("capteo_session", auth.start_session(db, user_id=shop[1], business_id=shop[0]))
    r = client.post("/fr/app/voicemail", files={"audio": ("message.wav", speech[:len(speech) // 2], "audio/wav")},
                    data={"_csrf_token": token})
    assert r.status_code == 422 and NOT_AUDIO_FR in r.text.replace("&#39;", "'")
    assert nothing_kept(db, config)


@pytest.mark.parametrize("fmt", ["mp3", "ogg", "m4a"])
def test_other_formats_cut_off_are_refused(speech, fmt):
    whole = encode(speech, fmt)
    assert audio.probe(whole, 120, 10_000_000).extension == fmt
    for fraction in (0.5, 0.9):
        with pytest.raises(audio.AudioRejected, match="not an audio recording"):
            audio.probe(whole[:int(len(whole) * fraction)], 120, 10_000_000)


def test_a_stored_sdp_file_is_never_opened_as_a_stream_by_the_worker(db, config, shop, tmp_path):
    """A file kept before the checks existed (or put there by hand) goes to the worker:
    it must fail there fast too, not open sockets for 20 s on the worker's thread."""
    from app import config as config_mod

    cfg = config_mod.load(config.path, env=FAST)
    install_models(cfg, tiny_models_dir())
    (cfg.audio_dir / "vm-old.wav").write_bytes(SDP)
    with db.write() as conn:
        conn.execute("INSERT INTO voicemails (business_id, audio_path, duration_s, created_at, updated_at, "
                     "next_attempt_at, source) VALUES (?, 'vm-old.wav', 5, '2026-01-01T00:00:00', "
                     "'2026-01-01T00:00:00', '2026-01-01T00:00:00', 'upload')", (shop[0],))
        vm_id = conn.last_insert_rowid()
    with UdpWatch() as watch:
        result = voicemail.process(db, cfg, ModelEngine(cfg), vm_id, "https://x")
    assert result.state == "received"  # failed this attempt, will retry then give up; nothing crashed
    assert watch.seconds < 5.0 and not watch.seen & SDP_PORTS
    row = voicemail.get(db, shop[0], vm_id)
    assert row["attempts"] == 1 and row["error"].startswith("AudioRejected")


# -- the business's own name is not the caller's --------------------------------------------------

def _lead_from_transcript(db, config, business_id, speech, transcript):
    """A voicemail at the "transcribed" state, then the real pipeline from there (rules only)."""
    vm_id, _ = voicemail.receive(db, config, business_id=business_id, data=speech, caller_id="+14385550123",
                                 source="upload", actor="t")
    with db.write() as conn:
        conn.execute("UPDATE voicemails SET state = 'transcribed', transcript = ?, language = 'fr' WHERE id = ?",
                     (transcript, vm_id))
    assert voicemail.process(db, config, ModelEngine(config), vm_id, "https://x").state == "lead_created"
    return leads.get(db, business_id, voicemail.get(db, business_id, vm_id)["lead_id"])


@pytest.mark.parametrize("business, transcript", [
    ("Gagnon et Fils", "Oui bonjour, c'est Gagnon et Fils? J'ai un dégât d'eau au sous-sol, "
                       "rappelez-moi au 514 555 0101."),
    ("Lavoie Frères", "Bonjour, Lavoie Frères. J'ai un dégât d'eau au sous-sol, rappelez-moi au 514 555 0101."),
])
def test_the_business_name_said_by_the_caller_is_not_the_callers_name(db, config, speech, business, transcript):
    bid, _ = make_business(db, "biz", business, custom=False)
    lead = _lead_from_transcript(db, config, bid, speech, transcript)
    assert (lead["first_name"], lead["last_name"]) == (None, None)
    assert lead["phone"] == "+15145550101"


def test_a_caller_sharing_a_word_with_the_business_keeps_their_name(db, config, speech):
    bid, _ = make_business(db, "biz", "Plomberie Gagnon", custom=False)
    lead = _lead_from_transcript(db, config, bid, speech,
                                 "Bonjour Plomberie Gagnon, c'est Marc Gagnon, rappelez-moi au 514 555 0101.")
    assert (lead["first_name"], lead["last_name"]) == ("Marc", "Gagnon")


def test_a_model_answer_naming_the_business_gives_way_to_the_rules():
    base = {"first_name": None, "last_name": None}
    assert not_the_business({"first_name": "Gagnon", "last_name": "Fils"}, base, "Gagnon et Fils") == base
    kept = {"first_name": "Marc", "last_name": "Gagnon"}
    assert not_the_business(kept, base, "Plomberie Gagnon") == kept
    assert not_the_business(kept, base, None) == kept
