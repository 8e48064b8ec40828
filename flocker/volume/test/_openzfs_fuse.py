"""
Kernel OpenZFS 2.2's ``zfs`` and ``zpool`` played over the real zfs-fuse,
for testing the push path where the pools hold real data but no kernel
module is available.

Installed by :func:`install` as ``zfs`` and ``zpool`` in a directory put
first on ``PATH``, every command is passed to the real zfs-fuse command
except what OpenZFS has and zfs-fuse lacks, which is played as OpenZFS
documents it (``zfs-send(8)``, ``zfs-receive(8)``, ``zfs-bookmark(8)``,
``zfs-destroy(8)``, ``zfsprops(7)``):

* detection: the usage text, ``zfs version`` and the pool's feature flags
  are :mod:`_fake_openzfs`'s (OpenZFS 2.2);
* ``zfs receive -s``: a stream cut short leaves the receiving dataset with
  a ``receive_resume_token`` property (read by ``zfs get``; a new dataset
  so received exists, without snapshots); ``zfs send -t TOKEN`` writes a
  resuming stream (its BEGIN record flagged ``RESUMING`` with a payload,
  then only what the receiver did not get); ``zfs send -nvP -t TOKEN``
  prints the token's contents and what it would send, or refuses a token
  whose snapshot is gone; ``zfs receive -s`` applies the resuming stream
  onto the saved state; ``zfs receive -A`` discards the state; any other
  receive into it is refused as OpenZFS refuses it;
* ``zfs bookmark SNAPSHOT BOOKMARK``; ``zfs send -i #BOOKMARK`` (or
  ``-i POOL/FS#BOOKMARK``) sends what changed since the bookmarked
  snapshot, also after that snapshot was destroyed; ``zfs destroy
  FS#BOOKMARK``; bookmarks are listed by ``zfs get`` (type ``bookmark``);
* ``zfs receive -o PROPERTY=VALUE`` (set after the receive) and ``-x
  PROPERTY`` (the stream check keeps properties out already), ``zfs send
  -L/-e/-c`` (no difference to what is received) are accepted.

What the stand-in keeps between commands (saved receive state, bookmarks)
is in a directory next to the command log.  A destroyed snapshot that a
bookmark names is kept by the real zfs-fuse under a hidden name
(``fakebm-...``) that listings leave out: that is what an OpenZFS bookmark
keeps of it (enough to send from).

Test tooling, not product code.
"""

import binascii
import json
import os
import struct
import subprocess
import sys
import zlib

try:
    from ._fake_openzfs import (
        POOL_PROPERTIES, USAGE, VERSION, _check_options, _fail,
    )
except ImportError:
    # Run as the installed executables: this directory is on sys.path.
    from _fake_openzfs import (
        POOL_PROPERTIES, USAGE, VERSION, _check_options, _fail,
    )

__all__ = ["install", "RESUMING"]

#: ``DMU_BACKUP_FEATURE_RESUMING``: a stream that resumes a receive.
RESUMING = 1 << 20

# The BEGIN record's layout (see flocker.volume._stream).
_BEGIN = "<IIQQQIIQQ256s"
_BEGIN_SIZE = 312
_HIDDEN = "fakebm-"

# Set by main().
_REAL = None
_STATE = None


def _real(argv, stdin=None, capture=True, data=None):
    """
    Run the real zfs-fuse command.
    """
    return subprocess.run(
        [os.path.join(_REAL, argv[0])] + list(argv[1:]), input=data,
        stdin=stdin if data is None else None,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None)


def _state_file(kind):
    return os.path.join(_STATE, kind + ".json")


def _load(kind):
    try:
        with open(_state_file(kind)) as f:
            return json.load(f)
    except OSError:
        return {}


def _save(kind, value):
    with open(_state_file(kind), "w") as f:
        json.dump(value, f)


def _exists(name):
    return _real(["zfs", "list", "-H", "-o", "name", name]).returncode == 0


def _guid(name):
    result = _real(["zfs", "get", "-H", "-p", "-o", "value", "guid", name])
    return int(result.stdout.split()[0]) if result.returncode == 0 else None


def _token(contents):
    """
    A resume token as OpenZFS writes one: version, checksum, length and
    the compressed contents, hexadecimal.
    """
    packed = json.dumps(contents, sort_keys=True).encode("utf-8")
    compressed = zlib.compress(packed)
    return "1-%x-%x-%s" % (zlib.crc32(compressed), len(packed),
                           binascii.hexlify(compressed).decode("ascii"))


