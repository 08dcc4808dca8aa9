"""Fire one event without joining: the blocking-socket driver and the Python API.

:func:`fire_event_sync` runs :mod:`serfcast.fire`'s plan with plain blocking
sockets: a TCP push/pull with the first seed that answers, then the event over
TCP to a few members and over UDP, from one socket, to many more. Everything
that can be checked is checked before the first byte goes out, and the event is
built only once a seed has answered, so a failure leaves nothing half-sent.
:func:`fire_event` is the same for async code (trio or asyncio), run in a
worker thread.

The package holds the results and errors (:mod:`.results`), asking the seeds
(:mod:`.seeds`), sending the event (:mod:`.send`) and the public functions
(:mod:`.api`). This path deliberately imports no async library, nor even
:mod:`logging`: a one-shot command should start as fast as Python can.
Everything that happened is in the result's warnings or the error's list of
seed failures; debug lines go to the ``serfcast.fire`` logger only when the
application has imported logging itself.
"""

from serfcast.oneshot.api import DEFAULT_JOIN, fire_event, fire_event_sync, make_keyring
from serfcast.oneshot.results import FireResult, NoSeedError, SeedFailure, WrongKeyError
from serfcast.oneshot.seeds import learn_pool
from serfcast.oneshot.send import deliver, fire

__all__ = [
    "DEFAULT_JOIN",
    "FireResult",
    "NoSeedError",
    "SeedFailure",
    "WrongKeyError",
    "deliver",
    "fire",
    "fire_event",
    "fire_event_sync",
    "learn_pool",
    "make_keyring",
]
