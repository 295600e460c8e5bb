"""`avatar render` and `avatar bench render|parity` end to end, on a head placed from the sample photo."""

from __future__ import annotations

import json
import wave

import av
import numpy as np
import pytest

from avatar import index_of
from avatar.cli import main
from avatar.weights_csv import write_weights_csv


def video_info(path):
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        return frames, bool(container.streams.audio)


def test_turntable_renders_every_frame_and_turns(avatar_path, tmp_path):
    out = tmp_path / "turn.mp4"
    assert main(["render", str(avatar_path), "-o", str(out), "--turntable", "--seconds", "1", "--fps", "8",
                 "--size", "96", "--backend", "cpu", "-q"]) == 0
    frames, has_audio = video_info(out)
    assert len(frames) == 8 and frames[0].shape == (96, 96, 3) and not has_audio
    # The front view shows the face (not white), and the view changes as the head turns.
    assert frames[0][30:70, 30:70].mean() < 230
    assert np.abs(frames[0].astype(int) - frames[2]).mean() > 5


def test_weights_drive_the_face_and_audio_is_muxed(avatar_path, tmp_path):
    weights = np.zeros((6, 52), np.float32)
    weights[3:, index_of("jawOpen")] = 1.0
    write_weights_csv(tmp_path / "w.csv", np.arange(6) / 25, weights)
    with wave.open(str(tmp_path / "a.wav"), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes((np.sin(np.arange(4000) / 5) * 8000).astype(np.int16).tobytes())
    out = tmp_path / "talk.mp4"
    assert main(["render", str(avatar_path), "-o", str(out), "--weights", str(tmp_path / "w.csv"), "--size", "128",
                 "--backend", "cpu", "--audio", str(tmp_path / "a.wav"), "-q"]) == 0
    frames, has_audio = video_info(out)
    assert len(frames) == 6 and has_audio
    lower = slice(80, 120)  # the mouth and chin region of the framed face
    assert np.abs(frames[5][lower].astype(int) - frames[0][lower]).mean() > 2
    assert np.abs(frames[1].astype(int) - frames[0]).mean() < 1.5


def test_stereo_is_side_by_side(avatar_path, tmp_path):
    out = tmp_path / "stereo.mp4"
    assert main(["render", str(avatar_path), "-o", str(out), "--turntable", "--seconds", "0.25", "--fps", "4",
                 "--size", "64", "--backend", "cpu", "--stereo", "-q"]) == 0
    frames, _ = video_info(out)
    left, right = frames[0][:, :64], frames[0][:, 64:]
    assert frames[0].shape == (64, 128, 3) and np.abs(left.astype(int) - right).mean() > 0.5


def test_bad_render_inputs_are_one_line_errors(avatar_path, tmp_path, capsys):
    (tmp_path / "junk.avatar").write_bytes(b"not a zip")
    cases = [
        (["render", str(tmp_path / "junk.avatar"), "-o", str(tmp_path / "o.mp4"), "--turntable"], "not"),
        (["render", str(avatar_path), "-o", str(tmp_path / "o.mp4"), "--weights", str(tmp_path / "none.csv")],
         "does not exist"),
        (["render", str(avatar_path), "-o", str(tmp_path / "o.mp4"), "--turntable", "--backend", "vulkan"],
         "unknown renderer backend"),
    ]
    for argv, message in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.usefixtures("face_model_path")
def test_bench_render_and_parity_print_the_issue_keys(capsys):
    assert main(["bench", "render", "--gaussians", "2000", "--size", "64", "--backend", "cpu", "--frames", "3",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cpu = result["backends"]["cpu"]
    assert cpu["fps"] > 0 and {"deform", "project", "sort", "raster", "readback"} <= set(cpu["ms"])
    assert main(["bench", "parity", "--json"]) == 0
    parity = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "cpu" in parity["per_backend"] and parity["psnr_min"] >= 40


def test_bench_render_takes_an_avatars_head(avatar_path, capsys):
    assert main(["bench", "render", "--avatar", str(avatar_path), "--size", "64", "--backend", "cpu", "--frames", "3",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["gaussians"] == 3000 and result["avatar"] == str(avatar_path)
    assert result["backends"]["cpu"]["fps"] > 0
