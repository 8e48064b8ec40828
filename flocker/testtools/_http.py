"""
An HTTP answer whose body never ends, for the clients that follow a stream
for a process's whole life (Docker's events, an etcd watch): a test feeds
the body and sees what the client keeps of it.
"""

from twisted.internet.defer import succeed
from twisted.internet.testing import StringTransport
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IResponse
from zope.interface import implementer

__all__ = ["EndlessResponse", "EndlessAgent"]


@implementer(IResponse)
class EndlessResponse(object):
    """
    A ``200`` answer whose body the test writes, and which never ends.

    :ivar protocol: What the body was delivered to, or ``None``.
    """
    version = (b"HTTP", 1, 1)
    code = 200
    phrase = b"OK"
    length = UNKNOWN_LENGTH
    request = None
    previousResponse = None

    def __init__(self):
        self.headers = Headers()
        self.protocol = None

    def deliverBody(self, protocol):
        self.protocol = protocol
        protocol.makeConnection(StringTransport())

    def setPreviousResponse(self, response):
        self.previousResponse = response


@implementer(IAgent)
class EndlessAgent(object):
    """
    An ``IAgent`` (to put under treq's own ``HTTPClient``) answering every
    request with a new :class:`EndlessResponse`.

    :ivar responses: ``list`` of the answers given, in order.
    """

    def __init__(self):
        self.responses = []

    def request(self, method, uri, headers=None, bodyProducer=None):
        response = EndlessResponse()
        self.responses.append(response)
        return succeed(response)
