"""The async side of ``conode.Events``: waits for the next event in the running loop's default
executor, in short slices, so that a cancelled task or a closing loop never leaves a thread blocked
on a node that has nothing to say."""

import asyncio
from typing import Any, Dict


async def next_event(events: Any) -> Dict[str, Any]:
    loop = asyncio.get_running_loop()
    while True:
        event = await loop.run_in_executor(None, events._wait_slice)
        if event is not None:
            return event  # type: ignore[no-any-return]
