"""
The lab's Docker images, built from Debian packages on this machine.

There is no registry to pull from, so the lab builds two small root file
systems itself and imports them into Docker:

``flocker/busybox:latest``
    ``busybox-static``: ``/bin/busybox``, one symlink per applet (``sh``,
    ``httpd``, ``nc``, ...), ``/etc/passwd``, ``/etc/group`` and
    ``/www/index.html``.

``flocker/redis:latest``
    Debian's ``redis-server`` and ``redis-cli`` binaries plus exactly the
    shared libraries ``ldd`` lists for them; it runs
    ``redis-server --dir /data --appendonly yes --protected-mode no``.

``docker import`` stamps the creation time into the image, so importing on
each node would give every node a different image ID.  Instead the images are
imported once, saved (``docker save`` format, one tarball) into a cache in
the lab's state directory, and ``docker load``-ed on every node: the same IDs
everywhere, and later ``up`` runs skip the build.  The cache is rebuilt when
the source binaries change.

Docker is spoken to through its HTTP API over the node's Unix socket (no
``docker`` command-line client needed).
"""

import hashlib
import http.client
import io
import json
import os
import socket
import subprocess
import tarfile
import time
import urllib.parse
from dataclasses import dataclass


class ImageError(Exception):
    """
    Building, importing or loading an image failed; the message is one line.
    """


class UnixHTTPConnection(http.client.HTTPConnection):
    """
    An HTTP connection over a Unix socket (the Docker API socket).
    """

    def __init__(self, path, timeout):
        """
        :param str path: The socket's path.
        :param float timeout: Seconds each socket operation may take.
        """
        http.client.HTTPConnection.__init__(self, "docker", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True)
