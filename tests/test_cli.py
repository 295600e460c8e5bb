"""The `avatar` command line: help, the demo, and bad inputs (one line, non-zero, nothing left behind)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from avatar.cli import build_parser, main
from tests.test_media import _audio_only, _truncated_faststart, write_video

SUBCOMMANDS = ["setup", "demo", "track", "bench", "bench track"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avatar", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_every_subcommand_and_each_has_help(capsys):
    result = run_cli("--help")
    assert result.returncode == 0
    for name in ("setup", "demo", "track", "bench"):
        assert name in result.stdout
    for command in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args([*command.split(), "--help"])
        assert exit_info.value.code == 0
        assert "usage: avatar" in capsys.readouterr().out


def bad_inputs(tmp_path):
    (tmp_path / "text.mp4").write_text("this is not a video\n")
    cv2.imwrite(str(tmp_path / "noface.png"), np.full((128, 128, 3), 90, np.uint8))
    return {
        "text file named .mp4": (tmp_path / "text.mp4", "not a readable video"),
        "truncated mp4": (_truncated_faststart(tmp_path), "truncated"),
        "audio-only file": (_audio_only(tmp_path), "no video stream"),
        "photo without a face": (tmp_path / "noface.png", "no face found"),
        "missing path": (tmp_path / "nowhere.mp4", "does not exist"),
    }


@pytest.mark.usefixtures("face_model_path")
def test_bad_inputs_give_one_line_and_leave_nothing(tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for what, (path, message) in bad_inputs(tmp_path).items():
        code = main(["track", str(path), "-o", str(out_dir / "t.npz"), "--preview", str(out_dir / "p.mp4"), "-q"])
        err = capsys.readouterr().err.strip()
        assert code == 1, what
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, (what, err)
        assert list(out_dir.iterdir()) == [], what


def test_unwritable_output_fails_before_any_work(tmp_path, capsys):
    write_video(tmp_path / "clip.mp4", frames=3)
    target = "/proc/t.npz" if os.geteuid() == 0 else "/t.npz"
    assert main(["track", str(tmp_path / "clip.mp4"), "-o", target]) == 1
    assert "cannot write" in capsys.readouterr().err
    assert main(["track", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "no" / "dir" / "t.npz")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_exit_code_and_message_from_a_real_process(tmp_path):
    result = run_cli("track", str(tmp_path / "nothing.mov"), "-o", str(tmp_path / "t.npz"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"avatar track: error: {tmp_path / 'nothing.mov'} does not exist: give a video file, a photo, or a folder of photos"]
    assert not (tmp_path / "t.npz").exists()


@pytest.mark.usefixtures("face_model_path")
def test_track_json_summary_and_demo(tmp_path, capsys):
    from skimage import data

    cv2.imwrite(str(tmp_path / "face.jpg"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    assert main(["track", str(tmp_path / "face.jpg"), "-o", str(tmp_path / "t.npz"),
                 "--preview", str(tmp_path / "mesh.png"), "--json", "-q"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == 1 and summary["found_fraction"] == 1.0 and summary["ms_per_frame"] > 0
    assert cv2.imread(str(tmp_path / "mesh.png")).shape == (512, 512, 3)

    assert main(["demo", "-o", str(tmp_path / "demo")]) == 0
    assert "result:" in capsys.readouterr().out
    assert cv2.imread(str(tmp_path / "demo" / "astronaut_mesh.png")).shape == (512, 1024, 3)
    assert (tmp_path / "demo" / "astronaut.track.npz").is_file()
