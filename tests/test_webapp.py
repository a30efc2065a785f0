"""The web page (`ser serve`) driven in headless Chromium: upload a clip, see the probabilities."""

import os
import shutil
import socket

import numpy as np
import pytest
import soundfile as sf

from ser.corpus import EMOTIONS
from synthetic import tone, voice

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("CI"):
    pytest.fail("CI must run the web page test: install Debian's chromium (.ci/run does)", pytrace=False)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs a Chromium binary (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page_url(model_dir):
    from ser.predict import Predictor
    from ser.webapp import THEME, build_app

    app = build_app(Predictor(model_dir, device="cpu"))
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
               theme=THEME, ssr_mode=False)
    yield f"http://127.0.0.1:{port}"
    app.close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def upload(browser, url, clip):
    page = browser.new_page()
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("input[type=file]", state="attached", timeout=60_000)
    page.set_input_files("input[type=file]", str(clip))
    return page


def test_uploaded_clip_shows_every_probability(browser, page_url, tmp_path):
    clip = tmp_path / "hello.wav"  # speech for the voice activity detector (a tone is not), as a stereo WAV
    signal, rate = voice(3.0, 22050), 22050
    sf.write(clip, np.stack([signal, signal], axis=1), rate)
    page = upload(browser, page_url, clip)
    page.wait_for_selector("#summary strong", timeout=60_000)
    top = page.inner_text("#summary strong").strip()
    shown = page.inner_text("#probabilities")
    assert top in EMOTIONS
    assert all(emotion in shown for emotion in EMOTIONS)
    assert "%" in shown and "s of speech" in page.inner_text("#summary")
    page.close()


def test_the_page_names_the_corpora_the_models_card_says_it_trained_on(model_dir):
    from types import SimpleNamespace

    from ser.predict import Predictor
    from ser.webapp import trained_corpora

    card = Predictor(model_dir, device="cpu").card
    assert trained_corpora(card) == ", ".join((card.trained_on or {}).get("corpora") or ["ravdess"])
    several = SimpleNamespace(trained_on={"corpora": ["emodb", "emovo", "turev"]})
    assert trained_corpora(several) == "emodb, emovo, turev"
    assert trained_corpora(SimpleNamespace(trained_on=None)) == "ravdess"  # a card older than the record


def test_a_clip_without_speech_says_so_and_claims_no_emotion(browser, page_url, tmp_path):
    clip = tmp_path / "tone.wav"
    sf.write(clip, tone(3, 1, 44100, 2.0, stereo=True), 44100)
    page = upload(browser, page_url, clip)
    page.get_by_text("no speech detected").first.wait_for(timeout=60_000)
    assert page.inner_text("#summary strong").strip() == "no speech detected"
    assert not any(emotion in page.inner_text("#probabilities") for emotion in EMOTIONS)
    page.close()


def test_a_broken_file_shows_the_problem(browser, page_url, tmp_path):
    clip = tmp_path / "broken.wav"
    sf.write(clip, np.full(16000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    page = upload(browser, page_url, clip)
    page.get_by_text("contains NaN/Inf samples").first.wait_for(timeout=60_000)
    assert page.query_selector("#summary strong") is None  # no emotion was claimed
    page.close()