def _untoken(token):
    try:
        version, checksum, length, data = token.split("-")
        compressed = binascii.unhexlify(data)
        if version != "1" or zlib.crc32(compressed) != int(checksum, 16):
            raise ValueError(token)
        contents = json.loads(zlib.decompress(compressed))
        if len(json.dumps(contents, sort_keys=True)) != int(length, 16):
            raise ValueError(token)
        return contents
    except (ValueError, TypeError, zlib.error, binascii.Error):
        _fail("cannot resume send: resume token is corrupt\n", 1)


def _hidden(snapshot):
    dataset, _, name = snapshot.partition("@")
    return "%s@%s%s" % (dataset, _HIDDEN, name)


def _source_name(dataset, base):
    """
    The real snapshot an ``-i`` argument names (a bookmark's kept
    snapshot, for a bookmark).
    """
    if "#" in base:
        owner, _, mark = base.partition("#")
        marks = _load("bookmarks")
        key = "%s#%s" % (owner or dataset, mark)
        if key not in marks:
            _fail("cannot send '%s': bookmark '%s' does not exist\n" % (
                dataset, key), 1)
        snapshot = marks[key]["snapshot"]
        return snapshot if _exists(snapshot) else _hidden(snapshot)
    return base if "@" in base else "%s@%s" % (dataset, base.lstrip("@"))


def _send(rest):
    operands = _check_options("send", rest)
    if "-t" in rest or any(w.startswith("-") and "t" in w for w in rest
                           if not w.startswith("--")):
        return _send_resume(rest, operands)
    if len(operands) != 1:
        _fail("missing snapshot argument\n", 2)
    snapshot = operands[0]
    dataset = snapshot.partition("@")[0]
    argv = ["zfs", "send"]
    if "-i" in rest:
        argv += ["-i", _source_name(dataset, rest[rest.index("-i") + 1])]
    argv.append(snapshot)
    sys.stdout.flush()
    result = subprocess.run([os.path.join(_REAL, "zfs")] + argv[1:])
    sys.exit(result.returncode)


def _send_resume(rest, operands):
    if len(operands) != 1:
        _fail("missing resume token argument\n", 2)
    contents = _untoken(operands[0])
    toname = contents["toname"]
    guid = _guid(toname)
    if guid is None:
        _fail("cannot resume send: '%s' used in the initial send no longer "
              "exists\n" % (toname,), 1)
    if guid != contents["toguid"]:
        _fail("cannot resume send: '%s' is no longer the same snapshot used "
              "in the initial send\n" % (toname,), 1)
    fromname = None
    if contents.get("fromguid"):
        fromname = contents["fromname"]
        if _guid(_source_name(toname.partition("@")[0], fromname)) != \
                contents["fromguid"]:
            _fail("cannot resume send: incremental source %#x no longer "
                  "exists\n" % (contents["fromguid"],), 1)
    flags = "".join(w[1:] for w in rest if w.startswith("-"))
    if "n" in flags:
        out = sys.stdout
        if "v" in flags:
            out.write("resume token contents:\nnvlist version: 0\n")
            if fromname:
                out.write("\tfromguid = %#x\n" % (contents["fromguid"],))
            out.write("\tobject = 0x2\n\toffset = 0x0\n\tbytes = %#x\n"
                      "\ttoguid = %#x\n\ttoname = %s\n" % (
                          contents["bytes"], contents["toguid"], toname))
        if "P" in flags:
            if fromname:
                out.write("incremental\t%s\t%s\t%d\n" % (
                    fromname, toname, contents["bytes"]))
            else:
                out.write("full\t%s\t%d\n" % (toname, contents["bytes"]))
        return
    argv = ["send"]
    if fromname:
        argv += ["-i", _source_name(toname.partition("@")[0], fromname)]
    stream = _real(["zfs"] + argv + [toname])
    if stream.returncode:
        _fail(stream.stderr.decode("utf-8", "replace"), stream.returncode)
    data = stream.stdout
    fields = list(struct.unpack(_BEGIN, data[:_BEGIN_SIZE]))
    payload = json.dumps({"resume_object": 2, "resume_offset": 0}).encode(
        "ascii")
    payload += b"\0" * (-len(payload) % 8)
    fields[1] = len(payload)
    fields[3] |= RESUMING << 2
    sys.stdout.buffer.write(struct.pack(_BEGIN, *fields) + payload
                            + data[contents["bytes"]:])