class DockerAPI:
    """
    The few Docker Engine API calls the lab needs.

    :ivar str socket_path: The daemon's Unix socket.
    :ivar float timeout: Seconds any single socket operation may take.
    """
    socket_path: str
    timeout: float = 60.0

    def _request(self, method, path, body=None, headers=None):
        connection = UnixHTTPConnection(self.socket_path, self.timeout)
        try:
            connection.request(method, path, body=body,
                               headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def ping(self):
        """
        :return: ``True`` if the daemon answers ``/_ping`` with ``OK``.
        """
        try:
            status, body = self._request("GET", "/_ping")
        except OSError:
            return False
        return status == 200 and body.strip() == b"OK"

    def image_id(self, reference):
        """
        :param str reference: An image name such as ``flocker/redis:latest``.
        :return: The image ID (``sha256:...``) or ``None`` if absent.
        """
        status, body = self._request(
            "GET", "/images/%s/json" % (
                urllib.parse.quote(reference, safe=""),))
        if status == 404:
            return None
        if status != 200:
            raise ImageError("inspect %s: HTTP %d %s" % (
                reference, status, body[:200].decode("utf-8", "replace")))
        return json.loads(body)["Id"]

    def _stream_errors(self, status, body, what):
        if status != 200:
            raise ImageError("%s: HTTP %d %s" % (
                what, status, body[:200].decode("utf-8", "replace").strip()))
        for line in body.splitlines():
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "error" in message:
                raise ImageError("%s: %s" % (what, message["error"]))

    def import_rootfs(self, data, reference, changes):
        """
        ``docker import`` a root file system tarball.

        :param bytes data: The tarball.
        :param str reference: ``repository:tag`` to give it.
        :param list changes: Dockerfile instructions (``CMD [...]``, ...).
        :return: The new image ID.
        """
        repository, _, tag = reference.rpartition(":")
        query = urllib.parse.urlencode(
            [("fromSrc", "-"), ("repo", repository), ("tag", tag)]
            + [("changes", change) for change in changes])
        status, body = self._request(
            "POST", "/images/create?" + query, body=data,
            headers={"Content-Type": "application/x-tar"})
        self._stream_errors(status, body, "import " + reference)
        image = self.image_id(reference)
        if image is None:
            raise ImageError("import %s: image missing afterwards" % (
                reference,))
        return image

    def save(self, references, path):
        """
        ``docker save`` images into one file (written atomically).

        :param list references: The images.
        :param Path path: Where to write the tarball.
        """
        connection = UnixHTTPConnection(self.socket_path, self.timeout)
        partial = path.with_name(path.name + ".partial")
        try:
            connection.request("GET", "/images/get?" + urllib.parse.urlencode(
                [("names", reference) for reference in references]))
            response = connection.getresponse()
            if response.status != 200:
                raise ImageError("save %s: HTTP %d" % (
                    " ".join(references), response.status))
            with open(partial, "wb") as f:
                while True:
                    chunk = response.read(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
        finally:
            connection.close()
        os.replace(partial, path)

    def get_json(self, path):
        """
        :param str path: An API path (``/containers/json?all=1``).
        :return: The decoded JSON answer.
        :raises ImageError: On a non-200 answer.
        """
        status, body = self._request("GET", path)
        if status != 200:
            raise ImageError("GET %s: HTTP %d" % (path, status))
        return json.loads(body)

    def post_json(self, path, document, accept=(200, 201)):
        """
        POST a JSON document (``/containers/create?name=x``, say).

        :param str path: The API path.
        :param document: The body, as JSON-able values.
        :param tuple accept: HTTP statuses meaning success.
        :return: The decoded JSON answer (``None`` for an empty one).
        :raises ImageError: On another status.
        """
        status, body = self._request(
            "POST", path, body=json.dumps(document).encode("utf-8"),
            headers={"Content-Type": "application/json"})
        if status not in accept:
            raise ImageError("POST %s: HTTP %d %s" % (
                path, status, body[:200].decode("utf-8", "replace").strip()))
        return json.loads(body) if body.strip() else None

    def call(self, method, path, accept=(200, 204, 404)):
        """
        Make a call whose answer body does not matter.

        :param str method: ``POST``, ``DELETE``, ...
        :param str path: The API path.
        :param tuple accept: HTTP statuses meaning success.
        :raises ImageError: On another status.
        """
        status, body = self._request(method, path)
        if status not in accept:
            raise ImageError("%s %s: HTTP %d %s" % (
                method, path, status,
                body[:200].decode("utf-8", "replace").strip()))

    def reset(self, keep):
        """
        Make the daemon look freshly installed: remove every container,
        unused volume and network and every image but ``keep``.

        :param dict keep: ``{reference: image ID}`` of images to keep.
        :return: The number of objects removed.
        """
        removed = 0
        for container in self.get_json("/containers/json?all=1"):
            self.call("DELETE", "/containers/%s?force=1&v=1" % (
                container["Id"],))
            removed += 1
        for image in self.get_json("/images/json"):
            if image["Id"] not in keep.values():
                self.call("DELETE", "/images/%s?force=1" % (image["Id"],),
                          accept=(200, 404, 409))
                removed += 1
                continue
            for tag in image.get("RepoTags") or []:
                if tag not in keep:
                    # Untags only: the image keeps its lab name.
                    self.call("DELETE", "/images/%s" % (
                        urllib.parse.quote(tag, safe=""),))
                    removed += 1
        self.call("POST", "/volumes/prune")
        self.call("POST", "/networks/prune")
        return removed

    def load(self, path):
        """
        ``docker load`` a tarball written by :meth:`save`.

        :param Path path: The tarball.
        """
        with open(path, "rb") as f:
            status, body = self._request(
                "POST", "/images/load?quiet=1", body=f,
                headers={"Content-Type": "application/x-tar",
                         "Content-Length": str(os.fstat(f.fileno()).st_size)})
        self._stream_errors(status, body, "load " + path.name)


class RootfsBuilder:
    """
    Collects the members of a root file system tarball in memory.

    Owners are root and times fixed, so the same inputs give the same bytes.
    """

    def __init__(self):
        self._buffer = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buffer, mode="w",
                                 format=tarfile.GNU_FORMAT)
        self._seen = set()

    def _info(self, name, kind, mode):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 0
        return info

    def directory(self, name, mode=0o755):
        """
        Add a directory and its missing parents.

        :param str name: A relative path (``usr/bin``).
        :param int mode: The permission bits.
        """
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            path = "/".join(parts[:i])
            if path in self._seen:
                continue
            self._seen.add(path)
            self._tar.addfile(self._info(
                path, tarfile.DIRTYPE, mode if i == len(parts) else 0o755))

    def _new_entry(self, name):
        """
        Claim a path for a file or link: its parents are added as needed.

        :param str name: A path, leading and trailing ``/`` ignored.
        :return: The relative path, or ``None`` if the image has it already
            (the first entry of a path wins).
        """
        name = name.strip("/")
        if name in self._seen:
            return None
        if "/" in name:
            self.directory(os.path.dirname(name))
        self._seen.add(name)
        return name

    def file(self, name, data, mode=0o644):
        """
        Add a regular file (parents created as needed).

        :param str name: A relative path.
        :param bytes data: The content.
        :param int mode: The permission bits.
        """
        name = self._new_entry(name)
        if name is None:
            return
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data))

    def copy(self, name, source):
        """
        Add the content of a host file (symlinks followed).

        :param str name: The path inside the image.
        :param str source: The host file.
        """
        real = os.path.realpath(source)
        with open(real, "rb") as f:
            data = f.read()
        self.file(name, data, os.stat(real).st_mode & 0o7777)

    def symlink(self, name, target):
        """
        Add a symbolic link.

        :param str name: The link's path.
        :param str target: What it points to.
        """
        name = self._new_entry(name)
        if name is None:
            return
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self._tar.addfile(info)

    def names(self):
        """
        :return: The set of paths added so far.
        """
        return set(self._seen)

    def finish(self):
        """
        :return: The tarball's bytes.
        """
        self._tar.close()
        return self._buffer.getvalue()


