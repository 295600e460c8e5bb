"""HDR video (HLG or PQ, BT.2020 primaries) to the SDR sRGB frames everything else works in.

A phone films HDR by default (an iPhone since the 12: HLG, BT.2020). Decoded like SDR video,
such a frame comes out grey and flat: BT.2020 primaries read as BT.709 ones, and a curve meant
for a bright display read as sRGB's. It is mapped here as the BBC's and W3C Color on the Web's
conversions between sRGB and BT.2100 do (ITU-R BT.2408's levels), run backwards:

1. the signal's linear light, relative to HDR reference white, which comes out at 1.0:
   - HLG: the inverse OETF (BT.2100), scene light, divided by 0.26496 (75% HLG, reference
     white); the BBC's sRGB-to-HLG mapping runs at a system gamma of 1 (a 302 cd/m² display),
     so there is no OOTF;
   - PQ: the EOTF (SMPTE ST 2084), absolute display light, divided by 203 cd/m²;
2. the BT.2020 primaries' light to BT.709's (sRGB's): a 3x3 matrix, out-of-gamut values clipped;
3. highlights above reference white (up to 3.8x for HLG, 49x for PQ) rolled off into the range
   from `KNEE` up, scaling the three channels by one factor (the largest channel's), so that a
   highlight keeps its hue; below `KNEE`, the light is unchanged;
4. the sRGB curve.

Light below `KNEE` (skin, hair, a room) therefore comes out exactly as an sRGB picture that the
BBC's conversion would have turned into this signal.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit, prange

HLG, PQ = 18, 16                 # AVColorTransferCharacteristic: ARIB STD-B67, SMPTE ST 2084
BT2020 = 9                       # AVColorPrimaries
HLG_REFERENCE_WHITE = 0.26496256  # scene light of a 75% HLG signal
PQ_REFERENCE_WHITE_CDM2 = 203.0
KNEE = 0.8                       # linear light, reference white = 1
# Linear-light BT.709 RGB to BT.2020 RGB (ITU-R BT.2087, D65 both), and back.
BT709_TO_BT2020 = np.array([[0.6274, 0.3293, 0.0433],
                            [0.0691, 0.9195, 0.0114],
                            [0.0164, 0.0880, 0.8956]])
BT2020_TO_BT709 = np.linalg.inv(BT709_TO_BT2020)
_SRGB_STEPS = 16384              # the sRGB curve's table: under half a level of 255 apart
_SIGNAL_BITS = 12                # the signal's table: 4096 codes, finer than a 10-bit video's


def hlg_inverse_oetf(signal: np.ndarray) -> np.ndarray:
    """HLG signal E' in [0, 1] -> scene light E in [0, 1] (ITU-R BT.2100, table 5)."""
    a, b, c = 0.17883277, 1 - 4 * 0.17883277, 0.5 - 0.17883277 * np.log(4 * 0.17883277)
    signal = np.asarray(signal, np.float64)
    low = signal ** 2 / 3
    high = (np.exp((np.maximum(signal, 0.5) - c) / a) + b) / 12
    return np.where(signal <= 0.5, low, high)


def pq_eotf_cdm2(signal: np.ndarray) -> np.ndarray:
    """PQ signal in [0, 1] -> display light in cd/m² (SMPTE ST 2084)."""
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    p = np.asarray(signal, np.float64) ** (1 / m2)
    return 10000 * (np.maximum(p - c1, 0) / (c2 - c3 * p)) ** (1 / m1)


def srgb_encode(light: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] -> sRGB signal in [0, 1] (IEC 61966-2-1)."""
    light = np.clip(np.asarray(light, np.float64), 0, 1)
    return np.where(light <= 0.0031308, 12.92 * light, 1.055 * light ** (1 / 2.4) - 0.055)


def roll_off(light: np.ndarray) -> np.ndarray:
    """Linear light (reference white 1) -> [0, 1): unchanged up to `KNEE`, then
    KNEE + (1 - KNEE) t / (1 + t) with t = (x - KNEE) / (1 - KNEE): slope 1 at the knee."""
    light = np.asarray(light, np.float64)
    t = np.maximum(light - KNEE, 0) / (1 - KNEE)
    return np.where(light <= KNEE, light, KNEE + (1 - KNEE) * t / (1 + t))


def is_hdr(transfer: int) -> bool:
    """Whether a frame's transfer characteristic (AVColorTransferCharacteristic) is HLG or PQ."""
    return transfer in (HLG, PQ)


def to_sdr(planes: tuple[np.ndarray, np.ndarray, np.ndarray], transfer: int, primaries: int) -> np.ndarray:
    """HDR R'G'B' signal as three [H, W] uint16 planes (R, G, B; full 16-bit scale) -> [H, W, 3]
    uint8 sRGB.

    `transfer` is HLG or PQ; BT.2020 `primaries` are converted to BT.709's, any other are kept."""
    light, matrix, encode = _tables(transfer, primaries)
    out = np.empty((*planes[0].shape, 3), np.uint8)
    _map(*planes, light, matrix, encode, KNEE, out)
    return out


@lru_cache(maxsize=4)
def _tables(transfer: int, primaries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear light of each signal code [2^_SIGNAL_BITS], the primaries' matrix [3, 3], and the
    sRGB curve as 8-bit levels [_SRGB_STEPS]."""
    codes = (np.arange(2 ** _SIGNAL_BITS) + 0.5) / 2 ** _SIGNAL_BITS
    if transfer == HLG:
        light = hlg_inverse_oetf(codes) / HLG_REFERENCE_WHITE
    elif transfer == PQ:
        light = pq_eotf_cdm2(codes) / PQ_REFERENCE_WHITE_CDM2
    else:
        raise ValueError(f"transfer characteristic {transfer} is not HLG ({HLG}) or PQ ({PQ})")
    matrix = BT2020_TO_BT709 if primaries == BT2020 else np.eye(3)
    encode = np.round(255 * srgb_encode(np.arange(_SRGB_STEPS) / (_SRGB_STEPS - 1))).astype(np.uint8)
    return light.astype(np.float32), matrix.astype(np.float32), encode


@njit(cache=True, parallel=True, fastmath=True, error_model="numpy")
def _map(red, green, blue, light, matrix, encode, knee, out):  # pragma: no cover - compiled
    steps = len(encode) - 1
    shift = 16 - _SIGNAL_BITS
    for y in prange(red.shape[0]):
        for x in range(red.shape[1]):
            r = light[red[y, x] >> shift]
            g = light[green[y, x] >> shift]
            b = light[blue[y, x] >> shift]
            rgb = (max(matrix[0, 0] * r + matrix[0, 1] * g + matrix[0, 2] * b, 0.0),
                   max(matrix[1, 0] * r + matrix[1, 1] * g + matrix[1, 2] * b, 0.0),
                   max(matrix[2, 0] * r + matrix[2, 1] * g + matrix[2, 2] * b, 0.0))
            peak = max(rgb[0], rgb[1], rgb[2])
            scale = 1.0
            if peak > knee:
                t = (peak - knee) / (1.0 - knee)
                scale = (knee + (1.0 - knee) * t / (1.0 + t)) / peak
            for c in range(3):
                out[y, x, c] = encode[int(min(rgb[c] * scale, 1.0) * steps + 0.5)]