def _receive(rest):
    if rest[:1] == ["-A"]:
        if len(rest) != 2:
            _fail("missing filesystem argument\n", 2)
        partial = _load("partial")
        if rest[1] not in partial:
            _fail("cannot resume receive: '%s' does not have any resumable "
                  "receive state to abort\n" % (rest[1],), 1)
        os.unlink(partial.pop(rest[1])["spool"])
        _save("partial", partial)
        return
    operands = _check_options("receive", rest)
    if len(operands) != 1:
        _fail("missing snapshot argument\n", 2)
    dataset = operands[0]
    flags = set()
    overrides = []
    index = 0
    while index < len(rest) - 1:
        word = rest[index]
        if word in ("-o", "-x"):
            if word == "-o":
                overrides.append(rest[index + 1])
            index += 2
            continue
        flags.update(word[1:])
        index += 1
    data = sys.stdin.buffer.read()
    partial = _load("partial")
    saved = partial.get(dataset)
    fields = struct.unpack(_BEGIN, data[:_BEGIN_SIZE]) \
        if len(data) >= _BEGIN_SIZE else None
    resuming = fields is not None and (fields[3] >> 2) & RESUMING
    if saved is not None:
        if not resuming:
            _fail("cannot receive new filesystem stream: destination %s "
                  "contains partially-complete state from \"zfs receive "
                  "-s\".\n" % (dataset,), 1)
        with open(saved["spool"], "rb") as f:
            prefix = f.read()
        data = prefix + data[_BEGIN_SIZE + fields[1]:]
    elif resuming:
        _fail("cannot receive resume stream: destination %s does not "
              "contain partially-complete state\n" % (dataset,), 1)
    argv = ["zfs", "receive"] + ["-" + f for f in sorted(flags & set("Fu"))]
    result = _real(argv + [dataset], data=data)
    if result.returncode:
        if "s" in flags and fields is not None and saved is None:
            _keep_partial(partial, dataset, data, fields)
        sys.stderr.write(result.stderr.decode("utf-8", "replace"))
        sys.exit(result.returncode)
    if saved is not None:
        os.unlink(partial.pop(dataset)["spool"])
        _save("partial", partial)
    for assignment in overrides:
        _real(["zfs", "set", assignment, dataset])


def _keep_partial(partial, dataset, data, fields):
    """
    Save what a cut-short ``zfs receive -s`` got, as its resume token says.
    """
    toname = fields[9].split(b"\0", 1)[0].decode("utf-8")
    contents = {"toname": toname, "toguid": fields[7], "bytes": len(data)}
    if fields[8]:
        source = toname.partition("@")[0]
        contents["fromguid"] = fields[8]
        contents["fromname"] = _name_of_guid(source, fields[8])
    spool = os.path.join(_STATE, "spool-%d" % (len(os.listdir(_STATE)),))
    with open(spool, "wb") as f:
        f.write(data)
    partial[dataset] = {"token": _token(contents), "spool": spool,
                        "new": not _exists(dataset)}
    _save("partial", partial)


def _name_of_guid(dataset, guid):
    """
    The snapshot (or bookmark) of the sending ``dataset`` with ``guid``,
    as ``zfs send -t`` finds it again.
    """
    listed = _real(["zfs", "get", "-H", "-p", "-d", "1", "-o", "name,value",
                    "guid", dataset])
    for line in listed.stdout.decode("utf-8").splitlines():
        name, _, value = line.partition("\t")
        if "@" in name and int(value) == guid:
            return name.replace("@" + _HIDDEN, "@")
    for key, mark in _load("bookmarks").items():
        if mark["guid"] == guid:
            return key
    return "%s@?" % (dataset,)


def _bookmark(rest):
    if len(rest) != 2 or "@" not in rest[0] or "#" not in rest[1]:
        _fail("usage:\n\tbookmark <snapshot|bookmark> <newbookmark>\n", 2)
    snapshot, mark = rest
    if mark.startswith("#"):
        mark = snapshot.partition("@")[0] + mark
    guid = _guid(snapshot)
    if guid is None:
        _fail("cannot create bookmark '%s': dataset does not exist\n" % (
            snapshot,), 1)
    marks = _load("bookmarks")
    if mark in marks:
        _fail("cannot create bookmark '%s': bookmark exists\n" % (mark,), 1)
    marks[mark] = {"snapshot": snapshot, "guid": guid}
    _save("bookmarks", marks)


def _destroy(rest):
    target = rest[-1] if rest else ""
    marks = _load("bookmarks")
    if "#" in target:
        if target not in marks:
            _fail("cannot destroy '%s': bookmark does not exist\n" % (
                target,), 1)
        snapshot = marks.pop(target)["snapshot"]
        _save("bookmarks", marks)
        if not any(m["snapshot"] == snapshot for m in marks.values()) and \
                _exists(_hidden(snapshot)):
            _real(["zfs", "destroy", _hidden(snapshot)])
        return
    if "@" in target and any(m["snapshot"] == target
                             for m in marks.values()):
        # Destroyed, but what its bookmark needs is kept (hidden).
        result = _real(["zfs", "rename", target, _hidden(target)])
    else:
        result = _real(["zfs", "destroy"] + rest)
        if result.returncode == 0 and "@" not in target:
            for key in [k for k in marks if k.partition("#")[0] == target]:
                del marks[key]
            _save("bookmarks", marks)
    sys.stderr.write(result.stderr.decode("utf-8", "replace"))
    sys.exit(result.returncode)


