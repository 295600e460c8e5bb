"""Synthesise the audio→face training set: speech from festival and flite, face targets from their own phone timings.

    python scripts/make_speech_dataset.py --out data/speech --count 2000 --seed 0 [--fps 60]

Each utterance is a few random sentences (dictionary words in sentence templates),
spoken by a random voice at a random rate, pitch and speed, and written as
OUT/NNNNNN.npz (np.savez, no pickle):

    audio        [S] float32 speech at 16 kHz in [-1, 1], clean (augment at training time)
    weights      [T, 52] float32 ARKit targets in ARKIT_NAMES order, T = ceil(S / 16000 · fps), as the
                 viseme table made them then (training derives them again from `phones_json`)
    fps          float64 scalar, frames per second of `weights` (frame i at i / fps)
    phones_json  uint8 UTF-8 JSON [[start_s, end_s, phone], ...], the synthesiser's own segment times
    voice        uint8 UTF-8 JSON {engine, voice, duration_stretch, f0_mean_hz, speed_factor}
    text         uint8 UTF-8 text that was spoken

Utterance i depends only on (seed, i), so any one can be regenerated. Needs the Debian
packages in scripts/speech-packages.txt; it installs nothing itself.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly
from tqdm import tqdm

from animation.visemes import phone_targets
from avatar.files import atomic_output

SAMPLE_RATE = 16_000
WORDS_PATH = Path("/usr/share/dict/words")
PACKAGES_PATH = Path(__file__).with_name("speech-packages.txt")
DURATION_STRETCH = (0.75, 1.4)  # >1 is slower
# Resampling speeds speech up or down and shifts pitch and formants together, like a
# shorter or longer vocal tract (Kaldi's speed perturbation): more speakers from few voices.
SPEED_FACTOR = (0.92, 1.08)
SENTENCES_PER_UTTERANCE = (1, 3)


@dataclass(frozen=True)
class Voice:
    """An English voice of festival (`voice_<name>`) or flite (`-voice <name>`)."""

    engine: str
    name: str
    package: str
    f0_mean_hz: tuple[float, float] | None  # range to draw from; None: the voice ignores pitch requests


VOICES: tuple[Voice, ...] = (
    Voice("festival", "kal_diphone", "festvox-kallpc16k", (85.0, 150.0)),
    Voice("festival", "ked_diphone", "festvox-kdlpc16k", (85.0, 150.0)),
    Voice("festival", "cmu_us_slt_arctic_hts", "festvox-us-slt-hts", None),
    Voice("flite", "slt", "flite", (150.0, 240.0)),
    Voice("flite", "awb", "flite", (95.0, 160.0)),
    Voice("flite", "kal16", "flite", (85.0, 150.0)),
    Voice("flite", "rms", "flite", None),  # its F0 model ignores int_f0_target_mean
)

# Function words and templates give sentence-like prosody; {} slots take random dictionary words.
TEMPLATES: tuple[str, ...] = (
    "the {} {} is {}.",
    "did you {} the {} and the {}?",
    "i think that {} {}, but {} {} {}.",
    "when the {} was {}, we {} a {} {}.",
    "my {} has {} {} to the {}.",
    "please {} the {}, then {} it.",
    "we will {} {} {} tomorrow.",
    "why does the {} {} so {}?",
    "{} {}, {} {} {}.",
    "her {} and his {} were {} by the {}.",
    "it was {}, {} and very {}.",
    "{} {} {} {} {} {}.",
)


class MissingToolError(RuntimeError):
    """A Debian package the recipe needs is not installed."""


def _missing(what: str) -> MissingToolError:
    packages = " ".join(PACKAGES_PATH.read_text().split())
    return MissingToolError(f"{what}: install the Debian packages `apt-get install {packages}`")


def load_words(path: Path = WORDS_PATH) -> list[str]:
    """Lower-case alphabetic dictionary words of 2-10 letters (the word list of `wamerican`)."""
    if not path.is_file():
        raise _missing(f"no word list at {path}")
    return [w for w in path.read_text(encoding="utf-8", errors="ignore").split()
            if re.fullmatch(r"[a-z]{2,10}", w)]


def available_voices() -> list[Voice]:
    """The voices of `VOICES` whose synthesiser and voice data are installed."""
    found: set[tuple[str, str]] = set()
    if shutil.which("festival"):
        out = subprocess.run(["festival", "-b", "(print (voice.list))"], capture_output=True, text=True).stdout
        found |= {("festival", name) for name in re.findall(r"[\w-]+", out)}
    if shutil.which("flite"):
        out = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout
        found |= {("flite", name) for name in out.split(":", 1)[-1].split()}
    voices = [v for v in VOICES if (v.engine, v.name) in found]
    for voice in (v for v in VOICES if v not in voices):
        print(f"note: {voice.engine} voice {voice.name} is missing (Debian package {voice.package})", file=sys.stderr)
    if not voices:
        raise _missing("neither festival nor flite has an English voice here")
    return voices


def random_text(words: list[str], rng: np.random.Generator) -> str:
    """One to three template sentences with random dictionary words in the slots."""
    sentences = []
    for _ in range(rng.integers(SENTENCES_PER_UTTERANCE[0], SENTENCES_PER_UTTERANCE[1] + 1)):
        template = TEMPLATES[rng.integers(len(TEMPLATES))]
        sentence = template.format(*(words[i] for i in rng.integers(len(words), size=template.count("{}"))))
        sentences.append(sentence[0].upper() + sentence[1:])
    return " ".join(sentences)


@dataclass(frozen=True)
class Settings:
    """How one utterance is spoken."""

    voice: Voice
    duration_stretch: float
    f0_mean_hz: float | None
    speed_factor: float  # > 1 is faster and higher; a multiple of 1/100 (exact resampling ratio)


def random_settings(voices: list[Voice], rng: np.random.Generator) -> Settings:
    voice = voices[rng.integers(len(voices))]
    return Settings(
        voice=voice,
        duration_stretch=round(float(rng.uniform(*DURATION_STRETCH)), 3),
        f0_mean_hz=round(float(rng.uniform(*voice.f0_mean_hz)), 1) if voice.f0_mean_hz else None,
        speed_factor=round(float(rng.uniform(*SPEED_FACTOR)), 2),
    )


def _festival_script(text: str, settings: Settings, wav_path: Path) -> str:
    """Scheme that synthesises `text` and prints `SEG phone end_s` per segment."""
    lines = [f"(voice_{settings.voice.name})"]
    if settings.voice.name.endswith("_hts"):
        # HTS voices ignore Duration_Stretch; their engine takes a speed rate (>1 is faster).
        lines.append(f'(set! hts_engine_params (cons (list "-r" {1 / settings.duration_stretch:.4f}) hts_engine_params))')
    else:
        lines.append(f"(Parameter.set 'Duration_Stretch {settings.duration_stretch})")
    if settings.f0_mean_hz is not None:
        # The diphone voices' linear-regression intonation: move the mean, scale the range with it.
        lines.append(f"(set! int_lr_params '((target_f0_mean {settings.f0_mean_hz}) "
                     f"(target_f0_std {settings.f0_mean_hz * 0.14:.1f}) (model_f0_mean 170) (model_f0_std 34)))")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    lines += [
        f'(set! utt (utt.synth (Utterance Text "{escaped}")))',
        f"(utt.save.wave utt \"{wav_path}\" 'riff)",
        "(mapcar (lambda (s) (format t \"SEG %s %f\\n\" (item.name s) (item.feat s 'end)))"
        " (utt.relation.items utt 'Segment))",
    ]
    return "\n".join(lines) + "\n"


def _run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return result.stdout


def synthesise(text: str, settings: Settings, workdir: Path) -> tuple[np.ndarray, int, list[tuple[str, float]]]:
    """Speak `text` with the synthesiser's own timing.

    Returns:
        samples [S] float32 in [-1, 1] at the voice's native rate, that rate in Hz,
        and the segments as (phone, end_s) in order.
    """
    wav_path = workdir / "speech.wav"
    if settings.voice.engine == "festival":
        script = workdir / "speak.scm"
        script.write_text(_festival_script(text, settings, wav_path))
        out = _run(["festival", "-b", str(script)])
        ends = [(m[1], float(m[2])) for m in re.finditer(r"^SEG (\S+) ([\d.]+)$", out, re.MULTILINE)]
    else:
        command = ["flite", "-voice", settings.voice.name, "-psdur",
                   "--setf", f"duration_stretch={settings.duration_stretch}"]
        if settings.f0_mean_hz is not None:
            command += ["--setf", f"int_f0_target_mean={settings.f0_mean_hz}"]
        out = _run(command + ["-t", text, "-o", str(wav_path)])
        ends = [(m[1], float(m[2])) for m in re.finditer(r"(\S+):([\d.]+)", out)]
    rate, samples = wavfile.read(wav_path)
    if not ends or samples.size == 0:
        raise RuntimeError(f"{settings.voice.engine} produced no speech or no segments for {text!r}")
    return samples.astype(np.float32) / 32768.0, int(rate), ends


def to_training_rate(samples: np.ndarray, rate: int, speed_factor: float) -> np.ndarray:
    """[S] at `rate` Hz → [S'] at 16 kHz played `speed_factor` times faster, S' ≈ S · 16000 / (rate · speed_factor)."""
    up, down = SAMPLE_RATE * 100, rate * round(speed_factor * 100)
    g = math.gcd(up, down)
    return resample_poly(samples, up // g, down // g).astype(np.float32)


def timed_phones(ends: list[tuple[str, float]], speed_factor: float) -> list[tuple[float, float, str]]:
    """Segment end times → [(start_s, end_s, phone)] on the sped-up time line."""
    phones, start = [], 0.0
    for phone, end in ends:
        end_s = round(end / speed_factor, 5)
        phones.append((start, end_s, phone))
        start = end_s
    return phones


def make_utterance(index: int, seed: int, fps: float, words: list[str], voices: list[Voice],
                   out_dir: Path, workdir: Path) -> float:
    """Synthesise utterance `index` into OUT/NNNNNN.npz; returns its audio length in s."""
    rng = np.random.default_rng([seed, index])
    text = random_text(words, rng)
    settings = random_settings(voices, rng)
    samples, rate, ends = synthesise(text, settings, workdir)
    audio = np.clip(to_training_rate(samples, rate, settings.speed_factor), -1.0, 1.0)
    phones = timed_phones(ends, settings.speed_factor)
    duration_s = audio.size / SAMPLE_RATE
    voice = {"engine": settings.voice.engine, "voice": settings.voice.name,
             "duration_stretch": settings.duration_stretch, "f0_mean_hz": settings.f0_mean_hz,
             "speed_factor": settings.speed_factor}
    with atomic_output(out_dir / f"{index:06d}.npz") as tmp:
        np.savez(tmp, audio=audio, weights=phone_targets(phones, fps, duration_s), fps=np.float64(fps),
                 phones_json=_utf8(json.dumps(phones)), voice=_utf8(json.dumps(voice)), text=_utf8(text))
    return duration_s


def _utf8(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--count", type=int, required=True, help="number of utterances")
    parser.add_argument("--seed", type=int, default=0, help="utterance i depends only on (seed, i)")
    parser.add_argument("--fps", type=float, default=60.0, help="frame rate of the targets")
    parser.add_argument("--start", type=int, default=0, help="first utterance index (to extend a set)")
    args = parser.parse_args(argv)
    try:
        words, voices = load_words(), available_voices()
    except MissingToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"voices: {', '.join(f'{v.engine}:{v.name}' for v in voices)}; {len(words)} words", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    began, audio_s = time.perf_counter(), 0.0
    with tempfile.TemporaryDirectory(prefix="speech-") as workdir:
        for index in tqdm(range(args.start, args.start + args.count), desc="utterances", unit="utt"):
            audio_s += make_utterance(index, args.seed, args.fps, words, voices, args.out, Path(workdir))
    elapsed = time.perf_counter() - began
    print(f"{args.count} utterances, {audio_s:.1f} s of speech in {elapsed:.1f} s "
          f"({elapsed / max(args.count, 1):.2f} s per utterance)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
