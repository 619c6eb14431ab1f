"""Keep per-frame SDK callbacks out of every room's event queue (``livekit`` rtc 1.2.x).

The SDK's native side reports every event on one thread to one Python fan-out
(``FfiClient.instance.queue``): each subscriber's filter runs and a matching event is handed
to the subscriber's event loop (``call_soon_threadsafe``). A connected ``rtc.Room`` subscribes
to every event but the media streams' own, so each ``AudioSource.capture_frame`` callback, one
per captured frame of every room of the process, also wakes every room's listen task, which
then drops it: O(rooms) Python work per frame, O(rooms²) per second, all under the GIL. At 20
rooms that is 20 x 20 x 50 wake-ups a second while the agents speak.

:func:`quiet_room` narrows a connected room's subscription to what a room handles (room events,
RPC and the callbacks its participants wait for): it also leaves out ``capture_audio_frame``
callbacks (the capture that asked for one has a subscription of its own). It reaches into two
private attributes of the SDK (``Room._ffi_queue``, ``FfiQueue._subscribers``); when they are
not there (another SDK version) it changes nothing and logs a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from livekit import rtc
from livekit.rtc._ffi_client import FfiClient

log = logging.getLogger(__name__)
PER_FRAME = frozenset({"capture_audio_frame", "audio_stream_event", "video_stream_event"})


def _room_events(original: Callable[[Any], bool] | None) -> Callable[[Any], bool]:
    def wanted(event: Any) -> bool:
        if event.WhichOneof("message") in PER_FRAME:
            return False
        return original is None or bool(original(event))

    return wanted


def quiet_room(room: rtc.Room) -> bool:
    """Leave per-frame callbacks out of ``room``'s subscription (call it once the room is
    connected); True when it did."""
    queue = getattr(room, "_ffi_queue", None)
    fan_out = FfiClient.instance.queue
    subscribers = getattr(fan_out, "_subscribers", None)
    lock = getattr(fan_out, "_lock", None)
    if queue is not None and isinstance(subscribers, list) and lock is not None:
        with lock:
            for i, entry in enumerate(subscribers):
                if isinstance(entry, tuple) and len(entry) == 3 and entry[0] is queue:
                    subscribers[i] = (entry[0], entry[1], _room_events(entry[2]))
                    return True
    log.warning(
        "livekit: cannot narrow a room's FFI subscription (SDK internals changed): every room "
        "sees every frame's capture callback"
    )
    return False
