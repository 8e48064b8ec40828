"""
The agent's small state files: a JSON list kept beside the deploy lock
(what the agent was last told, so that a restarted agent goes on with it
before the next deploy), read whole and replaced atomically.
"""

import json
import os

from .._serialize import SerializationError

__all__ = ["load_list", "save_list"]


def load_list(path):
    """
    :param str path: The file.
    :return: The JSON list it holds; empty when there is no file.
    :raises SerializationError: The file is not a JSON list.
    """
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise SerializationError("%s: %s" % (path, e))
    if not isinstance(data, list):
        raise SerializationError("%s: not a list" % (path,))
    return data


def save_list(path, items):
    """
    Replace the file with ``items``: written beside it, then renamed over
    it, so a reader (or a crash) never sees half a file.

    :param str path: The file (its directory is created when needed).
    :param list items: JSON-compatible values.
    """
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    temporary = path + ".new"
    with open(temporary, "w") as f:
        json.dump(list(items), f)
    os.replace(temporary, path)
