"""Load and validate the TOML config and the master files it names.

Every error names the file, the line and the key, and says what was expected, before
anything is served. Paths in the config are relative to the config file. One module per
section; ``reader`` holds what they share.
"""

from dynserver.config.edit import Document, Editor
from dynserver.config.loader import load, load_text
from dynserver.config.reader import parse_name
from dynserver.config.server import parse_listener
from dynserver.config.web import ENV_HASH, ENV_TOKEN
from dynserver.model import Config

__all__ = [
    "ENV_HASH",
    "ENV_TOKEN",
    "Config",
    "Document",
    "Editor",
    "load",
    "load_text",
    "parse_listener",
    "parse_name",
]
