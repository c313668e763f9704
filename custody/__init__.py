"""custody: evidence preservation and chain-of-custody toolkit (library).

The library never imports click or tqdm; progress is reported through callbacks.
"""

__version__ = "0.1.0"

TOOL_NAME = "custody"
