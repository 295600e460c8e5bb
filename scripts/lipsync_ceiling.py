"""How closely could any phone-driven mouth follow a clip's tracked jaw? A ceiling for `avatar bench lipsync`.

    python scripts/lipsync_ceiling.py VIDEO [VIDEO ...] [--calibrate FOLDER] [--json]

The shipped speech model learns mouth shapes from phone timings (`animation.visemes.phone_targets`).
This script gives that recipe everything a model could hope to know: pocketsphinx's phone
recogniser (allphone mode, its bundled en-us model) times each clip's phones, and
`phone_targets` turns them into weights, with the whole clip known in advance (no look-ahead
limit). They are scored as `avatar bench lipsync` scores the model (lip vertex error against the
loudness baseline's, jawOpen correlation at lag 0), with the best correlation within ±200 ms
besides, next to the shipped model's.

`--calibrate FOLDER` first checks the recogniser on recordings with true alignments (.wav +
.phone.json pairs, as in ../shared/data/audio/librivox): the jawOpen of targets from its
phones against that of targets from the true phones.

Needs pocketsphinx (`pip install pocketsphinx`), which the product does not: this is a
measurement, not part of the pipeline.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

from animation import load_default_model, predict
from animation.metrics import JAW, correlation
from animation.visemes import phone_targets
from avatar.audio import read_audio
from avatar.commands.bench_speech import SPEECH_RATE, LipsyncClip, aligned_phones

MAX_LAG_S = 0.2


def recognise_phones(audio: np.ndarray) -> list[tuple[float, float, str]]:
    """[S] 16-kHz samples -> (start_s, end_s, ARPAbet phone) from pocketsphinx's phone loop; noise is a pause."""
    import pocketsphinx

    model = Path(pocketsphinx.__file__).parent / "model" / "en-us"
    decoder = pocketsphinx.Decoder(samprate=SPEECH_RATE, allphone=str(model / "en-us-phone.lm.bin"), lw=2.0,
                                   beam=1e-20, pbeam=1e-20, loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
    decoder.end_utt()
    return [(s.start_frame / 100, (s.end_frame + 1) / 100, "pau" if s.word.startswith("+") or s.word == "SIL"
             else s.word) for s in decoder.seg()]


def calibrate(folder: Path) -> dict:
    """Per recording: jawOpen correlation of targets from recognised phones with those from the true ones."""
    rows = {}
    for phones_path in sorted(folder.glob("*.phone.json")):
        audio, _ = read_audio(phones_path.with_name(phones_path.name.replace(".phone.json", ".wav")), SPEECH_RATE)
        duration_s = len(audio) / SPEECH_RATE
        truth = phone_targets(aligned_phones(phones_path), 25.0, duration_s)[:, JAW]
        recognised = phone_targets(recognise_phones(audio), 25.0, duration_s)[:, JAW]
        rows[phones_path.name.replace(".phone.json", "")] = round(correlation(recognised, truth), 3)
    return rows


def scored(clip: LipsyncClip, time_s: np.ndarray, weights: np.ndarray) -> dict:
    """`avatar bench lipsync`'s scores of weights [T, 52] at `time_s`, and the best jaw correlation
    when they are shown up to MAX_LAG_S earlier or later (`best_lead_ms` > 0: earlier)."""
    row = clip.scores(time_s, weights)
    leads = np.arange(-round(MAX_LAG_S * clip.fps), round(MAX_LAG_S * clip.fps) + 1) / clip.fps
    by_lead = {lead: clip.scores(time_s - lead, weights)["jaw_corr"] for lead in leads}
    best = max(by_lead, key=by_lead.get)
    return {"lve": round(row["lve"], 4), "lve_ratio": round(row["lve"] / row["lve_loudness"], 3),
            "jaw_corr": round(row["jaw_corr"], 3), "best_jaw_corr": round(by_lead[best], 3),
            "best_lead_ms": round(1000 * best)}


def ceiling(video: Path, model) -> dict:
    """The phone-timed targets' and the shipped model's scores on one video."""
    clip = LipsyncClip.load(video)
    ideal = phone_targets(recognise_phones(clip.audio), clip.fps, len(clip.audio) / SPEECH_RATE)
    model_s, predicted = predict(model, clip.audio, SPEECH_RATE, clip.fps)
    n = min(len(ideal), len(predicted))
    return {"phone_timed": scored(clip, np.arange(len(ideal)) / clip.fps, ideal),
            "model": scored(clip, model_s, predicted),
            "model_vs_phone_timed_jaw_corr": round(correlation(predicted[:n, JAW], ideal[:n, JAW]), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--calibrate", type=Path, help="folder of .wav + .phone.json pairs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="unknown phones")
    model = load_default_model()
    result = {"calibration": calibrate(args.calibrate) if args.calibrate else {},
              "videos": {video.stem: ceiling(video, model) for video in args.videos}}
    if args.json:
        print(json.dumps(result))
        return
    for name, corr in result["calibration"].items():
        print(f"{name:48s} jawOpen from recognised phones vs from true phones: {corr:.3f}")
    for name, rows in result["videos"].items():
        print(f"{name} (model vs phone-timed jaw corr {rows['model_vs_phone_timed_jaw_corr']:.3f})")
        for key in ("phone_timed", "model"):
            row = rows[key]
            print(f"  {key:12s} LVE {row['lve']:.3f} cm ({row['lve_ratio']:.2f}x loudness)  jaw corr "
                  f"{row['jaw_corr']:+.3f}, best {row['best_jaw_corr']:+.3f} shown {row['best_lead_ms']:+d} ms earlier")


if __name__ == "__main__":
    main()