def _get(rest):
    """
    ``zfs get``, with ``receive_resume_token`` and bookmarks as OpenZFS
    lists them, and the snapshots bookmarks keep left out.
    """
    args = list(rest)
    fields = ["name", "property", "value", "source"]
    if "-o" in args:
        fields = args[args.index("-o") + 1].split(",")
    index = 0
    while index < len(args) and args[index].startswith("-"):
        index += 2 if args[index] in ("-o", "-d", "-s", "-t") else 1
    asked = args[index].split(",") if index < len(args) else []
    wanted = [p for p in asked if p != "receive_resume_token"]
    args[index] = ",".join(wanted or ["type"])
    result = _real(["zfs", "get"] + args)
    rows = []
    names = []
    for line in result.stdout.decode("utf-8").splitlines():
        row = dict(zip(fields, line.split("\t")))
        name = row.get("name", "")
        if "@" + _HIDDEN in name:
            continue
        if "@" not in name and name not in names:
            names.append(name)
        if wanted:
            rows.append(row)
    partial = _load("partial")
    targets = args[index + 1:]
    for dataset, saved in partial.items():
        if saved["new"] and dataset not in names and any(
                dataset == t or dataset.startswith(t + "/") for t in targets):
            names.append(dataset)
            if "type" in wanted:
                rows.append({"name": dataset, "property": "type",
                             "value": "filesystem", "source": "-"})
    if "receive_resume_token" in asked:
        for name in names:
            rows.append({"name": name, "property": "receive_resume_token",
                         "value": partial.get(name, {}).get("token", "-"),
                         "source": "-"})
    for key, mark in _load("bookmarks").items():
        if key.partition("#")[0] in names:
            for prop in wanted:
                rows.append({"name": key, "property": prop, "source": "-",
                             "value": {"type": "bookmark",
                                       "guid": str(mark["guid"])}.get(
                                           prop, "-")})
    sys.stdout.write("".join(
        "\t".join(row.get(field, "-") for field in fields) + "\n"
        for row in rows))
    if not rows and result.returncode:
        sys.stderr.write(result.stderr.decode("utf-8", "replace"))
        sys.exit(result.returncode)


def _zfs(args):
    if not args:
        _fail(USAGE, 2)
    command, rest = args[0], args[1:]
    if command == "version":
        sys.stdout.write(VERSION)
    elif command == "send":
        _send(rest)
    elif command in ("receive", "recv"):
        _receive(rest)
    elif command == "bookmark":
        _bookmark(rest)
    elif command == "destroy":
        _destroy(rest)
    elif command == "get":
        _get(rest)
    else:
        result = subprocess.run([os.path.join(_REAL, "zfs")] + args)
        sys.exit(result.returncode)


def _zpool(args):
    if args[:5] == ["get", "-H", "-o", "property,value", "all"]:
        if _real(["zpool", "list", "-H", "-o", "name"] + args[5:]
                 ).returncode:
            _fail("cannot open '%s': no such pool\n" % (args[5:6] or [""])[0],
                  1)
        sys.stdout.write(POOL_PROPERTIES)
        return
    result = subprocess.run([os.path.join(_REAL, "zpool")] + args)
    sys.exit(result.returncode)


def install(directory, log, real):
    """
    Write ``zfs`` and ``zpool`` executables into ``directory``.

    :param str directory: An existing directory (put it first on ``PATH``).
    :param str log: File the commands' argument vectors are appended to;
        the stand-in's state is kept in ``log + ".state"``.
    :param str real: The directory of the real zfs-fuse ``zfs`` and
        ``zpool``.
    """
    os.makedirs(log + ".state", exist_ok=True)
    for name in ("zfs", "zpool"):
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write("#!%s\nimport sys\nsys.path.insert(0, %r)\n"
                    "import _openzfs_fuse\n_openzfs_fuse.main(%r, %r, %r)\n"
                    % (sys.executable, os.path.dirname(__file__), name, log,
                       real))
        os.chmod(path, 0o755)


def main(name, log, real):
    """
    Run as ``name`` (``zfs`` or ``zpool``).
    """
    global _REAL, _STATE
    _REAL, _STATE = real, log + ".state"
    args = sys.argv[1:]
    with open(log, "a") as f:
        f.write(json.dumps([name] + args) + "\n")
    (_zfs if name == "zfs" else _zpool)(args)
