"""Speed of the batched ``mmcourse.audio.mfcc`` against librosa looping over the same clips.

    python benchmarks/mfcc_vs_librosa.py        # needs the test extra (librosa)

Both are configured alike (HTK mel scale, no filter normalisation, reflect padding,
orthonormal DCT-II); the script also prints their largest difference.
"""

import time

import librosa
import numpy as np
import torch

from mmcourse.audio import mfcc

SETTINGS = {
    "sr": 8000,
    "n_mfcc": 13,
    "n_fft": 256,
    "hop_length": 80,
    "n_mels": 40,
    "htk": True,
    "mel_norm": None,
    "norm": "ortho",
    "center": True,
    "pad_mode": "reflect",
    "power": 2.0,
}


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    clips = np.random.default_rng(0).standard_normal((200, 4000)).astype(np.float32)
    batch = torch.from_numpy(clips)
    librosa.feature.mfcc(y=clips[0], **SETTINGS)  # warm up both
    mfcc(batch[:2], 8000)
    t_librosa = best_of(lambda: [librosa.feature.mfcc(y=c, **SETTINGS) for c in clips])
    t_ours = best_of(lambda: mfcc(batch, 8000))
    reference = np.stack([librosa.feature.mfcc(y=c, **SETTINGS) for c in clips])
    difference = np.abs(reference - mfcc(batch, 8000).numpy()).max()
    print(
        f"200 clips of 0.5 s at 8 kHz: librosa loop {t_librosa * 1e3:.1f} ms, batched mfcc "
        f"{t_ours * 1e3:.1f} ms, ratio {t_librosa / t_ours:.1f}x (torch threads: "
        f"{torch.get_num_threads()}), max |difference| {difference:.1e}"
    )


if __name__ == "__main__":
    main()
