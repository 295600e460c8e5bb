"""`avatar bench lipsync` and `avatar bench bilabials`: how well speech drives the face."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LIPSYNC_KEYS = ("lve", "lve_loudness", "lve_neutral", "jaw_corr", "jaw_corr_loudness")
SPEECH_RATE = 16000  # Hz, what the speech model hears


def _load_model(path: Path | None):
    from animation import load_default_model, load_model

    return load_model(path) if path else load_default_model()


@dataclass(frozen=True)
class LipsyncClip:
    """A talking video as `avatar bench lipsync` scores it: its speech, and its track's usable frames.

    Every candidate's weights are added to the person's resting face (`rest`) and mapped to lip
    landmarks by a ridge fit on the clip's own track (`mapping`), then compared with the tracked lips.
    """

    audio: np.ndarray  # [S] mono at SPEECH_RATE
    fps: float
    time_s: np.ndarray  # [F] times of the frames with a face, inside the audio
    tracked: np.ndarray  # [F, 52] their tracked weights
    tracked_lips_cm: np.ndarray  # [F, L, 3] their lip landmarks, canonical head space
    mapping: np.ndarray  # [53, L * 3] weights -> lip landmarks
    rest: np.ndarray  # [52] each weight's 10th percentile over the frames
    loudness_jaw: np.ndarray  # [F] the loudness baseline's jawOpen (`animation.metrics.loudness_jaw`)

    @classmethod
    def load(cls, video: Path) -> "LipsyncClip":
        from animation.metrics import JAW, fit_weights_to_landmarks, frame_loudness_db, loudness_jaw
        from avatar import InputError
        from avatar.audio import read_audio
        from capture import LANDMARK_GROUPS, load_canonical_mesh, open_media, person_mesh, track_media

        source = open_media(video)
        if not source.has_audio:
            raise InputError(f"{video} has no audio track: lip-sync needs the speaker's voice")
        audio, _ = read_audio(video, sample_rate=SPEECH_RATE)
        track, _ = track_media(source, progress=False)
        frames = np.flatnonzero(track.valid & (track.time_s < len(audio) / SPEECH_RATE))
        mesh = load_canonical_mesh()
        lips = np.unique(np.concatenate([LANDMARK_GROUPS["lips_outer"], LANDMARK_GROUPS["lips_inner"]]))
        tracked_lips = np.stack([person_mesh(mesh, track, int(i))[lips] for i in frames])
        tracked, time_s = track.weights[frames], track.time_s[frames]
        loudness_db = frame_loudness_db(audio, SPEECH_RATE, time_s, 1 / source.fps)
        # The template, as in VOCA-style LVE: the person's resting face, here in weight space.
        return cls(audio, source.fps, time_s, tracked, tracked_lips, fit_weights_to_landmarks(tracked, tracked_lips),
                   np.percentile(tracked, 10, axis=0), loudness_jaw(loudness_db, tracked[:, JAW]))

    def scores(self, time_s: np.ndarray, weights: np.ndarray) -> dict:
        """The LIPSYNC_KEYS for weights [T, 52] at `time_s` [T], met with the frames at the frames' own
        times (a variable frame rate's are uneven)."""
        from animation.features import resample_curves
        from animation.metrics import JAW, correlation

        predicted = resample_curves(weights, time_s, self.time_s)
        loud_weights = np.tile(self.rest, (len(self.time_s), 1))
        loud_weights[:, JAW] = self.loudness_jaw
        return {
            "lve": self.lve(np.clip(self.rest + predicted, 0, 1)),
            "lve_loudness": self.lve(loud_weights),
            "lve_neutral": self.lve(np.tile(self.rest, (len(self.time_s), 1))),
            "jaw_corr": correlation(predicted[:, JAW], self.tracked[:, JAW]),
            "jaw_corr_loudness": correlation(loud_weights[:, JAW], self.tracked[:, JAW]),
            "frames": int(len(self.time_s)),
        }

    def lve(self, weights: np.ndarray) -> float:
        """Lip vertex error (cm) of weights [F, 52] at the frames."""
        from animation.metrics import landmarks_from_weights, lip_vertex_error

        return lip_vertex_error(landmarks_from_weights(weights, self.mapping), self.tracked_lips_cm)


def lipsync_scores(video: Path, model) -> dict:
    """The LIPSYNC_KEYS for one video (see `avatar bench lipsync --help`)."""
    from animation import predict

    clip = LipsyncClip.load(video)
    return clip.scores(*predict(model, clip.audio, SPEECH_RATE, fps=clip.fps))


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


def aligned_phones(path: Path) -> list[tuple[float, float, str]]:
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
        audio, rate = read_audio(wav, sample_rate=SPEECH_RATE)
        _, weights = predict(model, audio, rate, fps=60.0)
        rows[wav.stem] = bilabial_closure(weights, 60.0, aligned_phones(phones_path))
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
