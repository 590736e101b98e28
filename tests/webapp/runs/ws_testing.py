"""Channels' WebsocketCommunicator without daphne.

`channels.testing/__init__.py` imports daphne for ChannelsLiveServerTestCase, which these tests do not
use (and daphne would pull in Twisted); its websocket communicator needs only asgiref. When daphne is
missing, the package is registered bare and its modules are imported as they are.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import channels

try:
    import channels.testing
except ModuleNotFoundError:
    package = types.ModuleType("channels.testing")
    package.__path__ = [str(Path(channels.__file__).parent / "testing")]
    sys.modules["channels.testing"] = package

from channels.testing.websocket import WebsocketCommunicator

__all__ = ["WebsocketCommunicator"]
