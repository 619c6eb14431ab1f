"""How llama.cpp's OpenMP threads wait: briefly spinning, then sleeping.

llama.cpp's CPU backend is built with OpenMP. Its threads meet at a barrier after every operation
(hundreds per token): with ``OMP_WAIT_POLICY=PASSIVE`` each barrier is a sleep and a wake-up, and
two threads decode a token in ~42 ms instead of ~11 (8 prompt tokens: 89 ms instead of 32; the
README's knobs table). So the workers spin at a barrier, but only ``GOMP_SPINCOUNT`` times, then
sleep: between prompts they leave the cores to STT and TTS. The runtime reads the variable once,
when the library loads, so every process that loads llama.cpp sets it before that, with
``os.environ.setdefault(SPIN_VAR, SPIN_COUNT)`` (an operator's explicit value wins).
"""

from __future__ import annotations

SPIN_VAR = "GOMP_SPINCOUNT"
SPIN_COUNT = "20000"
