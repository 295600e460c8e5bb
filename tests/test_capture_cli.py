"""`avatar capture`, `avatar eval` and `avatar export-dataset` end to end on small generated videos."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatar.cli import main
from avatar.model import Avatar
from capture import open_media
from render import VideoWriter


def write_video(path: Path, seconds: float, fps: float = 10.0, brightness: float = 1.0,
                canvas: tuple[int, int] = (512, 512)) -> Path:
    """The astronaut, swaying a few pixels and turning a little, as an MP4: 512 px, in the middle of
    a grey `canvas` (W, H)."""
    from avatar.sample import sample_photo

    photo = sample_photo()
    with VideoWriter(path, fps) as video:
        for i in range(round(seconds * fps)):
            t = i / fps
            matrix = cv2.getRotationMatrix2D((256, 200), 3 * math.sin(t), 1.0 + 0.02 * math.sin(0.7 * t))
            matrix[:, 2] += [4 * math.sin(1.3 * t), 2 * math.cos(t)]
            frame = cv2.warpAffine(photo, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT)
            frame = np.clip(frame * brightness, 0, 255).astype(np.uint8)
            left, top = (canvas[0] - 512) // 2, (canvas[1] - 512) // 2
            video.write(cv2.copyMakeBorder(frame, top, canvas[1] - 512 - top, left, canvas[0] - 512 - left,
                                           cv2.BORDER_CONSTANT, value=(90, 90, 90)))
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory, face_model_path, person_segmenter_path) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "astronaut.mp4", 4.0)


@pytest.fixture(scope="module")
def captured(video, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("capture") / "astronaut.avatar"
    assert main(["capture", str(video), "-o", str(out), "--iterations", "40", "--gaussians", "3000", "--size", "96",
                 "-q"]) == 0
    return out


def test_capture_writes_the_avatar_its_report_and_a_checkpoint(captured, video, capsys):
    avatar = Avatar.load(captured)
    info = avatar.metadata["capture"]
    assert info["iterations_done"] == 40 and len(info["holdout_frames"]) == 8 and len(info["train_frames"]) == 32
    assert info["holdout_frames"][0] > max(info["train_frames"])
    assert info["options"]["track_steps"] == 16  # the base, recorded; eight held-out frames each got more
    report = captured.with_name("astronaut.report")
    metrics = json.loads((report / "metrics.json").read_text())
    assert {"psnr", "ssim", "baseline_psnr", "baseline_ssim", "frames", "landmark_psnr"} <= set(metrics)
    assert metrics["frames"] == 8 and metrics["track_steps"] == 32
    # The astronaut sways but never opens her mouth or blinks: the capture says so, and what to record.
    assert [w.split(" (")[0] for w in metrics["warnings"]] == [
        "the training frames of astronaut.mp4 never show an open mouth",
        "the training frames of astronaut.mp4 never show a blink"]
    assert info["warnings"] == metrics["warnings"] and set(metrics["expression_peaks"]) == {"an open mouth", "a blink"}
    frames = [row["frame"] for row in metrics["per_frame"]]
    assert frames == info["holdout_frames"] and metrics["psnr"] == pytest.approx(
        np.mean([row["psnr"] for row in metrics["per_frame"]]), abs=1e-3)
    # 40 steps in, the Gaussians cover most of each held-out mask (here 9-23% is left), not all of it.
    uncovered = [row["uncovered"] for row in metrics["per_frame"]]
    assert 0 <= min(uncovered) and max(uncovered) < 0.5 and metrics["uncovered"] == pytest.approx(np.mean(uncovered),
                                                                                                    abs=1e-4)
    # The whole frame, the truth matted to white (as GaussianAvatars scores): the background
    # counts as drawn, so SSIM runs higher than inside the mask.
    assert metrics["whole_frame_ssim"] == pytest.approx(np.mean([row["whole_frame_ssim"] for row in metrics["per_frame"]]),
                                                        abs=1e-4) and metrics["whole_frame_ssim"] > metrics["ssim"]
    for picture in ("holdout.png", "curves.png", "masks.png"):
        assert cv2.imread(str(report / picture)) is not None
    # Six training frames at the fit size (96 px), three to a row, the outside dimmed.
    masks = cv2.imread(str(report / "masks.png"))
    assert masks.shape == (2 * 96, 3 * 96, 3) and masks[:, :, 1].max() == 255
    # Four evenly spaced held-out frames, then the two worst of the other four, at 512 px.
    assert cv2.imread(str(report / "holdout.png")).shape[0] == 6 * 512
    # The held-out frames as a video, truth | render, at the source's 10 fps (they are consecutive).
    played = open_media(report / "holdout.mp4")
    assert (played.num_frames, played.fps, played.width_px, played.height_px) == (8, 10.0, 1024, 512)
    first = next(played.frames()).image.astype(int)
    truth = next(open_media(video).frames(only={info["holdout_frames"][0]})).image
    assert np.abs(first[:, :512] - truth).mean() < 4
    assert first[:40, 512:552].min() > 240  # the render's white background, in its top left corner
    assert captured.with_name("astronaut.avatar.ckpt").exists()
    skull = avatar.head.triangle_ids.max() >= 898
    assert skull, "no Gaussian sits on the scaffold"


def test_a_capture_that_fails_late_leaves_no_report(video, tmp_path, monkeypatch, capsys):
    import capture.report
    from avatar import OutputError

    def disk_full(*args, **kwargs):
        raise OutputError("cannot write curves.png: no space left on device")

    monkeypatch.setattr(capture.report, "write_curves", disk_full)
    out = tmp_path / "late.avatar"
    assert main(["capture", str(video), "-o", str(out), "--iterations", "5", "--gaussians", "1000", "--size", "64",
                 "-q", "--no-speech-tuning"]) == 1
    assert "no space left" in capsys.readouterr().err
    assert not (tmp_path / "late.report").exists()


def test_capture_resumes_from_its_checkpoint(captured, video):
    assert main(["capture", str(video), "-o", str(captured), "--iterations", "55", "--gaussians", "3000",
                 "--size", "96", "--resume", "-q"]) == 0
    assert Avatar.load(captured).metadata["capture"]["iterations_done"] == 55


def test_eval_prints_the_scores_as_its_last_line(captured, video, capsys):
    assert main(["eval", str(captured), str(video), "-q"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(last) == ["psnr", "ssim", "baseline_psnr", "baseline_ssim", "frames"]
    assert last["frames"] == 8 and 5 < last["psnr"] < 60 and 0 < last["ssim"] <= 1
    # On the capture's own video, the held-out frames are posed and scored as the capture's report scored them,
    # to within what the bundle's float16 colour offsets move: 0.009 dB in a fresh install on 2026-11-28, under
    # 0.008 in others (posed with the fitted head's corrected face mesh instead, 0.02 dB).
    assert last == pytest.approx(Avatar.load(captured).metadata["capture"]["metrics"], abs=0.015)
    # Photometric tracking of the held-out frames only moves them closer to their frames.
    assert main(["eval", str(captured), str(video), "-q", "--track-steps", "0"]) == 0
    untracked = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert untracked["psnr"] <= last["psnr"] + 0.05
    assert untracked["baseline_psnr"] == pytest.approx(last["baseline_psnr"], abs=0.05)  # the baseline is untouched
    # By default the eight frames get the steps the capture gave them: 32, not the recorded base of 16.
    assert main(["eval", str(captured), str(video), "-q", "--track-steps", "32"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == last
    assert main(["eval", str(captured), str(video), "--track-steps", "-1"]) == 1
    assert "--track-steps must be 0 or more" in capsys.readouterr().err


def test_eval_writes_the_held_out_frames_side_by_side(captured, video, tmp_path):
    assert main(["eval", str(captured), str(video), "-q", "--side-by-side", str(tmp_path / "eval.mp4")]) == 0
    played = open_media(tmp_path / "eval.mp4")
    assert (played.num_frames, played.width_px, played.height_px) == (8, 1024, 512)
    assert main(["eval", str(captured), str(video), "-q", "--side-by-side", str(tmp_path / "missing" / "x.mp4")]) == 1


def test_export_dataset_writes_frames_masks_and_cameras(captured, video, tmp_path):
    out = tmp_path / "dataset"
    assert main(["export-dataset", str(video), "-o", str(out), "--avatar", str(captured), "--size", "128",
                 "-q"]) == 0
    data = json.loads((out / "transforms.json").read_text())
    assert len(data["frames"]) == 40 and len(data["val_filenames"]) == 8 and data["w"] == 128
    mask = cv2.imread(str(out / data["frames"][0]["mask_path"]), cv2.IMREAD_GRAYSCALE)
    assert mask.shape == (128, 128) and 0 < (mask > 0).mean() < 0.6
    assert main(["export-dataset", str(video), "-o", str(out), "--avatar", str(captured)]) == 1


def test_a_short_capture_is_refused_with_what_to_record(tmp_path, capsys, face_model_path):
    short = write_video(tmp_path / "short.mp4", 1.5)
    out = tmp_path / "short.avatar"
    assert main(["capture", str(short), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert "1.5 s with a face: record at least 3 s" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_missing_segmentation_model_is_said_before_any_work(video, tmp_path, monkeypatch, capsys,
                                                              face_model_path):
    from capture.model_files import FACE_MODEL, PERSON_SEGMENTER

    monkeypatch.setenv("AVATAR_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv(FACE_MODEL.env, str(face_model_path))
    monkeypatch.delenv(PERSON_SEGMENTER.env, raising=False)
    out = tmp_path / "x.avatar"
    assert main(["capture", str(video), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "person segmentation model not found" in err and "avatar setup" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not out.exists() and not list(tmp_path.glob("x.*"))


def test_a_dark_capture_is_refused(tmp_path, capsys, face_model_path):
    dark = write_video(tmp_path / "dark.mp4", 3.5, brightness=0.1)
    assert main(["capture", str(dark), "-o", str(tmp_path / "dark.avatar"), "-q", "--iterations", "5"]) == 1
    err = capsys.readouterr().err
    assert ("too dark" in err or "no face found" in err or "found in only" in err) and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dark.mp4"]  # no report, bundle or checkpoint


def test_two_people_are_refused_unless_told_whose_face(tmp_path, face_model_path, person_segmenter_path):
    """An interview: refused as it is, captured with --face, following that person throughout."""
    from skimage import data

    from avatar import InputError
    from capture.pipeline import prepare
    from tests.test_tracking import two_people_video

    two_people_video(tmp_path / "interview.mp4", cv2.resize(data.astronaut()[20:360, 90:430], (256, 256),
                                                           interpolation=cv2.INTER_AREA))
    with pytest.raises(InputError, match="100% of the frames of interview.mp4 show more than one face: re-record "
                                         "with only the person to capture in view, or say whose face.* --face"):
        prepare(tmp_path / "interview.mp4")
    info = prepare(tmp_path / "interview.mp4", face="right")
    assert (info.track.landmarks_px[:, :468, 0].mean(1) > 256).all()


def test_a_lost_face_is_refused(monkeypatch, video):
    import capture.pipeline as pipeline
    from avatar import InputError
    from capture.tracking import TrackingStats, track_media

    real = track_media

    def lost(source, **kwargs):
        track, stats = real(source, **kwargs)
        return track, TrackingStats(stats.frames, 0.4, stats.ms_per_frame, 1, 0.0)

    monkeypatch.setattr(pipeline, "track_media", lost)
    with pytest.raises(InputError, match="found in only 40% of the frames"):
        pipeline.prepare(video)


def test_a_photo_gives_a_one_shot_avatar(tmp_path, face_model_path):
    from avatar.sample import sample_photo

    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(sample_photo(), cv2.COLOR_RGB2BGR))
    out = tmp_path / "photo.avatar"
    assert main(["capture", str(photo), "-o", str(out), "--iterations", "10", "--gaussians", "2000", "--size", "64",
                 "-q"]) == 0
    info = Avatar.load(out).metadata["capture"]
    assert info["holdout_frames"] == [] and info["train_frames"] == [0] and info["metrics"] is None
    metrics = json.loads(out.with_name("photo.report").joinpath("metrics.json").read_text())
    assert "psnr" not in metrics and metrics["train_frames"] == 1
    assert metrics["warnings"] == []  # one photo shows one expression: nothing to re-record for it


def test_a_video_with_speech_goes_through_speech_tuning(tmp_path, face_model_path, capsys):
    from tests.test_server_session import speech_like

    path = tmp_path / "talking.mp4"
    audio = speech_like(9.0, 16000)
    from avatar.sample import sample_photo

    with VideoWriter(path, 10.0, audio=audio, sample_rate=16000) as video:
        for _ in range(90):
            video.write(sample_photo())
    out = tmp_path / "talking.avatar"
    assert main(["capture", str(path), "-o", str(out), "--iterations", "5", "--gaussians", "1500", "--size", "64",
                 "-q"]) == 0
    said = capsys.readouterr().out
    assert "speech model" in said
    avatar = Avatar.load(out)
    assert ("speech model tuned" in said) == bool(avatar.speech)
    assert avatar.metadata["mannerisms"]["blink_rate_per_min"] > 0


def test_bad_options_and_a_broken_checkpoint_are_one_line(captured, video, tmp_path, capsys):
    assert main(["capture", str(video), "-o", str(tmp_path / "x.avatar"), "--iterations", "0"]) == 1
    assert "--iterations must be at least 1" in capsys.readouterr().err
    assert main(["capture", str(video), "-o", str(tmp_path / "x.avatar"), "--minutes", "-1"]) == 1
    assert "--minutes must be 0 (no limit) or more" in capsys.readouterr().err
    for command in (["capture", str(video), "-o", str(tmp_path / "x.avatar")], ["bench", "capture", str(video)]):
        assert main([*command, "--seed", "-1"]) == 1
        err = capsys.readouterr().err
        assert "--seed must be 0 or more, got -1" in err and "Traceback" not in err
    broken = tmp_path / "broken.avatar"
    broken.with_name("broken.avatar.ckpt").write_bytes(b"not a checkpoint")
    assert main(["capture", str(video), "-o", str(broken), "--resume", "--iterations", "3", "--size", "64",
                 "--gaussians", "1000", "-q"]) == 1
    err = capsys.readouterr().err
    assert "checkpoint" in err and "unreadable" in err and "Traceback" not in err and not broken.exists()


def test_fitting_on_cuda_without_one_is_one_line(video, tmp_path, capsys):
    from render.cuda import cuda_unavailable_reason

    if cuda_unavailable_reason() is None:
        pytest.skip("the cuda backend can run here")
    out = tmp_path / "x.avatar"
    assert main(["capture", str(video), "-o", str(out), "--device", "cuda", "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("avatar capture: error: cannot fit on CUDA:") and len(err.splitlines()) == 1
    assert not out.exists()


def test_long_videos_are_subsampled_for_fitting(video):
    from capture.pipeline import prepare, training_frames

    info = prepare(video, progress=False)
    frames = training_frames(info, 64, progress=False, max_frames=5)
    assert len(frames) == 5 and frames.images.shape[1:] == (64, 64, 3)
    np.testing.assert_array_equal(frames.weights[0], info.face.weights[info.train[0]])
    np.testing.assert_array_equal(frames.weights[-1], info.face.weights[info.train[-1]])


def test_a_long_hold_out_is_scored_on_evenly_spaced_frames(video, tmp_path, monkeypatch, capsys):
    # A long video's held-out frames would take most of the time budget to score: the report
    # scores at most MAX_SCORED_FRAMES of them, first and last included, and says how many.
    from capture import pipeline

    monkeypatch.setattr(pipeline, "MAX_SCORED_FRAMES", 3)
    out = tmp_path / "spaced.avatar"
    assert main(["capture", str(video), "-o", str(out), "--iterations", "6", "--gaussians", "2000", "--size", "96",
                 "--no-speech-tuning"]) == 0
    held = Avatar.load(out).metadata["capture"]["holdout_frames"]
    metrics = json.loads((tmp_path / "spaced.report" / "metrics.json").read_text())
    assert len(held) == metrics["holdout_frames"] == 8 and metrics["frames"] == 3
    assert [row["frame"] for row in metrics["per_frame"]] == [held[0], held[4], held[7]]
    assert "held-out frames (3 of 8, evenly spaced)" in capsys.readouterr().out


def test_a_small_head_in_a_wide_frame_is_fitted_and_scored_in_its_window(tmp_path, face_model_path, capsys):
    from capture.frames import fit_size

    wide = write_video(tmp_path / "wide.mp4", 4.0, canvas=(1280, 720))
    out = tmp_path / "wide.avatar"
    assert main(["capture", str(wide), "-o", str(out), "--iterations", "6", "--gaussians", "2000", "--size", "96",
                 "--no-speech-tuning", "-q"]) == 0
    x0, y0, width, height = Avatar.load(out).metadata["capture"]["window_px"]
    # The 512-px picture keeps its pixels: the window is about its size, not the 1280x720 frame's.
    assert width == 512 and 512 <= height <= 720 and 0 < x0 < 1280 - width
    size = fit_size(width, height, 96)
    assert cv2.imread(str(tmp_path / "wide.report" / "masks.png")).shape[:2] == (2 * size[1], 3 * size[0])
    assert main(["eval", str(out), str(wide), "--json", "-q"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["frames"] == 8 and 5 < scores["psnr"] < 60
    dataset = tmp_path / "dataset"
    assert main(["export-dataset", str(wide), "-o", str(dataset), "--avatar", str(out), "--size", "96", "-q"]) == 0
    data = json.loads((dataset / "transforms.json").read_text())
    assert (data["w"], data["h"]) == size


def test_another_video_is_posed_with_the_face_the_capture_fitted(captured, video, tmp_path, capsys):
    # A copy under another name takes the other path (the last 20% of its frames, posed with the stored
    # face offsets), and those are the capture's own frames posed as the capture posed them.
    renamed = tmp_path / "renamed.mp4"
    renamed.write_bytes(video.read_bytes())
    assert main(["eval", str(captured), str(renamed), "-q"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "last 20% of the frames of renamed.mp4" in out[0]
    scores, recorded = json.loads(out[-1]), Avatar.load(captured).metadata["capture"]["metrics"]
    assert scores["frames"] == recorded["frames"]
    assert (scores["psnr"], scores["ssim"]) == pytest.approx((recorded["psnr"], recorded["ssim"]), abs=0.008)


def test_eval_on_another_video_and_export_without_an_avatar(captured, tmp_path, capsys, face_model_path):
    other = write_video(tmp_path / "other.mp4", 3.0)
    assert main(["eval", str(captured), str(other), "-q"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "last 20% of the frames of other.mp4" in out[0] and json.loads(out[-1])["frames"] == 6
    dataset = tmp_path / "fresh"
    assert main(["export-dataset", str(other), "-o", str(dataset), "--size", "96", "-q"]) == 0
    data = json.loads((dataset / "transforms.json").read_text())
    assert len(data["frames"]) == 30 and len(data["val_filenames"]) == 6


def test_capture_help_states_the_presets_defaults():
    # The help is written out (the CLI must not import the pipeline to parse); this keeps it honest.
    from avatar.cli import build_parser
    from capture.pipeline import CaptureOptions

    commands = next(a for a in build_parser()._actions if a.dest == "command")
    helps = {a.dest: a.help for a in commands.choices["capture"]._actions}
    default, quick = CaptureOptions(), CaptureOptions.quick()
    for dest, field in (("iterations", "iterations"), ("gaussians", "num_gaussians"), ("size", "train_size_px"),
                        ("fit_minutes", "fit_minutes"), ("minutes", "minutes")):
        expected = f"default {getattr(default, field):g}; --quick {getattr(quick, field):g}"
        assert expected in helps[dest], f"--{dest}: {helps[dest]!r} should say {expected!r}"


def test_bench_capture_scores_each_video_with_a_fixed_step_count(video, tmp_path, capsys):
    assert main(["bench", "capture", str(video), "--quick", "--iterations", "6", "--fit-minutes", "0", "--seed", "3",
                 "--keep", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["astronaut.mp4"]
    assert result["iterations"] == 6 and result["frames"] == 8 and result["seed"] == 3
    assert {"psnr", "ssim", "baseline_psnr", "baseline_ssim", "margin_db", "minutes", "whole_frame_psnr",
            "whole_frame_ssim"} <= set(result)
    assert (tmp_path / "astronaut.avatar").exists() and (tmp_path / "astronaut.report" / "holdout.png").exists()
    assert Avatar.load(tmp_path / "astronaut.avatar").metadata["capture"]["options"]["seed"] == 3
