"""
Tests for ``admin/_lab_images.py``: the lab's locally built Docker images.
"""

import io
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _lab_images  # noqa: E402


def members(data):
    """
    :param bytes data: A tarball.
    :return: ``{name: TarInfo}``.
    """
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {member.name: member for member in archive.getmembers()}


def test_rootfs_builder_members():
    """
    The builder adds parents before children, owned by root with fixed
    times, and ignores a second entry of the same name.
    """
    builder = _lab_images.RootfsBuilder()
    builder.file("a/b/c.txt", b"hi", 0o600)
    builder.file("a/b/c.txt", b"again")
    builder.symlink("bin/sh", "/bin/busybox")
    builder.directory("tmp", 0o1777)
    data = builder.finish()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        names = archive.getnames()
        assert names == ["a", "a/b", "a/b/c.txt", "bin", "bin/sh", "tmp"]
        info = {m.name: m for m in archive.getmembers()}
        assert archive.extractfile("a/b/c.txt").read() == b"hi"
    assert (info["a/b/c.txt"].mode, info["tmp"].mode) == (0o600, 0o1777)
    assert info["bin/sh"].issym() and info["bin/sh"].linkname == "/bin/busybox"
    assert {(m.uid, m.gid, m.mtime) for m in info.values()} == {(0, 0, 0)}


@pytest.mark.skipif(not Path("/bin/busybox").exists(),
                    reason="needs busybox-static")
def test_busybox_rootfs():
    """
    The busybox root file system has the static binary, a symlink per
    applet (sh, httpd, nc among them), passwd and the web page.
    """
    found = members(_lab_images.busybox_rootfs())
    assert found["bin/busybox"].isfile()
    for applet in ("bin/sh", "usr/sbin/httpd", "usr/bin/nc"):
        assert found[applet].linkname == "/bin/busybox"
    assert {"etc/passwd", "etc/group", "www/index.html"} <= set(found)
    assert found["tmp"].mode == 0o1777


def test_shared_libraries_of_a_dynamic_program():
    """
    ``shared_libraries`` lists the C library and the loader of a dynamically
    linked program as absolute paths.
    """
    libraries = _lab_images.shared_libraries(sys.executable)
    assert all(path.startswith("/") for path in libraries)
    assert any("/libc.so" in path for path in libraries)
    assert any("ld-linux" in path for path in libraries)


@pytest.mark.skipif(not Path("/usr/bin/redis-server").exists(),
                    reason="needs redis-server")
def test_redis_rootfs_is_self_contained():
    """
    The redis root file system holds both binaries and every library ldd
    lists for them, at the same paths.
    """
    found = members(_lab_images.redis_rootfs())
    assert found["usr/bin/redis-server"].isfile()
    assert found["usr/bin/redis-cli"].isfile()
    for binary in ("/usr/bin/redis-server", "/usr/bin/redis-cli"):
        for library in _lab_images.shared_libraries(binary):
            assert library.lstrip("/") in found
    assert found["data"].isdir()


def test_source_key_follows_sources(tmp_path, monkeypatch):
    """
    The cache key changes when a source file changes.
    """
    source = tmp_path / "tool"
    source.write_bytes(b"one")
    spec = _lab_images.ImageSpec(reference="x/y:latest",
                                 sources=(str(source),), changes=(),
                                 build=None)
    monkeypatch.setattr(_lab_images, "IMAGES", (spec,))
    before = _lab_images.source_key()
    source.write_bytes(b"three")
    assert _lab_images.source_key() != before


def test_reset_makes_a_fresh_daemon(lab):
    """
    ``reset`` removes every container, unused volume, user network and
    foreign image from a daemon, and keeps the lab's images.
    """
    node = lab.machine("node3")
    api = _lab_images.DockerAPI(node.docker_socket)
    name = "reset-%s" % (uuid.uuid4().hex[:8],)
    node.run(["docker", "run", "-d", "--name", name, "flocker/busybox",
              "sleep", "600"])
    node.run(["docker", "volume", "create", name])
    node.run(["docker", "network", "create", name])
    node.run(["docker", "tag", "flocker/busybox", "extra/" + name])
    removed = api.reset(dict(lab.images))
    assert removed >= 1
    assert api.get_json("/containers/json?all=1") == []
    assert api.get_json("/volumes")["Volumes"] in (None, [])
    assert name not in [n["Name"] for n in api.get_json("/networks")]
    tags = sorted(t for image in api.get_json("/images/json")
                  for t in image["RepoTags"] or [])
    assert tags == sorted(lab.images)
    for reference, image in lab.images.items():
        assert api.image_id(reference) == image
