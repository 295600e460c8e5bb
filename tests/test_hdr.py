"""HDR video (HLG, PQ) read as the SDR picture it was made from: the transfer curves at the
standards' own reference points, and whole videos encoded by the BBC's sRGB-to-HDR mapping."""

from __future__ import annotations

import av
import numpy as np
import pytest

from capture import open_media
from capture.hdr import (BT2020_TO_BT709, HLG, KNEE, PQ, hlg_inverse_oetf, pq_eotf_cdm2, roll_off, srgb_encode,
                         to_sdr)

# The picture the HDR videos are made from: flat 16-px patches (so 4:2:0 chroma stays inside each),
# sRGB: skin, hair, saturated red, green and blue, greys, and white.
PATCHES = np.array([[224, 172, 150], [150, 100, 80], [60, 40, 30], [200, 40, 40], [40, 170, 60],
                    [40, 60, 190], [128, 128, 128], [30, 30, 30], [255, 255, 255]], np.uint8)


def hlg_oetf(light):
    """Scene light [0, 1] -> HLG signal (BT.2100), written out independently of `capture.hdr`."""
    a = 0.17883277
    b, c = 1 - 4 * a, 0.5 - a * np.log(4 * a)
    light = np.asarray(light, np.float64)
    return np.where(light <= 1 / 12, np.sqrt(3 * light), a * np.log(np.maximum(12 * light - b, 1e-9)) + c)


def pq_inverse_eotf(cdm2):
    """Display light (cd/m²) -> PQ signal (SMPTE ST 2084)."""
    m1, m2, c1, c2, c3 = 0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875
    y = (np.asarray(cdm2, np.float64) / 10000) ** m1
    return ((c1 + c2 * y) / (1 + c3 * y)) ** m2


def srgb_to_hdr_signal(srgb: np.ndarray, transfer: int) -> np.ndarray:
    """sRGB uint8 -> BT.2100 R'G'B' in [0, 1], as the BBC's and W3C's sRGB-to-HLG (and BT.2408's
    203 cd/m² for PQ) conversions do: sRGB's light, BT.709 to BT.2020, reference white's level."""
    x = srgb / 255.0
    light = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    bt709_to_bt2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])
    light = light @ bt709_to_bt2020.T
    return hlg_oetf(0.26496256 * light) if transfer == HLG else pq_inverse_eotf(203 * light)


def write_hdr_video(path, transfer: int, frames: int = 3) -> np.ndarray:
    """A 10-bit HEVC video of `PATCHES` tagged BT.2020 / `transfer`; returns the sRGB picture [16, 144, 3]."""
    picture = np.repeat(np.repeat(PATCHES[None], 16, axis=0), 16, axis=1)
    signal = np.round(srgb_to_hdr_signal(picture, transfer) * 65535).astype(np.uint16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx265", rate=25)
        stream.width, stream.height, stream.pix_fmt = picture.shape[1], picture.shape[0], "yuv420p10le"
        context = stream.codec_context
        context.colorspace, context.color_range, context.color_primaries, context.color_trc = 9, 1, 9, transfer
        context.options = {"crf": "4", "x265-params": "log-level=error"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(signal, format="rgb48le")
            frame = frame.reformat(format="yuv420p10le", dst_colorspace=9, dst_color_range=1)
            frame.color_primaries, frame.color_trc, frame.pts = 9, transfer, i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return picture


def patch_centres(image: np.ndarray) -> np.ndarray:
    return image[8, 8::16].astype(int)


def test_the_transfer_curves_meet_the_standards_reference_points():
    # HLG: E' = 0.5 is 1/12 of peak scene light; 75% is reference white (BT.2408); 100% is peak.
    assert np.allclose(hlg_inverse_oetf([0.0, 0.5, 0.75, 1.0]), [0, 1 / 12, 0.26496, 1.0], atol=1e-5)
    # PQ: 100 cd/m² at 50.8%, 203 (reference white) at 58%, 1000 at 75.2%, 10000 at 100%.
    assert np.allclose(pq_eotf_cdm2([0.5081, 0.7518, 1.0]), [100, 1000, 10000], rtol=2e-3)
    assert abs(pq_eotf_cdm2(0.58) - 203) < 2
    # The curves run back to the test's own forward ones.
    light = np.linspace(0, 1, 101)
    assert np.allclose(hlg_inverse_oetf(hlg_oetf(light)), light, atol=1e-9)
    assert np.allclose(pq_eotf_cdm2(pq_inverse_eotf(light * 10000)), light * 10000, rtol=1e-9, atol=1e-9)
    assert np.allclose(BT2020_TO_BT709.sum(1), 1)  # white stays white
    assert srgb_encode(0.0) == 0 and abs(srgb_encode(1.0) - 1) < 1e-12 and abs(srgb_encode(0.214) - 0.5) < 1e-3


def test_highlights_roll_off_smoothly_and_keep_their_hue():
    x = np.linspace(0, 60, 6001)
    y = roll_off(x)
    assert np.array_equal(y[x <= KNEE], x[x <= KNEE]) and (np.diff(y) > 0).all() and y.max() < 1
    assert abs((roll_off(KNEE + 1e-6) - roll_off(KNEE)) / 1e-6 - 1) < 1e-4  # no kink at the knee
    # A bright orange highlight, twice reference white: every channel scaled alike.
    signal = np.round(hlg_oetf(0.26496 * 2 * np.array([1.0, 0.5, 0.1]) @ np.linalg.inv(BT2020_TO_BT709).T)
                      * 65535).astype(np.uint16)
    out = to_sdr(tuple(signal[None, None, c] for c in range(3)), HLG, 9)[0, 0].astype(float)
    expected = 255 * srgb_encode(roll_off(2.0) * np.array([1.0, 0.5, 0.1]))
    assert np.abs(out - expected).max() <= 1.5, (out, expected)


@pytest.mark.parametrize("transfer", [HLG, PQ], ids=["hlg", "pq"])
def test_an_hdr_video_reads_as_the_sdr_picture_it_was_made_from(tmp_path, transfer):
    picture = write_hdr_video(tmp_path / "hdr.mp4", transfer)
    images = [frame.image for frame in open_media(tmp_path / "hdr.mp4").frames()]
    assert len(images) == 3
    read, truth = patch_centres(images[-1]), patch_centres(picture)
    below_knee = np.all(truth <= 255 * srgb_encode(KNEE), axis=1)
    assert below_knee[:-1].all() and not below_knee[-1]
    assert np.abs(read[below_knee] - truth[below_knee]).max() <= 4, (read, truth)
    # White (reference white) rolls off to just below the top, as roll_off says.
    assert np.abs(read[-1] - 255 * srgb_encode(roll_off(1.0))).max() <= 3, read[-1]
    # Decoded as if it were SDR, the same video is far off: grey and flat.
    with av.open(str(tmp_path / "hdr.mp4")) as container:
        plain = patch_centres(next(container.decode(video=0)).to_ndarray(format="rgb24"))
    assert np.abs(plain - truth).max() > 25, plain
