"""Tracking on the real recordings in ../shared/data (skipped when that folder is absent)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avatar.cli import main
from capture import TrackSmoothing, jitter_px, open_media, smooth_track, stillest_window, track_media


@pytest.mark.usefixtures("face_model_path")
def test_real_talking_video_is_tracked_throughout_and_smoothing_cuts_jitter(shared_data):
    source = open_media(shared_data / "video" / "real3dportrait_May_5s.mp4")
    track, stats = track_media(source, progress=False)
    assert stats.found_fraction >= 0.95 and stats.max_faces_seen == 1
    window = round(source.fps / 2)
    start = stillest_window(track.landmarks_px, track.found, window)
    smoothed = smooth_track(track, TrackSmoothing())
    assert jitter_px(smoothed.landmarks_px, start, window) < jitter_px(track.landmarks_px, start, window)
    assert 0 < smoothed.smoothing["lag_ms"] < 100
    # A talking newsreader opens her jaw: the weights move, within [0, 1].
    jaw = track.weights[:, 24]
    assert np.ptp(jaw) > 0.2 and jaw.min() >= 0 and jaw.max() <= 1


@pytest.mark.usefixtures("face_model_path")
@pytest.mark.parametrize("photo, found", [("skimage_astronaut.png", True), ("deep3d_vd006.png", True)])
def test_real_photos_including_a_turned_face(shared_data, photo, found):
    track, _ = track_media(open_media(shared_data / "images" / photo), progress=False)
    assert bool(track.found[0]) is found


@pytest.mark.usefixtures("face_model_path")
def test_bench_track_prints_the_issue_keys(shared_data, capsys):
    assert main(["bench", "track", str(shared_data / "video" / "vrt_face5_woman_glasses_en.mp4"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    row = result["videos"]["vrt_face5_woman_glasses_en.mp4"]
    assert row["frames"] == 122 and row["found_fraction"] > 0.95 and row["ms_per_frame"] > 0
    assert row["jitter_px_smoothed"] < row["jitter_px"]
