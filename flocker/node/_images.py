"""
Image references as Docker lists them, so the planner can tell whether an
application's image is on a node from the node's report without asking
Docker again.  Pure: no I/O.
"""

__all__ = ["canonical_image", "image_present"]

_DEFAULT_REGISTRY_PREFIXES = ("docker.io/library/", "index.docker.io/library/",
                              "docker.io/", "index.docker.io/", "library/")


def canonical_image(reference):
    """
    :param str reference: An image reference as written in a file
        (``redis``, ``docker.io/library/redis:7``, ``host:5000/web``,
        ``web@sha256:...``).
    :return: The form ``GET /images/json`` lists it in: Docker Hub's
        implied registry and ``library/`` removed, ``:latest`` added when
        neither a tag nor a digest is given (``redis:latest``,
        ``redis:7``, ``host:5000/web:latest``).
    """
    for prefix in _DEFAULT_REGISTRY_PREFIXES:
        if reference.startswith(prefix):
            reference = reference[len(prefix):]
            break
    if "@" in reference:
        return reference
    # A colon in the last path component is a tag; one before a slash is a
    # registry's port.
    if ":" not in reference.rsplit("/", 1)[-1]:
        reference += ":latest"
    return reference


def image_present(reference, images):
    """
    :param str reference: An application's image.
    :param images: The node's reported images (``None``: not reported).
    :return: ``True`` if the image is there, ``False`` if not, ``None`` when
        the node did not report its images or the reference is an image id
        (which lists do not name).
    """
    if images is None or reference.startswith("sha256:"):
        return None
    return canonical_image(reference) in images
