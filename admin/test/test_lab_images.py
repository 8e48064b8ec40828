"""
Tests for ``admin/_lab_images.py``: the lab's locally built Docker images.
"""

import io
import sys
import tarfile
import uuid
from pathlib import Path
from unittest import SkipTest

from twisted.trial.unittest import SynchronousTestCase

from flocker.testtools import shared_lab, temporary_path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _lab_images  # noqa: E402


def members(data):
    """
    :param bytes data: A tarball.
    :return: ``{name: TarInfo}``.
    """
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {member.name: member for member in archive.getmembers()}


class LabImagesTests(SynchronousTestCase):
    """
    Building the lab's images: root file systems, their libraries and the
    cache key.
    """

    def test_rootfs_builder_members(self):
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
            self.assertEqual(names,
                             ["a", "a/b", "a/b/c.txt", "bin", "bin/sh", "tmp"])
            info = {m.name: m for m in archive.getmembers()}
            self.assertEqual(archive.extractfile("a/b/c.txt").read(), b"hi")
        self.assertEqual((info["a/b/c.txt"].mode, info["tmp"].mode),
                         (0o600, 0o1777))
        self.assertTrue(info["bin/sh"].issym()
                        and info["bin/sh"].linkname == "/bin/busybox")
        self.assertEqual({(m.uid, m.gid, m.mtime) for m in info.values()},
                         {(0, 0, 0)})

    def test_busybox_rootfs(self):
        """
        The busybox root file system has the static binary, a symlink per
        applet (sh, httpd, nc among them), passwd and the web page.
        """
        if not Path("/bin/busybox").exists():
            raise SkipTest("needs busybox-static")
        found = members(_lab_images.busybox_rootfs())
        self.assertTrue(found["bin/busybox"].isfile())
        for applet in ("bin/sh", "usr/sbin/httpd", "usr/bin/nc"):
            self.assertEqual(found[applet].linkname, "/bin/busybox")
        self.assertLessEqual({"etc/passwd", "etc/group", "www/index.html"},
                             set(found))
        self.assertEqual(found["tmp"].mode, 0o1777)

    def test_shared_libraries_of_a_dynamic_program(self):
        """
        ``shared_libraries`` lists the C library and the loader of a
        dynamically linked program as absolute paths.
        """
        libraries = _lab_images.shared_libraries(sys.executable)
        self.assertTrue(all(path.startswith("/") for path in libraries))
        self.assertTrue(any("/libc.so" in path for path in libraries))
        self.assertTrue(any("ld-linux" in path for path in libraries))

    def test_redis_rootfs_is_self_contained(self):
        """
        The redis root file system holds both binaries and every library ldd
        lists for them, at the same paths.
        """
        if not Path("/usr/bin/redis-server").exists():
            raise SkipTest("needs redis-server")
        found = members(_lab_images.redis_rootfs())
        self.assertTrue(found["usr/bin/redis-server"].isfile())
        self.assertTrue(found["usr/bin/redis-cli"].isfile())
        for binary in ("/usr/bin/redis-server", "/usr/bin/redis-cli"):
            for library in _lab_images.shared_libraries(binary):
                self.assertIn(library.lstrip("/"), found)
        self.assertTrue(found["data"].isdir())

    def test_source_key_follows_sources(self):
        """
        The cache key changes when a source file changes.
        """
        tmp_path = temporary_path(self)
        source = tmp_path / "tool"
        source.write_bytes(b"one")
        spec = _lab_images.ImageSpec(reference="x/y:latest",
                                     sources=(str(source),), changes=(),
                                     build=None)
        self.patch(_lab_images, "IMAGES", (spec,))
        before = _lab_images.source_key()
        source.write_bytes(b"three")
        self.assertNotEqual(_lab_images.source_key(), before)



class LabDaemonResetTests(SynchronousTestCase):
    """
    Resetting a lab node's dockerd.
    """

    def test_reset_makes_a_fresh_daemon(self):
        """
        ``reset`` removes every container, unused volume, user network and
        foreign image from a daemon, and keeps the lab's images.
        """
        lab = shared_lab()
        node = lab.machine("node3")
        api = _lab_images.DockerAPI(node.docker_socket)
        name = "reset-%s" % (uuid.uuid4().hex[:8],)
        node.run(["docker", "run", "-d", "--name", name, "flocker/busybox",
                  "sleep", "600"])
        node.run(["docker", "volume", "create", name])
        node.run(["docker", "network", "create", name])
        node.run(["docker", "tag", "flocker/busybox", "extra/" + name])
        removed = api.reset(dict(lab.images))
        self.assertGreaterEqual(removed, 1)
        self.assertEqual(api.get_json("/containers/json?all=1"), [])
        self.assertIn(api.get_json("/volumes")["Volumes"], (None, []))
        self.assertNotIn(name, [n["Name"] for n in api.get_json("/networks")])
        tags = sorted(t for image in api.get_json("/images/json")
                      for t in image["RepoTags"] or [])
        self.assertEqual(tags, sorted(lab.images))
        for reference, image in lab.images.items():
            self.assertEqual(api.image_id(reference), image)
