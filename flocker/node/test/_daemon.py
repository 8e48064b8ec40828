"""
A Docker Engine stand-in for ``treq.testing.StubTreq`` that answers as a
daemon of a given API version range would, following the Engine API's
version history: Debian 12's 20.10 (1.41 only), Docker 25 (1.44, accepting
clients down to 1.24) and Docker 29 (1.52, refusing clients older than
1.44), or any other range.

It keeps containers and images in memory and implements the calls
:class:`~flocker.node._docker.DockerClient` makes, with the response fields
that differ between versions present or absent as the documented version
would have them.  Every request (method, path, body) is recorded.
"""

import hashlib
import json
import re

from twisted.web.resource import Resource

from .._dockerapi import APIVersion

__all__ = ["VersionedDockerDaemon", "DEBIAN_12", "DOCKER_25", "DOCKER_29"]

#: ``(ApiVersion, MinAPIVersion)`` of Debian 12's docker.io 20.10.
DEBIAN_12 = ("1.41", "1.12")

#: Docker Engine 25.0.
DOCKER_25 = ("1.44", "1.24")

#: Docker Engine 29.1, the first releases refusing clients before 1.44.
DOCKER_29 = ("1.52", "1.44")

_VERSIONED = re.compile(r"\A/v([0-9]+\.[0-9]+)(/.*)\Z")


