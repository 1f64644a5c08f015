"""A Genesys Cloud API emulator: real HTTP paths, bodies, limits, 429s and faults, over a
deterministic synthetic contact centre. See README.md ("The Genesys Cloud emulator")."""

from .config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, EmulatorConfig
from .server import EmulatorServer

__all__ = ["DEMO_CLIENT_ID", "DEMO_CLIENT_SECRET", "EmulatorConfig", "EmulatorServer"]