PASSWD = (b"root:x:0:0:root:/root:/bin/sh\n"
          b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = b"root:x:0:\nnogroup:x:65534:\n"
INDEX_HTML = (b"<!DOCTYPE html>\n<html><head><title>flocker/busybox</title>"
              b"</head><body><p>Hello from flocker/busybox.</p>"
              b"</body></html>\n")


def _base(builder):
    for name in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root",
                 "var", "proc", "sys", "dev"):
        builder.directory(name)
    builder.directory("tmp", 0o1777)
    builder.file("etc/passwd", PASSWD)
    builder.file("etc/group", GROUP)


def busybox_rootfs(busybox="/bin/busybox"):
    """
    Build the ``flocker/busybox`` root file system.

    :param str busybox: The static busybox binary on this machine.
    :return: The tarball's bytes.
    """
    listing = subprocess.run([busybox, "--list-full"], check=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             timeout=30).stdout.decode().split()
    builder = RootfsBuilder()
    _base(builder)
    builder.copy("bin/busybox", busybox)
    for applet in listing:
        if applet.strip("/") != "bin/busybox":
            builder.symlink(applet, "/bin/busybox")
    builder.file("www/index.html", INDEX_HTML)
    return builder.finish()


def shared_libraries(binary):
    """
    :param str binary: A dynamically linked executable.
    :return: The absolute paths of the shared objects and loader it needs,
        as ``ldd`` reports them.
    """
    output = subprocess.run(["ldd", binary], check=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            timeout=30).stdout.decode()
    paths = []
    for line in output.splitlines():
        words = line.split()
        if "=>" in words:
            candidate = words[words.index("=>") + 1]
        elif words and words[0].startswith("/"):
            candidate = words[0]
        else:
            continue
        if candidate.startswith("/"):
            paths.append(candidate)
    return paths


