"""`avatar bench lipsync` and `avatar bench bilabials`: how well speech drives the face."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

LIPSYNC_KEYS = ("lve", "lve_loudness", "lve_neutral", "jaw_corr", "jaw_corr_loudness")


def _load_model(path: Path | None):
    from animation import load_default_model, load_model

    return load_model(path) if path else load_default_model()


def lipsync_scores(video: Path, model) -> dict:
    """The LIPSYNC_KEYS for one video (see `avatar bench lipsync --help`)."""
    import numpy as np

    from animation import predict
    from animation.features import resample_curves
    from animation.metrics import (JAW, correlation, fit_weights_to_landmarks, frame_loudness_db,
                                   landmarks_from_weights, lip_vertex_error, loudness_jaw)
    from avatar import InputError
    from avatar.audio import read_audio
    from capture import LANDMARK_GROUPS, load_canonical_mesh, open_media, person_mesh, track_media

    source = open_media(video)
    if not source.has_audio:
        raise InputError(f"{video} has no audio track: lip-sync needs the speaker's voice")
    audio, rate = read_audio(video, sample_rate=16000)
    track, _ = track_media(source, progress=False)
    # Predictions meet the frames at the frames' own times: a variable frame rate's are uneven.
    predicted_s, predicted = predict(model, audio, rate, fps=source.fps)
    frames = np.flatnonzero(track.valid & (track.time_s < len(audio) / rate))
    predicted = resample_curves(predicted, predicted_s, track.time_s[frames])
    mesh = load_canonical_mesh()
    lips = np.unique(np.concatenate([LANDMARK_GROUPS["lips_outer"], LANDMARK_GROUPS["lips_inner"]]))
    tracked_lips = np.stack([person_mesh(mesh, track, int(i))[lips] for i in frames])
    tracked = track.weights[frames]
    mapping = fit_weights_to_landmarks(tracked, tracked_lips)
    # The template, as in VOCA-style LVE: the person's resting face, here in weight space (each
    # weight's 10th percentile over the clip). Model and baselines all move relative to it.
    rest = np.percentile(tracked, 10, axis=0)
    loud_weights = np.tile(rest, (len(frames), 1))
    loudness_db = frame_loudness_db(audio, rate, track.time_s[frames], 1 / source.fps)
    loud_weights[:, JAW] = loudness_jaw(loudness_db, tracked[:, JAW])
    model_weights = np.clip(rest + predicted, 0, 1)

    def lve(weights: np.ndarray) -> float:
        return lip_vertex_error(landmarks_from_weights(weights, mapping), tracked_lips)

    return {
        "lve": lve(model_weights),
        "lve_loudness": lve(loud_weights),
        "lve_neutral": lve(np.tile(rest, (len(frames), 1))),
        "jaw_corr": correlation(predicted[:, JAW], tracked[:, JAW]),
        "jaw_corr_loudness": correlation(loud_weights[:, JAW], tracked[:, JAW]),
        "frames": int(len(frames)),
    }


def run_lipsync(args: argparse.Namespace) -> int:
    model = _load_model(args.model)
    per_video = {video.name: lipsync_scores(video, model) for video in args.videos}
    summary = {key: round(sum(v[key] for v in per_video.values()) / len(per_video), 4) for key in LIPSYNC_KEYS}
    if len(per_video) > 1:
        summary["videos"] = {name: {k: round(v, 4) for k, v in row.items()} for name, row in per_video.items()}
    if args.json:
        print(json.dumps(summary))
    else:
        for name, row in per_video.items():
            print(f"{name:48s} LVE {row['lve']:.3f} cm (loudness {row['lve_loudness']:.3f}, neutral "
                  f"{row['lve_neutral']:.3f})  jaw corr {row['jaw_corr']:.3f} (loudness {row['jaw_corr_loudness']:.3f})")
    return 0


def _phones(path: Path) -> list[tuple[float, float, str]]:
    """Phones of a pocketsphinx-style .phone.json: words in "w", each with its phones in "w"."""
    data = json.loads(path.read_text())
    return [(p["b"], p["b"] + p["d"], p["t"]) for word in data["w"] for p in word.get("w", [])]


def run_bilabials(args: argparse.Namespace) -> int:
    from animation import predict
    from animation.metrics import bilabial_closure
    from avatar import InputError
    from avatar.audio import read_audio

    pairs = sorted((p, p.with_name(p.name.replace(".phone.json", ".wav"))) for p in args.folder.glob("*.phone.json"))
    pairs = [(phones, wav) for phones, wav in pairs if wav.is_file()]
    if not pairs:
        raise InputError(f"no .wav + .phone.json pairs in {args.folder}")
    model = _load_model(args.model)
    rows, hits, total = {}, 0.0, 0
    for phones_path, wav in pairs:
        audio, rate = read_audio(wav, sample_rate=16000)
        _, weights = predict(model, audio, rate, fps=60.0)
        rows[wav.stem] = bilabial_closure(weights, 60.0, _phones(phones_path))
        hits += rows[wav.stem]["closed_fraction"] * rows[wav.stem]["bilabials"]
        total += rows[wav.stem]["bilabials"]
    result = {"closed_fraction": round(hits / total, 4) if total else 0.0, "bilabials": total, "clips": rows}
    if args.json:
        print(json.dumps(result))
    else:
        for name, row in rows.items():
            print(f"{name:48s} {row['bilabials']:3d} p/b/m  lips meet for {100 * row['closed_fraction']:.0f}%  "
                  f"(elsewhere {100 * row['closed_elsewhere']:.0f}% of speech frames)")
        print(f"all: lips meet within 40 ms of {100 * result['closed_fraction']:.0f}% of {total} p/b/m phones")
    return 0
