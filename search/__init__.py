"""TradeTune's service: sweeps, studies and their results (see README "Layout").

The library prints nothing: what it has to say while it works goes to a ``progress`` callback
or to the ``tradetune`` logger, which has no output of its own until the program that uses the
library gives it one (the ``tradetune`` command prints it on stderr).
"""
import logging

logging.getLogger("tradetune").addHandler(logging.NullHandler())