def redis_rootfs(server="/usr/bin/redis-server", cli="/usr/bin/redis-cli"):
    """
    Build the ``flocker/redis`` root file system.

    :param str server: Debian's ``redis-server`` (a symlink to the real
        binary, which picks its mode from its own name: it is stored under
        the name ``redis-server``).
    :param str cli: ``redis-cli``.
    :return: The tarball's bytes.
    """
    builder = RootfsBuilder()
    _base(builder)
    builder.directory("data")
    builder.copy("usr/bin/redis-server", server)
    builder.copy("usr/bin/redis-cli", cli)
    for binary in (server, cli):
        for library in shared_libraries(os.path.realpath(binary)):
            builder.copy(library, library)
    return builder.finish()


@dataclass(frozen=True)
class ImageSpec:
    """
    One lab image.

    :ivar str reference: ``repository:tag``.
    :ivar tuple sources: Host files it is built from (cache key).
    :ivar tuple changes: Dockerfile instructions applied at import.
    :ivar build: Callable returning the root file system tarball.
    """
    reference: str
    sources: tuple
    changes: tuple
    build: object


IMAGES = (
    ImageSpec(
        reference="flocker/busybox:latest",
        sources=("/bin/busybox",),
        changes=('ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin',
                 'CMD ["/bin/sh"]'),
        build=busybox_rootfs,
    ),
    ImageSpec(
        reference="flocker/redis:latest",
        sources=("/usr/bin/redis-server", "/usr/bin/redis-cli"),
        changes=('ENV PATH=/usr/bin:/bin',
                 'WORKDIR /data',
                 'EXPOSE 6379/tcp',
                 'CMD ["redis-server", "--dir", "/data", "--appendonly", '
                 '"yes", "--protected-mode", "no"]'),
        build=redis_rootfs,
    ),
)


CACHE_NAME = "flocker-images.tar"


def source_key():
    """
    :return: A digest of every image's recipe and its source files'
        identity; a cache with another key is stale.
    """
    digest = hashlib.sha256()
    for spec in IMAGES:
        digest.update(repr((spec.reference, spec.changes, 3)).encode())
        for source in spec.sources:
            real = os.path.realpath(source)
            status = os.stat(real)
            digest.update(("%s %d %d\n" % (real, status.st_size,
                                           status.st_mtime_ns)).encode())
    return digest.hexdigest()


def ensure_cache(cache_dir, builder_api, log=lambda message: None):
    """
    Make sure the cache holds every image, current, in one saved tarball,
    building them on the given daemon if not.

    :param Path cache_dir: The cache directory.
    :param DockerAPI builder_api: A daemon to import and save with.
    :param log: Called with a progress message per built image.
    :return: ``{reference: image ID}`` of the cached images.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    index_path = cache_dir / "index.json"
    tarball = cache_dir / CACHE_NAME
    key = source_key()
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    if index.get("key") == key and tarball.exists():
        return index["images"]
    images = {}
    for spec in IMAGES:
        started = time.monotonic()
        try:
            rootfs = spec.build()
        except (OSError, subprocess.SubprocessError) as e:
            raise ImageError("build %s: %s" % (spec.reference, e))
        images[spec.reference] = builder_api.import_rootfs(
            rootfs, spec.reference, list(spec.changes))
        log("built %s (%s) in %.2fs" % (
            spec.reference, images[spec.reference][:19],
            time.monotonic() - started))
    builder_api.save([spec.reference for spec in IMAGES], tarball)
    partial = index_path.with_name("index.json.partial")
    partial.write_text(json.dumps({"key": key, "images": images}, indent=2,
                                  sort_keys=True))
    os.replace(partial, index_path)
    return images


def ensure_loaded(cache_dir, api, wanted):
    """
    Load the cached images into a daemon unless it has them all already
    (under the same IDs).

    :param Path cache_dir: The cache directory.
    :param DockerAPI api: The daemon.
    :param dict wanted: ``{reference: image ID}`` from :func:`ensure_cache`.
    :return: ``True`` if it had to load.
    """
    if all(api.image_id(ref) == image for ref, image in wanted.items()):
        return False
    api.load(cache_dir / CACHE_NAME)
    for reference, image in wanted.items():
        now = api.image_id(reference)
        if now != image:
            raise ImageError("load %s: got %s, expected %s" % (
                reference, now, image))
    return True
