"""``serfcast demo``: a pool on this machine, and one event spreading through it.

:mod:`.options` checks what was asked, :mod:`.pool` runs the serfcast members
and :mod:`.agents` the real serf agents, :mod:`.timeline` draws the spread as
text and :mod:`.screen` puts it on the terminal; :mod:`.run` holds the steps.
"""

from serfcast.demo.options import DemoOptions
from serfcast.demo.run import run_demo

__all__ = ["DemoOptions", "run_demo"]