class VersionedDockerDaemon(Resource):
    """
    :ivar requests: ``list`` of ``(method, path, body or None)``.
    :ivar images: ``dict`` of image reference to its ``Config``.
    :ivar containers: ``dict`` of container id to a ``dict`` with the
        create body (``body``), ``name`` and ``running``.
    """
    isLeaf = True

    def __init__(self, api_version, min_api_version, images=()):
        """
        :param str api_version: The newest version it speaks.
        :param str min_api_version: The oldest client version it accepts.
        :param images: Image references present.
        """
        Resource.__init__(self)
        self.api_version = APIVersion.parse(api_version)
        self.min_api_version = APIVersion.parse(min_api_version)
        self.requests = []
        self.images = {image: {"Cmd": ["sh"], "Env": ["PATH=/bin"]}
                       for image in images}
        self.containers = {}

    def render(self, request):
        path = request.path.decode("ascii")
        method = request.method.decode("ascii")
        raw = request.content.read() if request.content else b""
        body = json.loads(raw) if raw else None
        self.requests.append((method, path, body))
        request.setHeader(b"content-type", b"application/json")
        if path in ("/version", "/_ping"):
            return self._json(request, 200, {
                "ApiVersion": str(self.api_version),
                "MinAPIVersion": str(self.min_api_version),
                "Version": "test"})
        match = _VERSIONED.match(path)
        if match is None:
            return self._json(request, 404, {"message": "page not found"})
        version = APIVersion.parse(match.group(1))
        if version < self.min_api_version:
            return self._json(request, 400, {"message": (
                "client version %s is too old. Minimum supported API "
                "version is %s, please upgrade your client to a newer "
                "version" % (version, self.min_api_version))})
        if version > self.api_version:
            return self._json(request, 400, {"message": (
                "client version %s is too new. Maximum supported API "
                "version is %s" % (version, self.api_version))})
        status, value = self._route(method, match.group(2), version, body,
                                    request)
        return self._json(request, status, value)

    def _json(self, request, status, value):
        request.setResponseCode(status)
        return b"" if value is None else json.dumps(value).encode("utf-8")

    def _find(self, name_or_id):
        for container_id, container in self.containers.items():
            if name_or_id in (container_id, container["name"]):
                return container_id, container
        return None, None

    def _route(self, method, path, version, body, request):
        parts = path.strip("/").split("/")
        if parts[0] == "images" and method == "GET" and parts[-1] == "json":
            if len(parts) == 2:
                return 200, [self._image(name, version)
                             for name in sorted(self.images)]
            name = "/".join(parts[1:-1])
            if name not in self.images:
                return 404, {"message": "No such image: " + name}
            return 200, self._image(name, version)
        if parts[0] != "containers":
            return 404, {"message": "page not found"}
        if parts[1:] == ["json"]:
            return 200, [self._summary(cid, c)
                         for cid, c in sorted(self.containers.items())]
        if parts[1:] == ["create"] and method == "POST":
            return self._create(body, version, request)
        container_id, container = self._find(parts[1])
        if container is None:
            return 404, {"message": "No such container: " + parts[1]}
        action = parts[2] if len(parts) > 2 else None
        if method == "GET" and action == "json":
            return 200, self._inspect(container_id, container, version)
        if method == "POST" and action == "start":
            container["running"] = True
            return 204, None
        if method == "POST" and action == "stop":
            was = container["running"]
            container["running"] = False
            return (204 if was else 304), None
        if method == "DELETE" and action is None:
            del self.containers[container_id]
            return 204, None
        return 404, {"message": "page not found"}

    def _create(self, body, version, request):
        name = request.args.get(b"name", [b""])[0].decode("ascii")
        if body.get("Image") not in self.images:
            return 404, {"message": "No such image: %s" % (body["Image"],)}
        if self._find(name)[1] is not None:
            return 409, {"message": "Conflict. The container name is in use"}
        if version >= APIVersion(1, 52) and body.get("MacAddress"):
            # 1.52 no longer takes the container-wide field; refused here
            # so that a test notices it being sent.
            return 400, {"message": "container-wide MacAddress is no longer "
                                    "supported; use EndpointsConfig"}
        container_id = hashlib.sha256(name.encode("utf-8")).hexdigest()
        self.containers[container_id] = {"name": name, "body": body,
                                         "running": False}
        return 201, {"Id": container_id, "Warnings": []}

    def _image(self, name, version):
        config = dict(self.images[name])
        if version >= APIVersion(1, 52):
            # Unset configuration keys are omitted from 1.52 on.
            config = {k: v for k, v in config.items() if v}
        else:
            for key in ("Cmd", "Entrypoint", "Env", "Labels", "OnBuild",
                        "User", "Volumes", "WorkingDir"):
                config.setdefault(key, None)
        image = {"Id": "sha256:" + hashlib.sha256(
            name.encode("utf-8")).hexdigest(), "RepoTags": [name],
            "Size": 1234, "Config": config}
        if version < APIVersion(1, 44):
            image["VirtualSize"] = 1234
        if version < APIVersion(1, 45):
            image["Container"] = "0" * 64
            image["ContainerConfig"] = {"Cmd": ["/bin/sh", "-c", "#(nop)"]}
        return image

    def _summary(self, container_id, container):
        body = container["body"]
        ports = []
        if container["running"]:
            for key, bindings in sorted((body.get("HostConfig") or {}).get(
                    "PortBindings", {}).items()):
                number, _, kind = key.partition("/")
                for address in ("0.0.0.0", "::"):
                    ports.append({"IP": address, "PrivatePort": int(number),
                                  "PublicPort": int(bindings[0]["HostPort"]),
                                  "Type": kind})
        mounts = []
        for bind in (body.get("HostConfig") or {}).get("Binds", []):
            source, destination = bind.split(":")[:2]
            mounts.append({"Type": "bind", "Source": source,
                           "Destination": destination})
        return {"Id": container_id, "Names": ["/" + container["name"]],
                "Image": body["Image"], "Labels": body.get("Labels") or {},
                "State": "running" if container["running"] else "exited",
                "Ports": ports, "Mounts": mounts}

    def _inspect(self, container_id, container, version):
        body = dict(container["body"])
        host_config = body.pop("HostConfig", {})
        body.pop("NetworkingConfig", None)
        network = {"IPAddress": "172.17.0.2", "Gateway": "172.17.0.1",
                   "MacAddress": "02:42:ac:11:00:02"}
        settings = {"Networks": {"bridge": dict(network)}}
        if version < APIVersion(1, 52):
            # The default network's values were also at the top until 1.52.
            settings.update(network)
        return {"Id": container_id, "Name": "/" + container["name"],
                "State": {"Running": container["running"],
                          "Pid": 4242 if container["running"] else 0},
                "Config": body, "HostConfig": host_config,
                "NetworkSettings": settings}
