"""How llama.cpp's OpenMP threads wait at a barrier: they sleep at once (no spinning).

llama.cpp's CPU backend is built with OpenMP. Its threads meet at a barrier after every operation
(hundreds per token). A spinning thread waits for its partner by burning its core; when the
partner has been descheduled (STT, TTS, or any other process on the 2 cores) it burns its whole
time slice, and the next barrier does it again: with ``GOMP_SPINCOUNT=20000`` (the old default)
and two prompt threads, time to first token on the shared 2-core development machine was
18.6 s at p50 against 1.0 s with sleeping threads, and 2000 spins still gave a p95 of 8.4 s
(``python -m benchmarks.llm --hog``; README, knobs). On a quiet machine a sleeping barrier costs
a futex wake-up per operation, which is why tokens are generated on one thread (no barrier at
all) and only prompts are evaluated on two.

The runtime reads the variables once, when the library loads, so every process that loads
llama.cpp sets them before that, with ``os.environ.setdefault(SPIN_VAR, SPIN_COUNT)`` (and the
same for ``WAIT_VAR``; an operator's explicit values win, and in libgomp an explicit
``GOMP_SPINCOUNT`` wins over the wait policy). ``GOMP_SPINCOUNT=0`` alone is already passive.
"""

from __future__ import annotations

SPIN_VAR = "GOMP_SPINCOUNT"
SPIN_COUNT = "0"
WAIT_VAR = "OMP_WAIT_POLICY"
WAIT_POLICY = "PASSIVE"
