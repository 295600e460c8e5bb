"""The viewer page in a real browser (Debian's headless Chromium, driven by Playwright): WebRTC video and speech."""

from __future__ import annotations

import shutil

import pytest

from avatar.server.launch import serve_in_subprocess
from tests.test_server_session import speech_like

TOKEN = "browser-token-1234"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]

AUDIO_ENERGY = """async () => {
  let energy = 0;
  (await window.viewer.pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") energy = s.totalAudioEnergy || 0;
  });
  return energy;
}"""

PICTURE = """() => {
  const video = document.getElementById("video");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const context = canvas.getContext("2d");
  context.drawImage(video, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let face = 0;
  for (let i = 0; i < pixels.length; i += 4) if (pixels[i] + pixels[i + 1] + pixels[i + 2] < 600) face += 1;
  return { width: canvas.width, height: canvas.height, face: face / (pixels.length / 4),
           decoded: video.getVideoPlaybackQuality().totalVideoFrames };
}"""


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install .[test])")
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (make install adds it)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


def test_viewer_plays_the_avatar_and_its_speech_over_webrtc(browser, avatar_path, tmp_path):
    with serve_in_subprocess(str(avatar_path), "--token", TOKEN) as (url, _):
        page = browser.new_page()
        page.goto(f"{url}/viewer?token={TOKEN}&fps=25&size=512")
        page.wait_for_function("window.viewer.pc && document.getElementById('video').videoWidth > 0 "
                               "&& window.viewer.frames > 10", timeout=60_000)
        page.wait_for_function("document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames > 25",
                               timeout=30_000)
        picture = page.evaluate(PICTURE)
        assert (picture["width"], picture["height"]) == (512, 512)
        assert picture["face"] > 0.02, "the video shows no head on the white background"
        assert page.evaluate("document.getElementById('video').srcObject.getAudioTracks().length") == 1

        quiet = page.evaluate(AUDIO_ENERGY)
        samples = speech_like(1.5).tolist()
        page.evaluate("(samples) => speakSamples(Float32Array.from(samples), 16000)", samples)
        page.wait_for_function("window.viewer.utterancesEnded >= 1", timeout=30_000)
        page.wait_for_timeout(500)
        spoken = page.evaluate(AUDIO_ENERGY)
        assert spoken - quiet > 1e-3, "no speech reached the browser's audio track"
        assert page.evaluate("window.viewer.errors") == []
        page.screenshot(path=str(tmp_path / "viewer.png"))
        page.close()
