"""
A stand-in for kernel OpenZFS 2.2's ``zfs`` and ``zpool`` commands, for
machines without the kernel module (this one runs zfs-fuse).

Installed by :func:`install` as executables named ``zfs`` and ``zpool`` in a
directory put first on ``PATH``, it answers as OpenZFS 2.2 documents
(``zfs(8)``, ``zfs-send(8)``, ``zfs-receive(8)``, ``zpool-get(8)``) for what
Flocker asks: the usage text (``zfs`` alone, exit 2), ``zfs version``,
``zpool get -H -o property,value all POOL``, and ``zfs send`` / ``zfs
receive`` option checking: an option the command does not have is refused
as OpenZFS refuses it (``invalid option 'q'`` and the usage, exit 2).  A send
writes a plain stream's BEGIN record and a small marker naming its options;
a receive reads its input.
Every command line is appended to the file named by ``$FAKE_ZFS_LOG`` as a
JSON list.

Test tooling, not product code.
"""

import json
import os
import struct
import sys

__all__ = ["install", "USAGE", "VERSION", "POOL_PROPERTIES"]

#: What OpenZFS 2.2's ``zfs`` prints (on stderr) without a command.
USAGE = """\
usage: zfs command args ...
where 'command' is one of the following:

\tversion

\tcreate [-Pnpuv] [-o property=value] ... <filesystem>
\tcreate [-Pnpsv] [-b blocksize] [-o property=value] ... -V <size> <volume>
\tdestroy [-fnpRrv] <filesystem|volume>
\tdestroy [-dnpRrv] <filesystem|volume>@<snap>[%<snap>][,...]
\tdestroy <filesystem|volume>#<bookmark>

\tsnapshot [-r] [-o property=value] ... <filesystem|volume>@<snap> ...
\trollback [-rRf] <snapshot>
\tclone [-p] [-o property=value] ... <snapshot> <filesystem|volume>
\tpromote <clone-filesystem>
\trename [-f] <filesystem|volume|snapshot> <filesystem|volume|snapshot>
\trename -p [-f] <filesystem|volume> <filesystem|volume>
\trename -u [-f] <filesystem> <filesystem>
\trename -r <snapshot> <snapshot>
\tbookmark <snapshot|bookmark> <newbookmark>
\tprogram [-jn] [-t <instruction limit>] [-m <memory limit (b)>]
\t    <pool> <program file> [lua args...]

\tlist [-Hp] [-r|-d max] [-o property[,...]] [-s property]...
\t    [-S property]... [-t type[,...]] [filesystem|volume|snapshot] ...

\tset [-u] <property=value> ... <filesystem|volume|snapshot> ...
\tget [-rHp] [-d max] [-o "all" | field[,...]]
\t    [-t type[,...]] [-s source[,...]]
\t    <"all" | property[,...]> [filesystem|volume|snapshot|bookmark] ...
\tinherit [-rS] <property> <filesystem|volume|snapshot> ...
\tupgrade [-v]
\tupgrade [-r] [-V version] <-a | filesystem ...>

\tmount
\tmount [-flvO] [-o opts] <-a | filesystem>
\tunmount [-fu] <-a | filesystem|mountpoint>
\tshare [-l] <-a [nfs|smb] | filesystem>
\tunshare <-a [nfs|smb] | filesystem|mountpoint>

\tsend [-DLPbcehnpsVvw] [-i|-I snapshot]
\t     [-R [-X dataset[,dataset]...]]     <snapshot>
\tsend [-DnVvPLecw] [-i snapshot|bookmark] <filesystem|volume|snapshot>
\tsend [-DnPpVvLec] [-i bookmark|snapshot] --redact <bookmark> <snapshot>
\tsend [-nVvPe] -t <receive_resume_token>
\tsend [-PnVv] --saved filesystem
\treceive [-vMnsFhu] [-o <property>=<value>] ... [-x <property>] ...
\t    <filesystem|volume|snapshot>
\treceive [-vMnsFhu] [-o <property>=<value>] ... [-x <property>] ... 
\t    [-d | -e] <filesystem>
\treceive -A <filesystem|volume>

\thold [-r] <tag> <snapshot> ...
\tholds [-rHp] <snapshot> ...
\trelease [-r] <tag> <snapshot> ...
\tdiff [-FHth] <snapshot> [snapshot|filesystem]
\twait [-t <activity>] <filesystem>

Each dataset is of the form: pool/[dataset/]*dataset[@name]

For the property list, run: zfs set|get

For the delegated permission list, run: zfs allow|unallow

For further help on a command or topic, run: zfs help [<topic>]
"""

#: ``zfs version`` of Debian 13's zfsutils-linux with its module loaded.
VERSION = "zfs-2.2.2-1\nzfs-kmod-2.2.2-1\n"

