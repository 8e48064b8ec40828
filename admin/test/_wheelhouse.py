"""
A wheelhouse of what is already on this machine: the distributions a
requirement needs, packed back into wheels from the environment they are
installed in, so that ``pip install --no-index --find-links`` can install
Flocker's wheel into a fresh environment without reaching any package
index.

An installed distribution keeps, in its ``.dist-info``, the tags of the
wheel it came from (``WHEEL``), its metadata, entry points and the list of
its files (``RECORD``); the files under the environment's ``site-packages``
and those metadata make the wheel again.  Files installed elsewhere (the
console scripts in ``bin/``, which pip writes anew from the entry points)
are left out.

Test tooling, not product code.
"""

import base64
import csv
import hashlib
import io
import os
import zipfile
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

__all__ = ["closure", "pack", "wheelhouse"]


def closure(requirements):
    """
    The installed distributions that ``requirements`` need, transitively,
    with the extras they ask for (environment markers evaluated here).

    :param requirements: Requirement strings (PEP 508).
    :return: ``dict`` of canonical name to ``importlib.metadata``
        distribution.
    :raises LookupError: If one is not installed.
    """
    found = {}
    seen = set()
    # Each requirement with the extras its markers are evaluated against
    # (those its parent was asked for).
    pending = [(Requirement(text), ("",)) for text in requirements]
    while pending:
        requirement, extras = pending.pop()
        if requirement.marker is not None and not any(
                requirement.marker.evaluate({"extra": extra})
                for extra in extras):
            continue
        name = canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            distribution = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            raise LookupError("%s is not installed here" % (requirement,))
        found[name] = distribution
        for text in distribution.requires or ():
            pending.append((Requirement(text),
                            ("",) + tuple(requirement.extras)))
    return found


def _digest(data):
    return "sha256=" + base64.urlsafe_b64encode(
        hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def pack(distribution, directory):
    """
    Write ``distribution`` (installed) back into a wheel in ``directory``.

    :return: The wheel's path.
    """
    info = distribution.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in info.splitlines()
            if line.startswith("Tag:")] or ["py3-none-any"]
    # A wheel with several tags names them joined by dots, per part.
    parts = list(zip(*(tag.split("-") for tag in tags)))
    tag = "-".join(".".join(sorted(set(part))) for part in parts)
    name = distribution.metadata["Name"].replace("-", "_")
    version = distribution.version
    path = os.path.join(directory, "%s-%s-%s.whl" % (name, version, tag))
    root = str(distribution.locate_file(""))
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    record_name = None
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for entry in distribution.files or ():
            relative = str(entry)
            if relative.startswith(".."):
                continue
            if relative.endswith(".dist-info/RECORD"):
                record_name = relative
                continue
            full = os.path.join(root, relative)
            if not os.path.isfile(full) or "__pycache__" in relative:
                continue
            with open(full, "rb") as f:
                data = f.read()
            wheel.writestr(relative, data)
            writer.writerow([relative, _digest(data), len(data)])
        if record_name is None:
            raise LookupError("%s has no RECORD" % (name,))
        writer.writerow([record_name, "", ""])
        wheel.writestr(record_name, record.getvalue())
    return path


def wheelhouse(requirements, directory):
    """
    Pack every installed distribution ``requirements`` need into
    ``directory``.

    :return: The wheels' paths.
    """
    return [pack(distribution, directory)
            for distribution in closure(requirements).values()]
