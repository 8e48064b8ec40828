"""
A running container's ``/etc/hosts``, rewritten in place when the names of
its project change (see :mod:`flocker.node._names`), so that adding or
removing a service changes the other containers' names without recreating
them.

Docker writes the file when it creates (and at each start of) the
container, from its ``ExtraHosts``, and bind-mounts it at ``/etc/hosts``.
The node reaches it through ``/proc/PID/root``, the container's root as its
process sees it, and rewrites it in place (the bind mount keeps the inode):
every line of an address of ``127.128.0.0/9`` (the names' addresses) is
Flocker's and replaced, every other line (Docker's own, and the compose
file's ``extra_hosts``) is kept.
"""

import os

from ._names import NAME_NETWORK

__all__ = ["hosts_with_names", "write_container_hosts"]


def _is_name_address(address):
    parts = address.split(".")
    if len(parts) != 4 or not all(part.isdigit() for part in parts):
        return False
    first, second = NAME_NETWORK
    return int(parts[0]) == first and int(parts[1]) >= second


def hosts_with_names(text, links):
    """
    :param str text: A hosts file.
    :param links: The application's links; its named links give the names.
    :return: ``text`` with the lines of the names' addresses replaced by
        one ``ADDRESS NAME`` line per named link's name, sorted by name.
    """
    kept = [line for line in text.splitlines()
            if not (line.split() and _is_name_address(line.split()[0]))]
    names = sorted({(link.alias, link.address) for link in links
                    if link.named})
    return "".join(line + "\n" for line in kept + [
        "%s\t%s" % (address, alias) for alias, address in names])


def write_container_hosts(pid, links, proc="/proc"):
    """
    Rewrite the hosts file of the container whose process is ``pid``.

    A small local file written in place, as Docker itself does; the bind
    mount into the container must keep its inode, so the file is
    truncated and written rather than replaced.

    :param int pid: The container's process, as the node sees it.
    :param links: The application's links (see :func:`hosts_with_names`).
    :param str proc: Where ``/proc`` is (tests give a directory of their
        own).
    :raises OSError: If the file cannot be read or written.
    """
    path = os.path.join(proc, str(pid), "root", "etc", "hosts")
    with open(path, "r+", encoding="utf-8") as f:
        wanted = hosts_with_names(f.read(), links)
        f.seek(0)
        f.write(wanted)
        f.truncate()