#: Part of ``zpool get -H -o property,value all POOL`` on a pool created by
#: OpenZFS 2.2 with its defaults.
POOL_PROPERTIES = (
    "size\t9.50G\ncapacity\t0%\nhealth\tONLINE\nfree\t9.50G\n"
    "feature@async_destroy\tenabled\nfeature@empty_bpobj\tactive\n"
    "feature@lz4_compress\tactive\nfeature@embedded_data\tactive\n"
    "feature@bookmarks\tenabled\nfeature@large_blocks\tenabled\n"
    "feature@encryption\tenabled\nfeature@redaction_bookmarks\tenabled\n")

# Single-letter options each subcommand takes, and those taking a value.
_OPTIONS = {
    "send": ("DLPbcehnpsVvwRt", "iIX"),
    "receive": ("vMnsFhudeA", "ox"),
}


def _fail(message, code):
    sys.stderr.write(message)
    sys.exit(code)


def _check_options(command, args):
    flags, with_value = _OPTIONS[command]
    index = 0
    while index < len(args) and args[index].startswith("-"):
        word = args[index]
        for position, letter in enumerate(word[1:]):
            if letter in with_value:
                if position != len(word) - 2 or index + 1 >= len(args):
                    _fail("missing argument for '%s' option\n" % (letter,), 2)
                index += 1
                break
            if letter not in flags:
                _fail("invalid option '%s'\nusage:\n%s" % (
                    letter, "".join(line + "\n" for line in USAGE.splitlines()
                                    if line.startswith("\t" + command))), 2)
        index += 1
    return args[index:]


def _zfs(args):
    if not args:
        _fail(USAGE, 2)
    command, rest = args[0], args[1:]
    if command == "version":
        sys.stdout.write(VERSION)
        return
    if command == "send":
        operands = _check_options("send", rest)
        if len(operands) != 1:
            _fail("missing snapshot argument\n", 2)
        # A plain stream's BEGIN record (what receivers check first),
        # then a marker naming the options.
        sys.stdout.buffer.write(struct.pack(
            "<IIQQQIIQQ256s", 0, 0, 0x2F5BACBAC, 1, 0, 2, 0, 1,
            1 if "-i" in rest else 0, operands[0].encode("utf-8")))
        sys.stdout.buffer.write(
            b"OPENZFS-STREAM " + json.dumps(rest).encode("utf-8") + b"\n")
        return
    if command in ("receive", "recv"):
        operands = _check_options("receive", rest)
        if len(operands) != 1:
            _fail("missing snapshot argument\n", 2)
        sys.stdin.buffer.read()
        return
    if command in ("hold", "release"):
        _hold(command, rest)
        return
    _fail("unrecognized command '%s'\n" % (command,), 2)


#: Where the holds live between commands (next to the command log).
_HOLDS = None


def _hold(command, rest):
    """
    ``zfs hold TAG SNAPSHOT`` / ``zfs release TAG SNAPSHOT``, kept in a
    JSON file, refusing as OpenZFS does (libzfs's words): a tag already on
    the snapshot, a tag not on it, something that is not a snapshot.
    """
    if len(rest) != 2 or rest[0].startswith("-"):
        _fail("missing tag or snapshot argument\n", 2)
    tag, snapshot = rest
    verb = "hold snapshot" if command == "hold" else \
        "release hold from snapshot"
    if "@" not in snapshot:
        _fail("'%s' is not a snapshot\n" % (snapshot,), 1)
    try:
        with open(_HOLDS) as f:
            holds = json.load(f)
    except OSError:
        holds = {}
    tags = holds.setdefault(snapshot, [])
    if command == "hold":
        if tag in tags:
            _fail("cannot %s '%s': tag already exists on this dataset\n"
                  % (verb, snapshot), 1)
        tags.append(tag)
    else:
        if tag not in tags:
            _fail("cannot %s '%s': no such tag on this dataset\n"
                  % (verb, snapshot), 1)
        tags.remove(tag)
    with open(_HOLDS, "w") as f:
        json.dump(holds, f)


def _zpool(args):
    if args[:5] == ["get", "-H", "-o", "property,value", "all"]:
        sys.stdout.write(POOL_PROPERTIES)
        return
    _fail("unrecognized command '%s'\n" % (" ".join(args),), 2)


def install(directory, log):
    """
    Write ``zfs`` and ``zpool`` executables into ``directory`` that run this
    module.

    :param str directory: An existing directory (put it first on ``PATH``).
    :param str log: File the commands' argument vectors are appended to.
    """
    for name in ("zfs", "zpool"):
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write("#!%s\nimport sys\nsys.path.insert(0, %r)\n"
                    "import _fake_openzfs\n_fake_openzfs.main(%r, %r)\n" % (
                        sys.executable, os.path.dirname(__file__), name,
                        log))
        os.chmod(path, 0o755)


def main(name, log):
    """
    Run as ``name`` (``zfs`` or ``zpool``), logging to ``log``.
    """
    global _HOLDS
    _HOLDS = log + ".holds"
    args = sys.argv[1:]
    with open(log, "a") as f:
        f.write(json.dumps([name] + args) + "\n")
    (_zfs if name == "zfs" else _zpool)(args)
